"""Distillation data: frames (CAMUS layout, real or synthetic) or videos (EchoNet-Dynamic layout, real or synthetic
clips) as grey frame stacks (T, H, W) in [0, 1] at the networks' size, with no human label anywhere
(Petit et al. 2024, "EchoDFKD", section 3: the student only sees the teacher's soft masks).

A CAMUS frame is a clip of one frame, loaded by the bundles' own `LoadResizedCAMUSd`; an EchoNet video a clip of all
its frames, with the same intensity mapping (0..255 -> [0, 1]) and resize (area interpolation).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from echodiff.data.camus import NIFTI_FOLDER, list_camus
from echodiff.data.camus_input import LoadResizedCAMUSd
from echodiff.data.echonet import list_echonet_videos, read_video
from echodiff.errors import ConfigKeyError, MissingFileError, ShapeMismatchError

__all__ = ["CAMUS_SPLITS_OF_ECHONET", "dataset_layout", "list_sources", "load_frames", "resize_frames"]

Layout = Literal["camus", "echonet"]
# the EchoNet split that plays each CAMUS split's role
CAMUS_SPLITS_OF_ECHONET = {"training": "TRAIN", "validation": "VAL", "testing": "TEST"}


def dataset_layout(dataset_dir: str | os.PathLike) -> Layout:
    """"echonet" for a folder with FileList.csv and Videos/, "camus" for a CAMUS-layout folder."""
    root = Path(dataset_dir)
    if (root / "FileList.csv").is_file() and (root / "Videos").is_dir():
        return "echonet"
    if (root / NIFTI_FOLDER).is_dir() or any(root.glob("patient*")) or any(root.glob("*/patient*")):
        return "camus"
    raise MissingFileError(
        f"{root} is neither an EchoNet-Dynamic folder (FileList.csv + Videos/) nor a CAMUS-layout folder "
        f"(database_nifti/patientXXXX or patientXXXX folders)"
    )


def list_sources(dataset_dir: str | os.PathLike, split: str) -> list[dict]:
    """Distillation items of one split: {"name", "path", "kind": "frame" | "video"}; `split` is a CAMUS split name
    (training, validation, testing), mapped to TRAIN / VAL / TEST for an EchoNet folder."""
    if dataset_layout(dataset_dir) == "camus":
        return [{"name": _camus_name(item["image"]), "path": item["image"], "kind": "frame"}
                for item in list_camus(dataset_dir, split, require_label=False)]  # fmt: skip
    if split not in CAMUS_SPLITS_OF_ECHONET:
        raise ConfigKeyError(f"split {split!r}; expected one of {', '.join(CAMUS_SPLITS_OF_ECHONET)}")
    return [{"name": item["filename"], "path": item["video"], "kind": "video", "frame_size": item["frame_size"]}
            for item in list_echonet_videos(dataset_dir, CAMUS_SPLITS_OF_ECHONET[split])]  # fmt: skip


def _camus_name(path: str) -> str:
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".mhd"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def resize_frames(frames: np.ndarray | torch.Tensor, image_size: tuple[int, int] | list[int]) -> torch.Tensor:
    """(T, H, W) float frames area-resized to `image_size` (as MONAI's Resized(mode="area") in the bundle configs)."""
    frames = torch.as_tensor(frames, dtype=torch.float32)
    if tuple(frames.shape[-2:]) == tuple(image_size):
        return frames
    return F.interpolate(frames[:, None], size=tuple(image_size), mode="area")[:, 0]


def load_frames(item: dict, image_size: tuple[int, int] | list[int]) -> torch.Tensor:
    """(T, H, W) float32 frames in [0, 1] of a `list_sources` item, resized to `image_size`. A video must have the
    frame size its FileList.csv row states (FrameHeight x FrameWidth) and grey frames (`read_video`)."""
    if item["kind"] == "frame":
        return LoadResizedCAMUSd(image_size, keys="image")({"image": item["path"]})["image"].as_tensor().float()
    else:
        video = read_video(item["path"])
        expected = item.get("frame_size")
        if expected is not None and tuple(video.shape[1:]) != tuple(expected):
            raise ShapeMismatchError(
                f"{item['path']} has frames of {video.shape[1]} x {video.shape[2]} pixels; expected "
                f"{expected[0]} x {expected[1]} (FrameHeight x FrameWidth of its FileList.csv row)"
            )
        frames = video.astype(np.float32) / 255.0
    return resize_frames(frames, image_size)
