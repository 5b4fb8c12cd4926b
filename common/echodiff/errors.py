"""Errors a user can act on: each names the file or key and what was expected."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn


class EchoDataError(ValueError):
    """Base class for bad-input errors in echodiff data handling."""


class MissingFileError(EchoDataError, FileNotFoundError):
    """An image, label map, split file or folder that should exist does not."""


class LabelValueError(EchoDataError):
    """A label map holds values outside the expected label set."""


class ShapeMismatchError(EchoDataError):
    """Two arrays that must share a shape (image/label, label/model) do not."""


class CorruptFileError(EchoDataError):
    """A file exists but cannot be read as the format its name promises."""


class EmptySplitError(EchoDataError):
    """A split file or dataset folder yields no cases."""


class ConfigKeyError(EchoDataError, KeyError):
    """A config value (sampler, model, split name...) is not one of the known choices."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ConfigValueError(EchoDataError):
    """A config value is outside its allowed range (t_prime > T, ensemble < 1, steps > t_prime...)."""


_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def as_flag(value: object, key: str) -> bool:
    """A boolean option as given on a command line: `--resume false` reaches a bundle config as the string "false"
    (MONAI's and fire's parsers only turn `False` into a bool), which Python would read as true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (str, int)) and str(value).strip().lower() in _FLAGS:
        return _FLAGS[str(value).strip().lower()]
    raise ConfigValueError(f"{key}={value!r}; expected true or false")


def user_error(error: BaseException) -> EchoDataError | None:
    """The EchoDataError behind `error` (itself, or one it was raised from, e.g. inside a bundle config), else None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, EchoDataError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def exit_with_error(error: BaseException | str) -> NoReturn:
    """Print "error: <message>" as the last line of the output (a multi-line message: its last line) and end the
    process with exit code 1.

    The process ends with `os._exit` after flushing the logs and streams, skipping interpreter finalization: data-loading
    worker threads (MONAI's CacheDataset fills its cache in a thread pool) may still be inside torch when a bad file
    stops the run, and finalization ends such threads with pthread_exit, whose unwinding through a C++ noexcept frame
    aborts the process ("terminate called without an active exception", exit code 134).
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    *details, last = str(error).splitlines() or [""]
    print("\n".join([*details, f"error: {last}"]), file=sys.stderr, flush=True)
    os._exit(1)


def _user_error_hook(previous: Callable) -> Callable:
    def hook(kind: type[BaseException], error: BaseException, traceback: object) -> None:
        found = user_error(error)
        if found is None or os.environ.get("ECHODIFF_TRACEBACK") == "1":
            previous(kind, error, traceback)
            return
        exit_with_error(found)

    hook.echodiff_user_errors = True  # type: ignore[attr-defined]
    return hook


def install_excepthook() -> None:
    """Make an uncaught echodiff bad-input error, also one that MONAI's config parser or ignite re-raised as its own,
    end the output with its one-line message (exit code 1, the interpreter's for any uncaught exception).

    Installed when echodiff is imported, so it covers `python -m monai.bundle run ...` with our configs. Any other
    exception keeps its traceback (the previous hook runs); ECHODIFF_TRACEBACK=1 shows ours in full too. Idempotent.
    """
    if not getattr(sys.excepthook, "echodiff_user_errors", False):
        sys.excepthook = _user_error_hook(sys.excepthook)


def run_cli(main: Callable[[], object]) -> None:
    """Run a command-line entry point: a bad input (EchoDataError, also when wrapped by MONAI's config parser) ends
    with its one-line message on stderr and exit code 1 (`exit_with_error`); ECHODIFF_TRACEBACK=1 shows the full
    traceback instead."""
    try:
        main()
    except Exception as error:  # noqa: BLE001 - only user errors are caught, the rest is re-raised
        found = user_error(error)
        if found is None or os.environ.get("ECHODIFF_TRACEBACK") == "1":
            raise
        exit_with_error(found)
