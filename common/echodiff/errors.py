"""Errors a user can act on: each names the file or key and what was expected."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


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


def run_cli(main: Callable[[], object]) -> None:
    """Run a command-line entry point: a bad input (EchoDataError, also when wrapped by MONAI's config parser) ends
    with its one-line message on stderr and exit code 1; ECHODIFF_TRACEBACK=1 shows the full traceback instead."""
    try:
        main()
    except Exception as error:  # noqa: BLE001 - only user errors are caught, the rest is re-raised
        found = user_error(error)
        if found is None or os.environ.get("ECHODIFF_TRACEBACK") == "1":
            raise
        print(f"error: {found}", file=sys.stderr)
        raise SystemExit(1) from None
