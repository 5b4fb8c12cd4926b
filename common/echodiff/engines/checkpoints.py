"""Resumable training: find the newest interval checkpoint that MONAI's CheckpointSaver wrote and reload it, but only
into a run started with the same inputs (`guard_resume`)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from monai.engines import Evaluator
from monai.handlers import CheckpointLoader, CheckpointSaver
from torch.optim.lr_scheduler import LRScheduler

import echodiff
from echodiff.errors import ConfigValueError, ShapeMismatchError, as_flag
from echodiff.io import atomic_write, atomic_write_json, read_torch_file
from echodiff.networks import unwrap

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


class CheckedCheckpointLoader(CheckpointLoader):
    """MONAI's CheckpointLoader whose failures name the file and what was expected: a missing file
    (`MissingFileError`), one that is not a torch checkpoint (`CorruptFileError`), or one whose weights do not fit the
    network built from the config (`ShapeMismatchError`: e.g. trained with other `filters` or classes).

    `name` / `hint` say what the file should be and how to get one (defaults: a model checkpoint of this bundle's
    training, `--ckpt_path`)."""

    def __init__(self, load_path: str, load_dict: dict, *args: Any, name: str = "model checkpoint",
                 hint: str = "train one with this bundle's configs/train.json or point --ckpt_path at one",
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(load_path, load_dict, *args, **kwargs)
        self.name, self.hint = name, hint

    def __call__(self, engine: Engine) -> None:
        read_torch_file(self.load_path, self.name, self.hint)
        max_epochs = engine.state.max_epochs
        try:
            super().__call__(engine)
        except RuntimeError as error:
            if "state_dict" not in str(error):
                raise
            raise ShapeMismatchError(
                f"{self.load_path} does not fit the network of this config ({str(error).splitlines()[0]}); expected a "
                f"{self.name} trained with the same network settings (e.g. filters, image_size, number of classes)"
            ) from error
        except ValueError as error:  # MONAI: the checkpoint's trainer has run more epochs than max_epochs
            if "in checkpoint is larger than" not in str(error):
                raise
            raise ConfigValueError(
                f"{self.load_path} has trained {engine.state.epoch} epochs, more than max_epochs={max_epochs}; raise "
                "--max_epochs to continue, or start over with --resume false"
            ) from error


class ResumeCheckpointLoader(CheckedCheckpointLoader):
    """`CheckedCheckpointLoader` for resuming: LR schedulers take their progress (step count, last LR) from the
    checkpoint but keep the schedule the current config defines (e.g. `t_total` of a warm-up cosine schedule), just
    as the trainer keeps the current `max_epochs`; a run resumed with more epochs then stretches its schedule instead of
    running past the end of the old one."""

    def __call__(self, engine: Engine) -> None:
        schedules = {
            name: {k: copy.deepcopy(obj.__dict__[k]) for k in obj.state_dict() if k not in _SCHEDULER_PROGRESS}
            for name, obj in self.load_dict.items() if isinstance(obj, LRScheduler)
        }
        full = self.load_dict
        saved = read_torch_file(self.load_path, self.name, self.hint).keys()
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
        state = engine.state
        if state.max_epochs is not None and state.epoch >= state.max_epochs:
            self.logger.warning(f"{self.load_path}: {state.epoch} of max_epochs={state.max_epochs} epochs already "
                                "trained; nothing left to train (raise --max_epochs to continue)")  # fmt: skip


class BestMetricState:
    """The validation's best-so-far as a checkpointable object: the evaluator's `best_metric` / `best_metric_epoch`,
    which `BestModelSaver` reads.

    Put it into the interval checkpoint (`save_dict`) and the resume `load_dict`: without it a resumed run starts
    with no best, and its first validation overwrites the best model even when the model got worse.
    """

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    def state_dict(self) -> dict:
        state = self.evaluator.state
        return {"best_metric": float(state.best_metric), "best_metric_epoch": int(state.best_metric_epoch)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.evaluator.state.best_metric = state_dict["best_metric"]
        self.evaluator.state.best_metric_epoch = state_dict["best_metric_epoch"]


class BestModelSaver:
    """Writes `network`'s weights (a plain state dict, as MONAI's CheckpointSaver writes one object) to `path` after
    every epoch whose validation is the best so far (the evaluator's `best_metric_epoch`, ranked by its
    `metric_cmp_fn`), from the trainer, after that epoch's interval checkpoint.

    Why not MONAI's key-metric CheckpointSaver on the evaluator: it writes the best model during validation, before the
    epoch's interval checkpoint; a run killed between the two resumes from the previous epoch with that epoch's lower
    best score, and the rerun of the epoch may replace the better model on disk with a weaker one. Attach this handler
    after the interval `CheckpointSaver` and after `resume_handlers`' loader: at EPOCH_COMPLETED it then runs after the
    interval checkpoint, and when a run resumes from a checkpoint whose epoch is the best (killed after the interval
    checkpoint, before this write) it writes the model at the start. `path` always holds the weights of the best
    validation recorded in the newest interval checkpoint.
    """

    def __init__(self, evaluator: Evaluator, path: str | Path, network: torch.nn.Module) -> None:
        self.evaluator, self.path, self.network = evaluator, Path(path), network

    def attach(self, trainer: Engine) -> None:
        trainer.add_event_handler(Events.STARTED, self)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, trainer: Engine) -> None:
        if trainer.state.epoch > 0 and self.evaluator.state.best_metric_epoch == trainer.state.epoch:
            self.save(trainer)

    def save(self, trainer: Engine) -> None:
        """Write the best model (subclasses write other formats)."""
        state = unwrap(self.network).state_dict()
        atomic_write(self.path, lambda tmp: torch.save(state, tmp), suffix=".pt")


RUN_INPUTS_FILE = "run_inputs.json"


def _described(inputs: Mapping[str, Any]) -> dict[str, str]:
    """Each input as a short stable text: a network by the SHA-256 of its printed architecture, the rest by value."""
    described = {"code": f"echodiff {echodiff.__version__}"}
    for name, value in inputs.items():
        if isinstance(value, torch.nn.parallel.DistributedDataParallel):  # the same network on one or several GPUs
            value = value.module
        text = repr(value) if isinstance(value, torch.nn.Module) else json.dumps(value, sort_keys=True, default=str)
        described[name] = text if len(text) <= 200 else "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return described


def _interval_checkpoints(ckpt_dir: Path) -> list[Path]:
    return [p for p in ckpt_dir.glob("*checkpoint_epoch=*.pt") if _EPOCH.search(p.name)]


def _rank() -> int:
    """This process's rank in the default process group (0 outside torch.distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def guard_resume(ckpt_dir: str | Path, inputs: Mapping[str, Any], resume: bool = True) -> bool:
    """Whether a run may resume from the interval checkpoints in `ckpt_dir`, given what it is started with.

    `inputs` names what changes the result (e.g. {"data": camus_digest(...), "network": network, "image_size": 64});
    the echodiff version is added. They are recorded in `<ckpt_dir>/run_inputs.json` when a run starts afresh. A run
    with checkpoints made from other (or unrecorded) inputs is refused with a `ConfigValueError` naming what differs and
    how to start over: `--resume false` (its interval checkpoints are then deleted, so none is ever picked up later)
    or another checkpoint folder.
    """
    ckpt_dir = Path(ckpt_dir)
    record = ckpt_dir / RUN_INPUTS_FILE
    current = _described(inputs)
    existing = _interval_checkpoints(ckpt_dir)
    if resume and existing:
        saved = json.loads(record.read_text()) if record.is_file() else None
        if saved == current:
            return True
        differ = "no record of the inputs they were made from" if saved is None else (
            ", ".join(sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))) + " differ")
        raise ConfigValueError(
            f"{ckpt_dir} holds checkpoints of a run started with other inputs ({differ}); resume it with the same "
            f"inputs, or start over with --resume false (deletes its interval checkpoints) or another checkpoint folder"
        )  # fmt: skip
    if _rank() == 0:  # a multi-GPU run's other ranks decide alike from the same files but leave them to rank 0
        for path in existing:
            path.unlink(missing_ok=True)
        atomic_write_json(record, current)
    return False


class _PruneResumedCheckpoint:
    """Deletes the interval checkpoint a run resumed from once the run has written a newer one: MONAI's CheckpointSaver
    prunes (`n_saved`) only the files it wrote itself, so without this a folder keeps one checkpoint per restart.
    Attach after the interval saver."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        newest = latest_checkpoint(self.path.parent)
        if newest is not None and Path(newest) != self.path:
            self.path.unlink(missing_ok=True)


def resume_handlers(
    ckpt_dir: str | Path,
    load_dict: dict,
    enabled: bool = True,
    inputs: Mapping[str, Any] | None = None,
) -> list:
    """A `ResumeCheckpointLoader` for the newest interval checkpoint in `ckpt_dir` (empty list when none or disabled),
    so a killed training run restarted with the same config continues from its last finished epoch, and the handler
    that deletes that checkpoint once the run has written a newer one (attach both after the interval saver: a folder
    keeps the newest interval checkpoint, not one per restart).

    With `inputs` (what the run is started with, see `guard_resume`) a run never resumes from checkpoints made from
    other data or settings: it is refused, and `enabled=False` starts over cleanly."""
    enabled = as_flag(enabled, "resume")
    if inputs is not None:
        enabled = guard_resume(ckpt_dir, inputs, enabled)
    path = latest_checkpoint(ckpt_dir) if enabled else None
    if path is None:
        return []
    return [ResumeCheckpointLoader(load_path=path, load_dict=load_dict, map_location=torch.device("cpu"), strict=True,
                                   name="resume checkpoint", hint="delete it or start over with --resume false"),
            _PruneResumedCheckpoint(path)]  # fmt: skip
