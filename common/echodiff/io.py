"""Atomic file writes: a killed job never leaves a half-written file under the final name."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from echodiff.errors import CorruptFileError, MissingFileError


def _new_file_mode() -> int:
    """The mode `open()` gives a new file: 0o666 less the process umask (read without changing it for long)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], object], suffix: str = "") -> Path:
    """Run `write(temp_path)` on a temp file `.<name>.*<suffix>` beside `path`, then rename it over `path` with the
    mode a plain `open()` would give (umask respected). `suffix` keeps the extension that format-sniffing writers (nibabel, PIL, torch) look at."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _new_file_mode())  # mkstemp creates 0o600; the result is for others to read too
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text), suffix=Path(path).suffix)


def atomic_write_json(path: str | os.PathLike, value: Any) -> Path:
    """Write `value` as indented JSON to `path` atomically."""
    return atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def read_torch_file(path: str | os.PathLike, name: str, hint: str, map_location: Any = "cpu") -> Any:
    """`torch.load(path, weights_only=True)`, with a `MissingFileError` / `CorruptFileError` naming the file and what
    was expected (`name`, e.g. "generator checkpoint"; `hint`, how to get one) instead of torch's errors (whose advice
    to retry with weights_only=False is wrong for a user)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{name} {path} does not exist; {hint}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle, zip and torch raise many unrelated types for foreign or damaged files
        # torch's own message is left out: it advises weights_only=False, wrong for a file that is not ours
        raise CorruptFileError(f"{path} cannot be read as a torch checkpoint ({type(err).__name__}); expected a {name}"
                               ) from err  # fmt: skip
