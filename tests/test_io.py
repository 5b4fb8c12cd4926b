"""Atomic writes (echodiff.io): results other users can read, and nothing half-written left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from echodiff.io import atomic_write, atomic_write_json


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomically_written_files_get_the_mode_of_a_plain_open(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        written = atomic_write_json(tmp_path / "report.json", {"dice": 90.0})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(written.stat().st_mode) == mode == stat.S_IMODE(plain.stat().st_mode)


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path: Path) -> None:
    def fail(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "model.pt", fail, suffix=".pt")
    assert list(tmp_path.iterdir()) == []
