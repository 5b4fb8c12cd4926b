"""Resumable training: find the newest interval checkpoint that MONAI's CheckpointSaver wrote and reload it."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import torch
from ignite.engine import Engine
from monai.engines import Evaluator
from monai.handlers import CheckpointLoader, CheckpointSaver
from torch.optim.lr_scheduler import LRScheduler

_EPOCH = re.compile(r"checkpoint_epoch=(\d+)\.pt$")
# what an LR scheduler's state_dict holds about its progress; every other entry defines the schedule itself
_SCHEDULER_PROGRESS = (
    "last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step", "_is_initial", "lr_lambdas",
)


def latest_checkpoint(ckpt_dir: str | Path) -> str | None:
    """Path of the `*checkpoint_epoch=N.pt` file with the largest N in `ckpt_dir`, or None when there is none."""
    paths = Path(ckpt_dir).glob("*checkpoint_epoch=*.pt")
    found = [(int(m.group(1)), p) for p in paths if (m := _EPOCH.search(p.name))]
    return str(max(found)[1]) if found else None


class ResumeCheckpointLoader(CheckpointLoader):
    """MONAI's CheckpointLoader for resuming: LR schedulers take their progress (step count, last LR) from the
    checkpoint but keep the schedule the current config defines (e.g. `t_total` of a warm-up cosine schedule), just
    as the trainer keeps the current `max_epochs`; a run resumed with more epochs then stretches its schedule instead of
    running past the end of the old one."""

    def __call__(self, engine: Engine) -> None:
        schedules = {
            name: {k: copy.deepcopy(obj.__dict__[k]) for k in obj.state_dict() if k not in _SCHEDULER_PROGRESS}
            for name, obj in self.load_dict.items() if isinstance(obj, LRScheduler)
        }
        full = self.load_dict
        saved = torch.load(self.load_path, map_location="cpu", weights_only=True).keys()
        absent = [k for k, obj in full.items() if isinstance(obj, BestMetricState) and k not in saved]
        if absent:  # a checkpoint written before the best score was saved: resume without it
            self.logger.warning(f"{self.load_path} holds no {absent}; the best validation score restarts empty.")
            self.load_dict = {k: v for k, v in full.items() if k not in absent}
        try:
            super().__call__(engine)
        finally:
            self.load_dict = full
        for name, schedule in schedules.items():
            self.load_dict[name].__dict__.update(schedule)


class BestMetricState:
    """The validation's best-so-far as a checkpointable object: the evaluator's `best_metric` / `best_metric_epoch`
    (what best-model handlers such as `AutoencoderSaver` read) and the ranking of each key-metric `CheckpointSaver`.

    Put it into the interval checkpoint (`save_dict`) and the resume `load_dict`: without it a resumed run starts
    with no best, and its first validation overwrites the best checkpoint even when the model got worse.
    """

    def __init__(self, evaluator: Evaluator, savers: list[CheckpointSaver] | tuple = ()) -> None:
        self.evaluator, self.savers = evaluator, list(savers)

    def state_dict(self) -> dict:
        state = self.evaluator.state
        return {"best_metric": float(state.best_metric), "best_metric_epoch": int(state.best_metric_epoch),
                "savers": [saver._key_metric_checkpoint.state_dict() for saver in self.savers]}

    def load_state_dict(self, state_dict: dict) -> None:
        self.evaluator.state.best_metric = state_dict["best_metric"]
        self.evaluator.state.best_metric_epoch = state_dict["best_metric_epoch"]
        for saver, saved in zip(self.savers, state_dict["savers"], strict=True):
            saver.load_state_dict(saved)


def resume_handlers(ckpt_dir: str | Path, load_dict: dict, enabled: bool = True) -> list[CheckpointLoader]:
    """A `ResumeCheckpointLoader` for the newest interval checkpoint in `ckpt_dir` (empty list when none or disabled),
    so a killed training run restarted with the same config continues from its last finished epoch."""
    path = latest_checkpoint(ckpt_dir) if enabled else None
    if path is None:
        return []
    return [ResumeCheckpointLoader(load_path=path, load_dict=load_dict, map_location=torch.device("cpu"), strict=True)]
