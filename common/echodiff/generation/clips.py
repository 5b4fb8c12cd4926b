"""Synthetic cine clips for data-free distillation (docs/methods.md section 3, "Synthetic cine clips"): for each
patient view of a CAMUS-layout folder, the label maps of one cardiac cycle ED -> ES -> ED (`data.label_motion`), each
frame generated from its map with the SAME start noise (the seed of the clip), so the speckle stays put while the heart
moves; written in the EchoNet-Dynamic layout (Videos/*.avi, FileList.csv) plus `Labels/<name>.npy`, the (T, H, W)
CAMUS label maps of each clip, for checking (a student trained on the clips never reads them). FileList.csv's EF
column holds the LV-area EF proxy of the clip's label maps, 100 (A_ED - A_ES) / A_ED; ESV and EDV are nan.

Timing comes from real EchoNet-Dynamic clips (`echonet_timing`): the frame rate and the systole length (frames from
the traced ED to the traced ES frame), medians over the TRAIN videos only (the human labels of validation and test
videos never shape training data); the cycle is systole / `SYSTOLE_FRACTION` frames.
A killed run resumes: each clip's files are written atomically and finished clips are kept; a folder started with
other settings is refused.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from echodiff.data.camus import list_camus
from echodiff.data.conditioning import camus_labels_of_condition, condition_map
from echodiff.data.echonet import list_echonet
from echodiff.data.label_motion import SYSTOLE_FRACTION, label_cycle
from echodiff.errors import ConfigValueError, EmptySplitError
from echodiff.io import atomic_write, atomic_write_json, atomic_write_text

from .synthesis import GeneratorFn, case_seed, source_condition_map

__all__ = ["CLIP_SETTINGS", "clip_condition_maps", "echonet_timing", "generate_frames", "synthesize_clips",
           "temporal_change"]

CLIP_SETTINGS = "clips.json"
ECHONET_SPLITS = {"training": "TRAIN", "validation": "VAL", "testing": "TEST"}
FILELIST_HEADER = ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"]


def echonet_timing(echonet_dir: str | os.PathLike) -> dict:
    """Median frame rate and systole length (|ES - ED| traced frames) of the TRAIN videos of an EchoNet-Dynamic
    folder (FileList.csv Split column)."""
    try:
        items = list_echonet(echonet_dir, "TRAIN", on_bad="skip")
    except EmptySplitError:
        raise EmptySplitError(
            f"{Path(echonet_dir) / 'FileList.csv'} lists no usable TRAIN video; expected traced TRAIN videos for the "
            f"clip timing (VAL and TEST tracings are never read), or give the timing itself (fps, systole_frames)"
        ) from None
    fps = float(np.median([item["fps"] for item in items]))
    systole = int(round(np.median([abs(item["es_frame"] - item["ed_frame"]) for item in items])))
    return {"fps": fps, "systole_frames": systole, "cycle_frames": int(round(systole / SYSTOLE_FRACTION)),
            "videos": len(items)}  # fmt: skip


def temporal_change(frames: np.ndarray | torch.Tensor, sector: np.ndarray | torch.Tensor) -> float:
    """Mean absolute frame-to-frame change inside the sector, frames (T, H, W) in [0, 1], sector (H, W) boolean."""
    frames = torch.as_tensor(np.asarray(frames), dtype=torch.float32)
    inside = torch.as_tensor(np.asarray(sector), dtype=torch.bool)
    return float((frames[1:] - frames[:-1]).abs()[:, inside].mean())


def clip_condition_maps(sector: torch.Tensor, labels: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Conditioning maps (T, 1, H, W) of a clip's CAMUS label maps (T, H, W) inside one fixed sector (H, W)."""
    return torch.stack([torch.as_tensor(condition_map(sector.float(), frame)) for frame in torch.as_tensor(labels)])[
        :, None
    ]


def generate_frames(generate: GeneratorFn, cond: torch.Tensor, seeds: Sequence[int], view: str | None = None,
                    batch_size: int = 32) -> torch.Tensor:  # fmt: skip
    """Images (T, 1, H, W) in [0, 1] of conditioning maps (T, 1, H, W) of one `view` ("2CH" / "4CH"), frame t from
    seed `seeds[t]` (one repeated seed for a temporally coherent clip)."""
    chunks = zip(cond.split(batch_size), np.array_split(np.asarray(seeds), range(batch_size, len(seeds), batch_size)))
    return torch.cat([generate(chunk, [int(s) for s in chunk_seeds], view)[0]
                      for chunk, chunk_seeds in chunks]).clamp(0, 1)  # fmt: skip


def _pairs(dataset_dir: str | os.PathLike, split: str, views: Sequence[str]) -> list[tuple[dict, dict]]:
    """(ED item, ES item) of every patient view of a split that has both phases."""
    items = {(i["patient"], i["view"], i["phase"]): i for i in list_camus(dataset_dir, split, views=views)}
    return [(items[(p, v, "ED")], items[(p, v, "ES")]) for p, v, phase in items if phase == "ED" and (p, v, "ES") in items]


def _write_avi(path: Path, frames: np.ndarray, fps: float) -> None:
    def write(tmp: str) -> None:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"MJPG"), fps, frames.shape[:0:-1], True)
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        writer.release()

    atomic_write(path, write, suffix=".avi")


def _claim(out: Path, settings: dict) -> None:
    path = out / CLIP_SETTINGS
    if path.is_file():
        started = json.loads(path.read_text())
        differing = sorted(k for k in set(started) | set(settings) if started.get(k) != settings.get(k))
        if differing:
            raise ConfigValueError(
                f"{out} holds clips made with other settings ({', '.join(differing)} differ); resume with the same "
                f"settings or write to another out_dir"
            )
        return
    atomic_write_json(path, settings)


def synthesize_clips(
    dataset_dir: str | os.PathLike, out_dir: str | os.PathLike, generate: GeneratorFn, timing: dict,
    splits: Sequence[str] = ("training", "validation"), views: Sequence[str] = ("4CH", "2CH"),
    max_clips: int | None = None, seed: int = 0, batch_size: int = 32, progress: bool = True,
) -> dict:  # fmt: skip
    """One synthetic clip per patient view of `splits` (at most `max_clips` per split) into `out_dir` (module
    docstring); `timing` as from `echonet_timing`. Returns {"clips", "written", "frames_per_s", "fit_dice"}."""
    out = Path(out_dir)
    size = generate.image_size
    _claim(out, {"dataset_dir": str(Path(dataset_dir).resolve()), "timing": timing, "splits": list(splits),
                 "views": list(views), "max_clips": max_clips, "seed": seed, "generator": generate.info,
                 "image_size": size})  # fmt: skip
    plan = [(split, pair) for split in splits for pair in _pairs(dataset_dir, split, views)[:max_clips]]
    if not plan:
        raise EmptySplitError(f"{dataset_dir}: no patient view with both ED and ES frames in splits {list(splits)}")
    rows, fit_dice, written, start, frames_done = [], [], 0, time.perf_counter(), 0
    n_frames, systole, fps = timing["cycle_frames"], timing["systole_frames"], timing["fps"]
    for index, (split, (ed_item, es_item)) in enumerate(tqdm(plan, desc="clips", unit="clip", disable=not progress)):
        name = f"{ed_item['patient']}_{ed_item['view']}"
        video, labels_path = out / "Videos" / f"{name}.avi", out / "Labels" / f"{name}.npy"
        ed_cond, _ = source_condition_map(ed_item, size)
        es_cond, _ = source_condition_map(es_item, size)
        ed_labels, es_labels = camus_labels_of_condition(ed_cond[0]), camus_labels_of_condition(es_cond[0])
        labels = None
        if not (video.is_file() and labels_path.is_file()):
            labels, dice = label_cycle(ed_labels, es_labels, n_frames, systole)
            cond = clip_condition_maps(ed_cond[0] > 0, labels)
            clip_seed = case_seed(seed, index, 0)
            images = generate_frames(generate, cond, [clip_seed] * len(cond), ed_item["view"], batch_size)
            frames = (images[:, 0] * 255).round().to(torch.uint8).numpy()
            _write_avi(video, frames, fps)
            atomic_write(labels_path, lambda tmp, lab=labels.numpy(): np.save(tmp, lab), suffix=".npy")
            atomic_write_json(out / "Labels" / f"{name}.json", {"fit_dice_es": dice, "seed": clip_seed})
            written, frames_done = written + 1, frames_done + len(frames)
        labels = np.load(labels_path) if labels is None else labels.numpy()
        fit_dice.append(json.loads((out / "Labels" / f"{name}.json").read_text())["fit_dice_es"])
        area = (labels == 1).sum(axis=(1, 2))
        rows.append([name, 100 * (area[0] - area.min()) / max(area[0], 1), "nan", "nan", size, size, fps, n_frames,
                     ECHONET_SPLITS[split]])  # fmt: skip
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([FILELIST_HEADER, *rows])
    atomic_write_text(out / "FileList.csv", text.getvalue())
    seconds = time.perf_counter() - start
    return {"clips": len(plan), "written": written, "frames": frames_done,
            "frames_per_s": frames_done / seconds if frames_done else 0.0, "fit_dice_es": float(np.mean(fit_dice))}

