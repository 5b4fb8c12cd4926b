"""Run controls for bundle trainers: a wall-clock budget that stops at an epoch boundary, and a quiet progress bar.

Bundle configs call them from their `training` list, e.g.
`"$echodiff.engines.stop_after(@train#trainer, @time_limit_minutes)"`; `None` / `false` leaves the trainer as is.
"""

from __future__ import annotations

import time

from ignite.contrib.handlers import ProgressBar
from ignite.engine import Engine, Events

from echodiff.errors import ConfigValueError, as_flag

__all__ = ["TrainingTimeLimit", "progress_bar", "stop_after"]


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


def stop_after(trainer: Engine, minutes: float | None) -> TrainingTimeLimit | None:
    """Attach a `TrainingTimeLimit` of `minutes` to `trainer` (nothing when `minutes` is None)."""
    if minutes is None:
        return None
    limit = TrainingTimeLimit(minutes)
    limit.attach(trainer)
    return limit


def progress_bar(trainer: Engine, enabled: bool = False, desc: str | None = None) -> ProgressBar | None:
    """Attach one tqdm progress bar over the whole run (iterations of all epochs) when `enabled`."""
    if not as_flag(enabled, "progress_bar"):
        return None
    bar = ProgressBar(persist=False, desc=desc or "training")
    bar.attach(trainer, metric_names=None, output_transform=None)
    return bar
