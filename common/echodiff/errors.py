"""Errors a user can act on: each names the file or key and what was expected."""

from __future__ import annotations


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
