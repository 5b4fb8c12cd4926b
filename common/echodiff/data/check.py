"""Check a CAMUS-layout folder up front and report every bad file at once (`scripts/check_dataset.py`).

A training run stops at the first bad file it loads; this reads every file of the chosen splits once and lists all
problems: split files naming missing patients, missing or unreadable images, label maps with values outside 0..3, and
label maps whose size differs from their image's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from echodiff.data.camus import (
    NIFTI_FOLDER,
    SPLITS,
    _patient_folders,
    _patient_items,
    _split_patients,
    checked_label_map,
    read_camus_frame,
    split_file_path,
)
from echodiff.errors import EchoDataError, EmptySplitError, MissingFileError

__all__ = ["camus_problems", "check_camus"]


def _files(root: Path, splits: Sequence[str], problems: list[str]) -> list[dict]:
    """The cases of `splits`, one per (patient, view, phase) and never twice; problems of the listing go to
    `problems` (a patient with a missing image is listed there, not dropped silently)."""
    nifti = (root / NIFTI_FOLDER).is_dir()
    folders = _patient_folders(root, nifti)
    items, seen = [], set()
    for split in splits:
        try:
            patients = sorted(folders) if split == "all" else _split_patients(root, split, nifti)
        except EchoDataError as error:
            problems.append(f"split {split}: {error}")
            continue
        for patient in patients:
            if patient in seen:
                continue
            seen.add(patient)
            folder = folders.get(patient)
            if folder is None:
                problems.append(f"split {split} lists {patient}, which has no folder in {root}")
                continue
            try:
                items.extend(_patient_items(folder, patient, ("2CH", "4CH"), ("ED", "ES"), False,
                                            ".nii.gz" if nifti else ".mhd"))  # fmt: skip
            except EchoDataError as error:
                problems.append(str(error))
    return items


def _item_problems(item: dict) -> list[str]:
    try:
        image, _ = read_camus_frame(item["image"])
    except EchoDataError as error:
        image, problems = None, [str(error)]
    else:
        problems = []
    if "label" in item:
        try:
            label = checked_label_map(read_camus_frame(item["label"])[0], item["label"])
        except EchoDataError as error:
            problems.append(str(error))
        else:
            if image is not None and image.shape != label.shape:
                problems.append(f"label map {item['label']} has shape {label.shape} but its image {item['image']} has "
                                f"shape {image.shape}; expected the same (H, W)")  # fmt: skip
    return problems


def camus_problems(
    dataset_dir: str | os.PathLike, splits: Sequence[str] | str | None = None, require_label: bool = False,
    progress: bool = False,
) -> tuple[int, list[str]]:  # fmt: skip
    """(number of files read, every problem found) for `splits` of a CAMUS-layout folder (default: every split that has
    a split file, else all patient folders). `require_label` also reports images without a label map."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise MissingFileError(f"CAMUS dataset folder {root} does not exist.")
    if isinstance(splits, str):
        splits = [s for s in splits.split(",") if s]
    splits = list(splits or [s for s in SPLITS if split_file_path(root, s).is_file()] or ["all"])
    problems: list[str] = []
    items = _files(root, splits, problems)
    if not items and not problems:
        raise EmptySplitError(f"{root} holds no CAMUS cases in split(s) {', '.join(splits)}.")
    n_files = 0
    for item in tqdm(items, desc=f"checking {root.name}", unit="case", disable=not progress):
        if require_label and "label" not in item:
            problems.append(f"CAMUS label map missing for {item['image']}")
        problems.extend(_item_problems(item))
        n_files += 1 + ("label" in item)
    return n_files, problems


def check_camus(dataset_dir: str | os.PathLike, splits: Sequence[str] | str | None = None, require_label: bool = False,
                progress: bool = False) -> int:  # fmt: skip
    """Raise one `EchoDataError` listing every problem of `camus_problems`, one per line, and the count in its last line;
    else return the number of files read."""
    n_files, problems = camus_problems(dataset_dir, splits, require_label, progress)
    if problems:
        listing = "\n".join(f"  {p}" for p in problems)
        raise EchoDataError(f"{listing}\n{len(problems)} problem(s) in {dataset_dir} ({n_files} files read): the files "
                            "listed above; fix or remove them")  # fmt: skip
    return n_files
