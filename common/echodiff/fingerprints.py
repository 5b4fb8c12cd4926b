"""Fingerprints of what a run was made from: SHA-256 of canonical JSON, of file contents, of a CAMUS dataset's splits,
and of the code (echodiff's source, torch and MONAI versions).

The study's stage cache (`echodiff.study.cache`) and the resume guard of every training bundle
(`echodiff.engines.resume_handlers`) use them to refuse reusing work made from other inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import monai
import torch

import echodiff
from echodiff.data.camus import list_camus, split_file_path

__all__ = ["camus_digest", "code_identity", "file_digest", "files_digest", "fingerprint", "source_digest"]

SOURCE_ROOT = Path(__file__).resolve().parent  # the echodiff package whose .py files `source_digest` hashes


def fingerprint(key: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of `key` (objects that JSON cannot hold enter as their `str`)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of one file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_digest(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> str:
    """SHA-256 over (name relative to `root`, content digest) of every file, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        name = str(path.relative_to(root)) if root is not None else path.name
        digest.update(f"{name}\0{file_digest(path)}\n".encode())
    return digest.hexdigest()


def camus_digest(dataset_dir: str | os.PathLike, splits: Sequence[str] | str) -> str:
    """Content digest of the split files and of every image / label file of `splits` in a CAMUS-layout folder."""
    root = Path(dataset_dir)
    paths: list[Path] = []
    for split in dict.fromkeys([splits] if isinstance(splits, str) else splits):
        for item in list_camus(root, split, require_label=False):
            paths += [Path(item["image"])] + ([Path(item["label"])] if "label" in item else [])
        if split_file_path(root, split).is_file():
            paths.append(split_file_path(root, split))
    return files_digest(dict.fromkeys(paths), root)


def source_digest(root: str | os.PathLike | None = None) -> str:
    """`files_digest` of every .py file of the echodiff package (`SOURCE_ROOT`, or `root`), by path relative to it."""
    package = Path(root) if root is not None else SOURCE_ROOT
    return files_digest(package.rglob("*.py"), package)


def code_identity() -> dict[str, str]:
    """What code a run was made by: the echodiff version and a digest of its source (`source_digest`, so an edit
    without a version bump counts too), and the torch and MONAI versions."""
    return {"echodiff": echodiff.__version__, "echodiff_source": source_digest(), "torch": torch.__version__,
            "monai": monai.__version__}  # fmt: skip
