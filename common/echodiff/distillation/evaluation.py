"""Scores of a video LV segmenter on real data, the EchoDFKD protocol (Petit et al. 2024, section 4):

- EchoNet-Dynamic layout (videos + expert tracings): Dice at the two traced frames (p > 80/255 against the traced
  polygon, on the video's own 112 x 112 grid), ED / ES frame detection error aFD (separately, frames; the traced
  frames are the references, ED = the larger tracing), EF proxy per video and its Pearson r with FileList.csv's EF,
  two ways: ours (`ef_proxy`, `ef_r`: areas p > 25/255 at the detected ED / ES frames, videos with an empty ED left
  out of r) and the paper's (`ef_proxy_paper`, `ef_r_paper`: areas p > 80/255 at the traced frames, an empty ED
  scored 0), so our r can be set beside the published one; and the jitter of each video's LV area curve
  (`area_jitter`, ours: mean |second difference| over the mean area), the noise those frame picks and ratios read.
- CAMUS layout (frames + label maps): Dice of the LV cavity (label 1) on the label map's own grid.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from echodiff.data.camus import list_camus
from echodiff.data.camus_input import LoadResizedCAMUSd
from echodiff.data.echonet import check_traced_videos, list_echonet, load_echonet_item
from echodiff.engines.run_report import outputs_written
from echodiff.io import atomic_write_json
from echodiff.metrics.cardiac import (
    area_jitter,
    frame_detection_error,
    paper_ef_proxy,
    pearson_r,
    segmentation_dice_at_threshold,
)

from .sources import CAMUS_SPLITS_OF_ECHONET, dataset_layout, resize_frames
from .video import lv_function, predict_lv

__all__ = ["REPORT_FILE", "evaluate_camus_lv", "evaluate_echonet", "evaluate_lv_segmenter"]

REPORT_FILE = "distillation_report.json"


def evaluate_echonet(
    network: nn.Module, dataset_dir: str | os.PathLike, split: str | None, image_size: Sequence[int],
    clip_length: int, device: str | torch.device = "cpu", lv_channel: int = 1, progress: bool = True,
) -> dict:  # fmt: skip
    """EchoNet-Dynamic scores (module docstring) of every traced video of `split` (None: all)."""
    check_traced_videos(dataset_dir)
    rows, start, frames_seen = [], time.perf_counter(), 0
    for item in tqdm(list_echonet(dataset_dir, split), desc="EchoNet videos", unit="video", disable=not progress,
                     dynamic_ncols=True):  # fmt: skip
        data = load_echonet_item(item)
        frames = resize_frames(data["frames"].astype(np.float32) / 255.0, image_size)
        probs = predict_lv(network, frames, clip_length, data["frames"].shape[1:], device, lv_channel=lv_channel)
        probs = probs.numpy()
        lv = lv_function(probs, item["ed_frame"], item["es_frame"])
        rows.append({
            "video": item["filename"], "ed_frame": item["ed_frame"], "es_frame": item["es_frame"],
            "ed_estimate": lv["ed_frame"], "es_estimate": lv["es_frame"],
            "dice_ed": segmentation_dice_at_threshold(probs[item["ed_frame"]], data["ed_mask"]),
            "dice_es": segmentation_dice_at_threshold(probs[item["es_frame"]], data["es_mask"]),
            "ef_proxy": lv["ef_proxy"], "ef_proxy_paper": paper_ef_proxy(probs, item["ed_frame"], item["es_frame"]),
            "ef": item["ef"], "area_jitter": area_jitter(lv["area"]),
        })  # fmt: skip
        frames_seen += len(frames)
    seconds = time.perf_counter() - start
    dice = [row[key] for row in rows for key in ("dice_ed", "dice_es")]
    finite = [row for row in rows if np.isfinite(row["ef_proxy"])]
    return {
        "videos": rows,
        "dice": float(np.mean(dice)),
        "afd_ed": frame_detection_error([r["ed_estimate"] for r in rows], [r["ed_frame"] for r in rows]),
        "afd_es": frame_detection_error([r["es_estimate"] for r in rows], [r["es_frame"] for r in rows]),
        "ef_r": pearson_r([r["ef_proxy"] for r in finite], [r["ef"] for r in finite]) if len(finite) > 2 else None,
        "ef_r_paper": pearson_r([r["ef_proxy_paper"] for r in rows], [r["ef"] for r in rows]) if len(rows) > 2
        else None,
        "area_jitter": _finite_mean([r["area_jitter"] for r in rows]),
        "frames_per_s": frames_seen / seconds if seconds > 0 else 0.0,
    }


def _finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


@torch.no_grad()
def evaluate_camus_lv(
    network: nn.Module, dataset_dir: str | os.PathLike, split: str, image_size: Sequence[int],
    device: str | torch.device = "cpu", lv_channel: int = 1, progress: bool = True,
) -> dict:  # fmt: skip
    """Mean LV-cavity Dice (p > 80/255 against label 1, on the label map's grid) over the frames of a CAMUS split."""
    dice, load = [], LoadResizedCAMUSd(image_size, label_spatial_size=(-1, -1))  # the label map keeps its grid
    for item in tqdm(list_camus(dataset_dir, split), desc="CAMUS frames", unit="frame", disable=not progress,
                     dynamic_ncols=True):  # fmt: skip
        data = load(item)
        label = data["label"][0].numpy()
        probs = predict_lv(network, data["image"].as_tensor(), 1, label.shape, device, lv_channel=lv_channel)
        dice.append(segmentation_dice_at_threshold(probs[0].numpy(), (label == 1).astype(np.uint8)))
    return {"dice_lv": float(np.mean(dice)), "n_images": len(dice)}


def evaluate_lv_segmenter(
    network: nn.Module, dataset_dir: str | os.PathLike, split: str, output_dir: str | os.PathLike,
    image_size: Sequence[int], clip_length: int, device: str | torch.device = "cpu", lv_channel: int = 1,
    progress: bool = True,
) -> dict:  # fmt: skip
    """Score `network` on `split` of `dataset_dir` (EchoNet or CAMUS layout, detected) and write
    `output_dir/distillation_report.json`, which names the folder and split it scored."""
    started = time.perf_counter()
    if dataset_layout(dataset_dir) == "echonet":
        echonet_split = CAMUS_SPLITS_OF_ECHONET.get(split, split) if split != "all" else None
        scores = evaluate_echonet(network, dataset_dir, echonet_split, image_size, clip_length, device, lv_channel,
                                  progress)  # fmt: skip
    else:
        scores = evaluate_camus_lv(network, dataset_dir, split, image_size, device, lv_channel, progress)
    report = {"dataset_dir": str(Path(dataset_dir).resolve()), "split": split, "image_size": list(image_size),
              "clip_length": clip_length, "parameters": sum(p.numel() for p in network.parameters()),
              "seconds": time.perf_counter() - started, **scores}  # fmt: skip
    path = Path(output_dir) / REPORT_FILE
    atomic_write_json(path, report)
    outputs_written(path.parent)
    return report

