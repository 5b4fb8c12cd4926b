"""Atomic file writes: a killed job never leaves a half-written file under the final name."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike, write: Callable[[str], object], suffix: str = "") -> Path:
    """Run `write(temp_path)` on a temp file `.<name>.*<suffix>` beside `path`, then rename it over `path`.
    `suffix` keeps the extension that format-sniffing writers (nibabel, PIL, torch) look at."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
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
