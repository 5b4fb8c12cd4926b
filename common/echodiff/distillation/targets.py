"""Teacher soft masks for distillation (Petit et al. 2024, "EchoDFKD", section 3: targets are the teacher's
probabilities, not thresholded masks, and no human label is used).

`produce_targets` runs a 2D teacher segmenter (any network of ours or a user's: (B, 1, H, W) -> (B, C, H, W) logits)
over every frame of a list of sources and stores its probabilities (softmax over its classes, sigmoid of a one-channel
teacher: `echodiff.losses.teacher_probabilities`) compactly, one `<name>.npy` per source
(uint8, shape (T, C, H, W), probability x 255 rounded), next to `targets.json`, the record of what made them. A run
killed half-way resumes (each file is written atomically, finished ones are kept); a folder made by another teacher,
image size or dataset is refused, so targets never silently mix.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import echodiff
from echodiff.errors import ConfigValueError, CorruptFileError, ShapeMismatchError
from echodiff.fingerprints import file_digest, fingerprint
from echodiff.io import atomic_write, atomic_write_json
from echodiff.losses.distillation import teacher_probabilities

from .sources import load_frames

__all__ = ["TARGETS_FILE", "checked_teacher", "produce_targets", "read_target"]

TARGETS_FILE = "targets.json"


@torch.no_grad()
def checked_teacher(teacher: nn.Module, num_classes: int, image_size: Sequence[int]) -> nn.Module:
    """`teacher` after checking on a blank frame that it outputs `num_classes` channels, the class count the student
    and its loss are built for."""
    device = next(teacher.parameters()).device
    classes = int(teacher(torch.zeros(1, 1, *image_size, device=device)).shape[1])
    if classes != int(num_classes):
        raise ShapeMismatchError(
            f"the teacher (teacher_def) outputs {classes} classes but num_classes={num_classes}; expected the same: "
            f"set --num_classes {classes} (the student's classes, and lv_channel, follow the teacher's)"
        )
    return teacher


def _record(teacher: nn.Module, teacher_path: str | os.PathLike, image_size: Sequence[int], sources: Sequence[dict]
            ) -> dict:  # fmt: skip
    return {"teacher": file_digest(teacher_path), "teacher_network": fingerprint({"repr": repr(teacher)}),
            "image_size": [int(s) for s in image_size], "code": f"echodiff {echodiff.__version__}",
            "sources": {s["name"]: file_digest(s["path"]) for s in sources}}  # fmt: skip


def _claim(out_dir: Path, record: dict) -> None:
    """Write the record of a targets folder, or check that an existing one was made with the same teacher and size
    and, for every source name it shares, from the same file content (another split of the same data adds files)."""
    path = out_dir / TARGETS_FILE
    if path.is_file():
        saved = json.loads(path.read_text())
        differ = sorted(k for k in set(saved) | set(record) if k != "sources" and saved.get(k) != record.get(k))
        changed = sorted(n for n, digest in record["sources"].items() if saved["sources"].get(n, digest) != digest)
        if changed:
            differ.append(f"source files ({', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''})")
        if differ:
            raise ConfigValueError(
                f"{out_dir} holds targets made with other inputs ({', '.join(differ)} differ); delete it or set "
                f"--targets_dir to another folder"
            )
        record = {**record, "sources": {**saved["sources"], **record["sources"]}}
    atomic_write_json(path, record)


@torch.no_grad()
def produce_targets(
    teacher: nn.Module,
    teacher_path: str | os.PathLike,
    sources: Sequence[dict],
    out_dir: str | os.PathLike,
    image_size: Sequence[int],
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Teacher probabilities of every frame of `sources` (`list_sources` items) into `out_dir` (module docstring);
    sources whose file exists are skipped. Returns {"sources", "written", "frames", "seconds", "frames_per_s"}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    teacher = teacher.to(device).eval()
    _claim(out, _record(teacher, teacher_path, image_size, sources))
    pending = [s for s in sources if not (out / f"{s['name']}.npy").is_file()]
    start, frames_done = time.perf_counter(), 0
    bar = tqdm(pending, desc="teacher targets", unit="source", disable=not progress, dynamic_ncols=True)
    for source in bar:
        frames = load_frames(source, image_size)
        probs = torch.cat([teacher_probabilities(teacher(chunk[:, None].to(device))).cpu()
                           for chunk in frames.split(batch_size)])  # fmt: skip
        quantised = (probs * 255).round().to(torch.uint8).numpy()
        atomic_write(out / f"{source['name']}.npy", lambda tmp, q=quantised: np.save(tmp, q), suffix=".npy")
        frames_done += len(frames)
        bar.set_postfix(frames_per_s=f"{frames_done / max(time.perf_counter() - start, 1e-9):.1f}")
    seconds = time.perf_counter() - start
    return {"sources": len(sources), "written": len(pending), "frames": frames_done, "seconds": seconds,
            "frames_per_s": frames_done / seconds if seconds > 0 else 0.0}  # fmt: skip


def read_target(targets_dir: str | os.PathLike, source: dict, n_frames: int, image_size: Sequence[int]) -> np.ndarray:
    """The stored (T, C, H, W) uint8 probabilities of one source, checked against its frames."""
    path = Path(targets_dir) / f"{source['name']}.npy"
    if not path.is_file():
        raise CorruptFileError(
            f"{path} does not exist; expected teacher targets for {source['path']} (run the 'targets' workflow of "
            f"configs/train.json first)"
        )
    target = np.load(path)
    if target.ndim != 4 or target.shape[0] != n_frames or tuple(target.shape[2:]) != tuple(image_size):
        raise ShapeMismatchError(
            f"{path} has shape {target.shape}; expected ({n_frames}, classes, {image_size[0]}, {image_size[1]}) for "
            f"{source['path']}: targets made at another image size or from another file (delete the targets folder)"
        )
    return target
