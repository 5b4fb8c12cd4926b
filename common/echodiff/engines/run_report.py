"""Base of the evaluator handlers that collect per-image results over a run and write one report at its end; the final
line of an inference run."""

from __future__ import annotations

import logging
from pathlib import Path

from ignite.engine import Engine, Events


class RunReport:
    """Attach to an engine: `_reset` at STARTED, `_collect` at every ITERATION_COMPLETED, `_report` at COMPLETED.
    Holds the report file and the `extra` entries (dataset, split, device...) copied into it."""

    def __init__(self, output_file: str, extra: dict | None = None) -> None:
        self.output_file = Path(output_file)
        self.extra = dict(extra or {})
        self.logger = logging.getLogger(self.__class__.__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._report)

    def _reset(self, engine: Engine) -> None:
        raise NotImplementedError

    def _collect(self, engine: Engine) -> None:
        raise NotImplementedError

    def _report(self, engine: Engine) -> None:
        raise NotImplementedError


def outputs_written(output_dir: str | Path) -> None:
    """Print where an inference run wrote its outputs, as the run's final line (bundle configs end `run` with it)."""
    print(f"outputs written to {Path(output_dir).resolve()}", flush=True)
