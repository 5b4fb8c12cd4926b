"""Run controls for bundle trainers: a wall-clock budget that stops at an epoch boundary (and sizes the LR schedule to
it), and a quiet progress bar.

Bundle configs call them from their `training` list, e.g.
`"$echodiff.engines.stop_after(@train#trainer, @time_limit_minutes, @lr_scheduler)"`; `None` / `false` leaves the
trainer as is.
"""

from __future__ import annotations

import time

from ignite.contrib.handlers import ProgressBar
from ignite.engine import Engine, Events
from torch.optim.lr_scheduler import LRScheduler

from echodiff.errors import ConfigValueError, as_flag

__all__ = ["BudgetSizedSchedule", "TrainingTimeLimit", "progress_bar", "stop_after"]


class TrainingTimeLimit:
    """Stop a trainer once `minutes` of wall-clock time have passed since it started (or resumed).

    The running epoch is cut short (`Engine.terminate_epoch`), so EPOCH_COMPLETED still fires: validation, the
    best-model saver and the resume checkpoint see that last (partial) epoch; then the run terminates and
    COMPLETED fires. `stopped_early` tells whether the limit was reached.
    """

    def __init__(self, minutes: float) -> None:
        if not minutes > 0:
            raise ConfigValueError(f"time_limit_minutes={minutes!r}; expected a positive number of minutes or null")
        self.limit_s = 60.0 * float(minutes)
        self.start = time.monotonic()
        self.stopped_early = False

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._check)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._stop)

    def _start(self, engine: Engine) -> None:
        self.start = time.monotonic()

    def _check(self, engine: Engine) -> None:
        if not self.stopped_early and time.monotonic() - self.start > self.limit_s:
            self.stopped_early = True
            engine.logger.info(f"time limit of {self.limit_s / 60:.2f} min reached: stopping after this epoch")
            engine.terminate_epoch()

    def _stop(self, engine: Engine) -> None:
        if self.stopped_early:
            engine.terminate()


class BudgetSizedSchedule:
    """Size an LR schedule to the iterations a `TrainingTimeLimit` allows, so that a run stopped by its budget ends at
    the end of its schedule instead of near its peak (a schedule sized to max_epochs x epoch length would barely
    have started decaying).

    From the end of the run's first epoch on (so the measured pace includes a validation), or from `MEASURE_AFTER` of
    the time limit on when the first epoch is longer than that (a large synthetic set whose one epoch outlasts the
    budget would otherwise stop mid-epoch at its peak learning rate), after every iteration the schedule's total steps
    become min(configured t_total, max(iteration + 1, predicted last iteration)); the prediction is the iteration the
    run started (or resumed) at plus the time limit over the seconds per iteration measured since then. A warm-up
    (`warmup_steps` of MONAI's `WarmupCosineSchedule`) keeps its share of the configured schedule, so a one-epoch
    warm-up of a six-epoch schedule stays a sixth of the sized one. Before that, the configured schedule runs. A
    resumed run keeps its progress (step count) from the checkpoint and sizes the rest to its own time limit.
    """

    MEASURE_AFTER = 0.1  # share of the time limit after which the pace is measured even inside the first epoch

    def __init__(self, lr_scheduler: LRScheduler, limit: TrainingTimeLimit) -> None:
        if not isinstance(getattr(lr_scheduler, "t_total", None), int):
            raise ConfigValueError(
                f"lr_scheduler {type(lr_scheduler).__name__} has no total step count t_total to size to the time "
                "limit; expected a schedule such as monai.optimizers.WarmupCosineSchedule"
            )
        self.lr_scheduler, self.limit = lr_scheduler, limit
        self.configured_total = lr_scheduler.t_total
        self.configured_warmup = getattr(lr_scheduler, "warmup_steps", None)
        self.start_iteration = 0
        self.measuring = False

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._measure)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._resize)

    def _start(self, engine: Engine) -> None:
        self.start_iteration, self.measuring = engine.state.iteration, False
        self._size(self.configured_total)

    def _measure(self, engine: Engine) -> None:
        self.measuring = True

    def _resize(self, engine: Engine) -> None:
        done = engine.state.iteration - self.start_iteration
        elapsed = time.monotonic() - self.limit.start
        if done < 1 or elapsed <= 0:
            return
        if not self.measuring and elapsed < self.MEASURE_AFTER * self.limit.limit_s:
            return
        self.measuring = True
        predicted = self.start_iteration + int(self.limit.limit_s * done / elapsed)
        self._size(min(self.configured_total, max(engine.state.iteration + 1, predicted)))

    def _size(self, total: int) -> None:
        self.lr_scheduler.t_total = total
        if self.configured_warmup is not None:
            self.lr_scheduler.warmup_steps = min(self.configured_warmup,
                                                 round(self.configured_warmup * total / max(1, self.configured_total)))


def stop_after(
    trainer: Engine, minutes: float | None, lr_scheduler: LRScheduler | None = None
) -> TrainingTimeLimit | None:
    """Attach a `TrainingTimeLimit` of `minutes` to `trainer` and, given the trainer's `lr_scheduler`, a
    `BudgetSizedSchedule` that sizes it to that limit (nothing when `minutes` is None: the schedule stays as
    configured, e.g. max_epochs x epoch length)."""
    if minutes is None:
        return None
    limit = TrainingTimeLimit(minutes)
    limit.attach(trainer)
    if lr_scheduler is not None:
        BudgetSizedSchedule(lr_scheduler, limit).attach(trainer)
    return limit


def progress_bar(trainer: Engine, enabled: bool = False, desc: str | None = None) -> ProgressBar | None:
    """Attach one tqdm progress bar over the whole run (iterations of all epochs) when `enabled`."""
    if not as_flag(enabled, "progress_bar"):
        return None
    bar = ProgressBar(persist=False, desc=desc or "training")
    bar.attach(trainer, metric_names=None, output_transform=None)
    return bar
