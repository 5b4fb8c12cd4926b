"""Synthetic cine clips for data-free distillation (docs/methods.md section 3, "Synthetic cine clips"): for each
patient view of a CAMUS-layout folder, the label maps of one cardiac cycle ED -> ES -> ED (`data.label_motion`), each
frame generated from its map with the SAME start noise (the seed of the clip), so the speckle stays put while the heart
moves; written in the EchoNet-Dynamic layout (Videos/*.avi, FileList.csv) plus `Labels/<name>.npy`, the (T, H, W)
CAMUS label maps of each clip, and `Labels/<name>.json` (seed, view, ED / ES frames, timing), for checking (a student
trained on the clips never reads them). FileList.csv's EF column holds the LV-area EF proxy of the clip's label maps,
100 (A_ED - A_ES) / A_ED; ESV and EDV are nan.

Timing comes from real EchoNet-Dynamic clips (`echonet_timing`): the frame rate and the systole length (frames from
the traced ED to the traced ES frame), medians over the TRAIN videos only (the human labels of validation and test
videos never shape training data); the cycle is systole / `systole_fraction` frames (default `SYSTOLE_FRACTION`).

Levers of the data-free student (Petit et al. 2024, "EchoDFKD", train on many varied synthetic clips), each off by
default: `k` clips per patient view, `augment` (each clip's ED / ES pair through one draw of the label-map augmentation
of dataset synthesis, `RandLabelMapAugmentd`), `vary_timing` (each clip's systole length drawn from the TRAIN videos'
range and its first frame at a random point of its cycle), a `systole_fraction` range drawn per clip, and `renewal`
(start noise partly renewed from frame to frame, `renewed_noise`: speckle that decorrelates as in real cine).
A killed run resumes: each clip's files are written atomically and finished clips are kept; a folder started with
other settings is refused.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from echodiff.data.augment import RandLabelMapAugmentd
from echodiff.data.camus import list_camus
from echodiff.data.conditioning import camus_labels_of_condition, condition_map
from echodiff.data.echonet import list_echonet
from echodiff.data.label_motion import SYSTOLE_FRACTION, label_cycle
from echodiff.errors import ConfigValueError, EmptySplitError
from echodiff.io import atomic_write, atomic_write_json, atomic_write_text

from .synthesis import GeneratorFn, case_seed, source_condition_map

__all__ = ["CLIP_SETTINGS", "clip_condition_maps", "clip_frames", "echonet_timing", "generate_frames", "given_timing",
           "renewed_noise", "synthesize_clips", "temporal_change"]

CLIP_SETTINGS = "clips.json"
ECHONET_SPLITS = {"training": "TRAIN", "validation": "VAL", "testing": "TEST"}
FILELIST_HEADER = ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"]


def _low_high(value: float | Sequence[float], key: str) -> tuple:
    """(low, high) of a number (both) or of a [low, high] range."""
    if isinstance(value, (int, float)):
        return value, value
    if len(value) != 2:
        raise ConfigValueError(f"{key}={value!r}; expected a number or a range [low, high]")
    return tuple(value)


def _timing(fps: float, systole_frames: int, systole_range: Sequence[int], videos: int,
            systole_fraction: float | Sequence[float]) -> dict:  # fmt: skip
    low, high = _low_high(systole_fraction, "systole_fraction")
    if not 0 < low <= high < 1:
        raise ConfigValueError(f"systole_fraction={systole_fraction!r}; expected the systole's share of the cycle, a "
                               f"number or a range [low, high] with 0 < low <= high < 1")  # fmt: skip
    return {"fps": float(fps), "systole_frames": int(systole_frames),
            "systole_frames_range": [int(systole_range[0]), int(systole_range[1])],
            "systole_fraction": [float(low), float(high)],
            "cycle_frames": int(round(systole_frames / ((low + high) / 2))), "videos": videos}  # fmt: skip


def echonet_timing(echonet_dir: str | os.PathLike, systole_fraction: float | Sequence[float] = SYSTOLE_FRACTION
                   ) -> dict:  # fmt: skip
    """Clip timing from the TRAIN videos of an EchoNet-Dynamic folder (FileList.csv Split column): median frame rate
    and systole length (|ES - ED| traced frames), the range of systole lengths that `vary_timing` draws from (5th to
    95th percentile), and the systole's share of the cycle, `systole_fraction` (a [low, high] range is drawn per
    clip; `cycle_frames` is the cycle at the median systole and the middle fraction)."""
    try:
        items = list_echonet(echonet_dir, "TRAIN", on_bad="skip")
    except EmptySplitError:
        raise EmptySplitError(
            f"{Path(echonet_dir) / 'FileList.csv'} lists no usable TRAIN video; expected traced TRAIN videos for the "
            f"clip timing (VAL and TEST tracings are never read), or give the timing itself (fps, systole_frames)"
        ) from None
    systoles = [abs(item["es_frame"] - item["ed_frame"]) for item in items]
    return _timing(np.median([item["fps"] for item in items]), round(np.median(systoles)),
                   np.percentile(systoles, [5, 95]).round(), len(items), systole_fraction)  # fmt: skip


def given_timing(fps: float, systole_frames: int | Sequence[int],
                 systole_fraction: float | Sequence[float] = SYSTOLE_FRACTION) -> dict:  # fmt: skip
    """`echonet_timing`'s dict from given numbers: one systole length, or a [low, high] range (`vary_timing` draws
    from it; its middle otherwise)."""
    low, high = _low_high(systole_frames, "systole_frames")
    if not 0 < int(low) <= int(high):
        raise ConfigValueError(f"systole_frames={systole_frames!r}; expected a number of frames >= 1 or a range "
                               f"[low, high] with 1 <= low <= high")  # fmt: skip
    return _timing(fps, round((int(low) + int(high)) / 2), (low, high), 0, systole_fraction)


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
                    batch_size: int = 32, noise: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Images (T, 1, H, W) in [0, 1] of conditioning maps (T, 1, H, W) of one `view` ("2CH" / "4CH"), frame t from
    seed `seeds[t]` (one repeated seed for a temporally coherent clip), or from start noise `noise[t]` when given
    (EDM family, `GeneratorFn.start_noise`)."""
    return torch.cat([generate(cond[i : i + batch_size], [int(s) for s in seeds[i : i + batch_size]], view,
                               noise=None if noise is None else noise[i : i + batch_size])[0]
                      for i in range(0, len(cond), batch_size)]).clamp(0, 1)  # fmt: skip


def _check_renewal(renewal: float) -> None:
    if not 0 <= renewal <= 1:
        raise ConfigValueError(f"renewal={renewal!r}; expected the share of the start noise renewed per frame, in "
                               f"[0, 1]")  # fmt: skip


def renewed_noise(first: torch.Tensor, fresh: torch.Tensor, renewal: float) -> torch.Tensor:
    """Start noise (T, ...) of a clip's frames from the first frame's (1, ...) and T - 1 fresh draws e_t:
    n_t = sqrt(1 - a) n_(t-1) + sqrt(a) e_t, a = `renewal` in [0, 1]. Every n_t is N(0, I) and consecutive frames
    correlate by sqrt(1 - a) (an AR(1) process): a = 0 keeps one noise for the clip, a = 1 draws a new one per frame."""
    _check_renewal(renewal)
    noise = [first[0]]
    for draw in fresh:
        noise.append(math.sqrt(1 - renewal) * noise[-1] + math.sqrt(renewal) * draw)
    return torch.stack(noise)


def clip_frames(generate: GeneratorFn, cond: torch.Tensor, seed: int, view: str | None = None, renewal: float = 0.0,
                batch_size: int = 32) -> torch.Tensor:  # fmt: skip
    """Images (T, 1, H, W) in [0, 1] of one clip's conditioning maps (T, 1, H, W): frame t from the start noise n_t of
    `renewed_noise` (a = `renewal`), n_0 drawn from `seed` and e_t from seeds mixed from it; a = 0 generates every
    frame from `seed` itself (one shared noise, any generator)."""
    seeds = [seed] * len(cond)
    if renewal == 0:
        return generate_frames(generate, cond, seeds, view, batch_size)
    fresh = generate.start_noise(cond[1:], [case_seed(seed, t, 1) for t in range(1, len(cond))])
    noise = renewed_noise(generate.start_noise(cond[:1], [seed]), fresh, renewal)
    return generate_frames(generate, cond, seeds, view, batch_size, noise)


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


def _cycle(timing: dict, vary_timing: bool, seed: int) -> tuple[int, int, int]:
    """(systole frames, cycle frames, the first frame's place in the cycle) of one clip, drawn from `seed`: the systole
    length in `systole_frames_range` and the start anywhere in the cycle with `vary_timing` (else the median and ED),
    the systole's share of the cycle in `systole_fraction`; at least one diastole frame."""
    draw = np.random.default_rng(seed)
    low, high = timing["systole_frames_range"] if vary_timing else (timing["systole_frames"],) * 2
    systole = int(draw.integers(low, high + 1))
    cycle = max(int(round(systole / draw.uniform(*timing["systole_fraction"]))), systole + 1)
    return systole, cycle, int(draw.integers(cycle)) if vary_timing else 0


def synthesize_clips(
    dataset_dir: str | os.PathLike, out_dir: str | os.PathLike, generate: GeneratorFn, timing: dict,
    splits: Sequence[str] = ("training", "validation"), views: Sequence[str] = ("4CH", "2CH"),
    max_clips: int | None = None, seed: int = 0, batch_size: int = 32, progress: bool = True, k: int = 1,
    augment: bool = False, vary_timing: bool = False, renewal: float = 0.0,
) -> dict:  # fmt: skip
    """`k` synthetic clips per patient view of `splits` (at most `max_clips` patient views per split) into `out_dir`
    (module docstring); `timing` as from `echonet_timing` or `given_timing`. Clip c > 0 of a patient view is named
    `<patient>_<view>_<c>`. Returns {"clips", "written", "frames", "frames_per_s", "fit_dice_es"}."""
    if int(k) != k or k < 1:
        raise ConfigValueError(f"k={k!r}; expected a whole number of clips per patient view >= 1")
    _check_renewal(renewal)
    out = Path(out_dir)
    size = generate.image_size
    _claim(out, {"dataset_dir": str(Path(dataset_dir).resolve()), "timing": timing, "splits": list(splits),
                 "views": list(views), "max_clips": max_clips, "seed": seed, "generator": generate.info,
                 "image_size": size, "k": int(k), "augment": bool(augment), "vary_timing": bool(vary_timing),
                 "renewal": float(renewal)})  # fmt: skip
    pairs = [(split, pair) for split in splits for pair in _pairs(dataset_dir, split, views)[:max_clips]]
    if not pairs:
        raise EmptySplitError(f"{dataset_dir}: no patient view with both ED and ES frames in splits {list(splits)}")
    plan = [(index, split, pair, copy) for index, (split, pair) in enumerate(pairs) for copy in range(int(k))]
    augmentation = RandLabelMapAugmentd(keys=("ed", "es")) if augment else None
    rows, fit_dice, written, start, frames_done = [], [], 0, time.perf_counter(), 0
    for index, split, (ed_item, es_item), copy in tqdm(plan, desc="clips", unit="clip", disable=not progress):
        name = f"{ed_item['patient']}_{ed_item['view']}" + (f"_{copy}" if copy else "")
        video, labels_path, record_path = (out / "Videos" / f"{name}.avi", out / "Labels" / f"{name}.npy",
                                           out / "Labels" / f"{name}.json")  # fmt: skip
        labels = None
        if not (video.is_file() and labels_path.is_file() and record_path.is_file()):
            clip_seed = case_seed(seed, index, copy)
            maps = {"ed": source_condition_map(ed_item, size)[0], "es": source_condition_map(es_item, size)[0]}
            if augmentation is not None:  # one draw for both phases: the pair stays one heart
                augmentation.set_random_state(clip_seed)
                maps = augmentation(maps)
            systole, cycle, first = _cycle(timing, vary_timing, clip_seed)
            one_cycle, dice = label_cycle(camus_labels_of_condition(maps["ed"][0]),
                                          camus_labels_of_condition(maps["es"][0]), cycle, systole)  # fmt: skip
            labels = one_cycle[(first + torch.arange(cycle)) % cycle]
            images = clip_frames(generate, clip_condition_maps(maps["ed"][0] > 0, labels), clip_seed, ed_item["view"],
                                 renewal, batch_size)  # fmt: skip
            frames = (images[:, 0] * 255).round().to(torch.uint8).numpy()
            _write_avi(video, frames, timing["fps"])
            atomic_write(labels_path, lambda tmp, lab=labels.numpy(): np.save(tmp, lab), suffix=".npy")
            atomic_write_json(record_path, {"fit_dice_es": dice, "seed": clip_seed, "view": ed_item["view"],
                                            "copy": copy, "systole_frames": systole, "cycle_frames": cycle,
                                            "ed_frame": -first % cycle, "es_frame": (systole - first) % cycle})
            written, frames_done = written + 1, frames_done + len(frames)
        labels = np.load(labels_path) if labels is None else labels.numpy()
        record = json.loads(record_path.read_text())
        fit_dice.append(record["fit_dice_es"])
        area = (labels == 1).sum(axis=(1, 2))
        area_ed = area[record["ed_frame"]]
        rows.append([name, 100 * (area_ed - area.min()) / max(area_ed, 1), "nan", "nan", size, size, timing["fps"],
                     len(labels), ECHONET_SPLITS[split]])  # fmt: skip
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([FILELIST_HEADER, *rows])
    atomic_write_text(out / "FileList.csv", text.getvalue())
    seconds = time.perf_counter() - start
    return {"clips": len(plan), "written": written, "frames": frames_done,
            "frames_per_s": frames_done / seconds if frames_done else 0.0, "fit_dice_es": float(np.mean(fit_dice))}
