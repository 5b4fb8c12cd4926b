"""Resumable training: find the newest interval checkpoint that MONAI's CheckpointSaver wrote and reload it."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from monai.handlers import CheckpointLoader

_EPOCH = re.compile(r"checkpoint_epoch=(\d+)\.pt$")


def latest_checkpoint(ckpt_dir: str | Path) -> str | None:
    """Path of the `*checkpoint_epoch=N.pt` file with the largest N in `ckpt_dir`, or None when there is none."""
    found = [(int(m.group(1)), p) for p in Path(ckpt_dir).glob("*checkpoint_epoch=*.pt") if (m := _EPOCH.search(p.name))]
    return str(max(found)[1]) if found else None


def resume_handlers(ckpt_dir: str | Path, load_dict: dict, enabled: bool = True) -> list[CheckpointLoader]:
    """A CheckpointLoader for the newest interval checkpoint in `ckpt_dir` (empty list when none or disabled), so a killed
    training run restarted with the same config continues from its last finished epoch."""
    path = latest_checkpoint(ckpt_dir) if enabled else None
    if path is None:
        return []
    return [CheckpointLoader(load_path=path, load_dict=load_dict, map_location=torch.device("cpu"), strict=True)]
