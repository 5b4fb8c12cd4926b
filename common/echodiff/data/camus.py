"""CAMUS data layer: list cases (2023 NIfTI or legacy .mhd layout), read them in display orientation, write them back.

Orientation: the official NIfTI release stores each frame so that nibabel returns (W, H); ITK reads the
legacy `.mhd` files as (1, H, W) in numpy order. MONAI's `NibabelReader` and `ITKReader` (default
`reverse_indexing=False`) both return the spatial order (W, H[, 1]), so one transpose gives (H, W) for both.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import ITKReader, MetaTensor, NibabelReader
from monai.data.utils import to_affine_nd
from monai.transforms import MapTransform

from ..errors import (
    ConfigKeyError,
    ConfigValueError,
    CorruptFileError,
    EchoDataError,
    EmptySplitError,
    LabelValueError,
    MissingFileError,
    ShapeMismatchError,
)
from ..io import atomic_write

__all__ = [
    "CAMUS_LABELS",
    "PHASES",
    "SPLITS",
    "VIEWS",
    "LoadCAMUSd",
    "frame_meta",
    "holdout_view",
    "camus_frame_shape",
    "label_grid",
    "list_camus",
    "read_camus_array",
    "read_camus_frame",
    "write_camus_nifti",
    "write_split_file",
]

CAMUS_LABELS = {0: "background", 1: "LV cavity", 2: "myocardium", 3: "left atrium"}
VIEWS = ("2CH", "4CH")
PHASES = ("ED", "ES")
SPLITS = ("training", "validation", "testing")

NIFTI_FOLDER = "database_nifti"
SPLIT_FOLDER = "database_split"
LEGACY_SPLIT_FOLDERS = ("training", "testing")
_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_ITK_SUFFIXES = (".mhd", ".mha")


def split_file_path(dataset_dir: str | os.PathLike, split: str) -> Path:
    """`<dataset_dir>/database_split/subgroup_<split>.txt`, the official CAMUS 2023 split file."""
    return Path(dataset_dir) / SPLIT_FOLDER / f"subgroup_{split}.txt"


def list_camus(
    dataset_dir: str | os.PathLike,
    split: str | None = "training",
    views: Sequence[str] | str = VIEWS,
    phases: Sequence[str] | str = PHASES,
    require_label: bool = True,
) -> list[dict]:
    """List the cases of one split as MONAI-style dicts, one per (patient, view, phase).

    Layouts (auto-detected): CAMUS 2023 NIfTI, `<dir>/database_nifti/patientXXXX/patientXXXX_<view>_<phase>[_gt].nii.gz`
    with `<dir>/database_split/subgroup_<split>.txt`; or the legacy release,
    `<dir>[/training|/testing]/patientXXXX/patientXXXX_<view>_<phase>[_gt].mhd`. For the legacy layout a named split
    without a split file is taken from the `training/` or `testing/` sub-folder when that exists.
    `split="all"` (or None) lists every patient folder found.
    """
    views, phases = _checked_choices(views, VIEWS, "view"), _checked_choices(phases, PHASES, "phase")
    root = Path(dataset_dir)
    if not root.is_dir():
        raise MissingFileError(f"CAMUS dataset folder {root} does not exist.")
    if split is not None and split != "all" and split not in SPLITS:
        raise ConfigKeyError(f"split {split!r} is not one of {', '.join(SPLITS)}, all.")
    nifti = (root / NIFTI_FOLDER).is_dir()
    folders = _patient_folders(root, nifti)
    if split is None or split == "all":
        patients = sorted(folders)
        if not patients:
            raise EmptySplitError(f"{root} holds no CAMUS patient folders (patientXXXX).")
    else:
        patients = _split_patients(root, split, nifti)
    items = []
    for patient in patients:
        folder = folders.get(patient, root / (NIFTI_FOLDER if nifti else "") / patient)
        items.extend(_patient_items(folder, patient, views, phases, require_label, ".nii.gz" if nifti else ".mhd"))
    return items



def label_grid(dataset_dir: str | os.PathLike, split: str) -> list[int]:
    """The (H, W) grid of the label maps of `split`, where a segmenter is scored by default (distances in the
    dataset's own pixels); label maps of different sizes raise ConfigValueError asking for one grid (--metric_size).
    Reads the file headers only (`camus_frame_shape`)."""
    grids: dict[tuple[int, ...], str] = {}
    for item in list_camus(dataset_dir, split):
        grids.setdefault(camus_frame_shape(item["label"]), item["label"])
        if len(grids) > 1:
            (first, a), (second, b) = grids.items()
            raise ConfigValueError(
                f"label maps of split {split!r} differ in size ({a}: {first}, {b}: {second}); set --metric_size "
                "[H, W] to score them all on one grid"
            )
    return list(next(iter(grids)))

def _checked_choices(values: Sequence[str] | str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    values = (values,) if isinstance(values, str) else tuple(values)
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise ConfigKeyError(f"{what}s {values!r} must be a non-empty selection of {', '.join(allowed)}.")
    return values


def _patient_folders(root: Path, nifti: bool) -> dict[str, Path]:
    parents = [root / NIFTI_FOLDER] if nifti else [root, *(root / s for s in LEGACY_SPLIT_FOLDERS)]
    return {p.name: p for parent in parents if parent.is_dir() for p in sorted(parent.glob("patient*")) if p.is_dir()}


def _split_patients(root: Path, split: str, nifti: bool) -> list[str]:
    split_file = split_file_path(root, split)
    if split_file.is_file():
        lines = (line.strip() for line in split_file.read_text().splitlines())
        patients = list(dict.fromkeys(line for line in lines if line))
        if not patients:
            raise EmptySplitError(f"split file {split_file} lists no patients; expected one patient id per line.")
        return patients
    legacy_folder = root / split
    if not nifti and legacy_folder.is_dir():
        patients = sorted(p.name for p in legacy_folder.glob("patient*") if p.is_dir())
        if not patients:
            raise EmptySplitError(f"{legacy_folder} holds no CAMUS patient folders (patientXXXX).")
        return patients
    present = sorted(p.name for p in split_file.parent.glob("subgroup_*.txt")) if split_file.parent.is_dir() else []
    raise MissingFileError(
        f"split file {split_file} does not exist (split files present: {', '.join(present) or 'none'}); "
        f"write it (one patient id per line), or name an existing split on the command line (--train_split, "
        f"--val_split or --split; 'all' takes every patient folder)."
    )


def _patient_items(
    folder: Path, patient: str, views: Iterable[str], phases: Iterable[str], require_label: bool, suffix: str
) -> list[dict]:
    items = []
    for view in views:
        info = read_info_cfg(folder / f"Info_{view}.cfg")
        for phase in phases:
            image, label = folder / f"{patient}_{view}_{phase}{suffix}", folder / f"{patient}_{view}_{phase}_gt{suffix}"
            if not image.is_file():
                raise MissingFileError(f"CAMUS image {image} does not exist.")
            item = {"image": str(image)}
            if label.is_file():
                item["label"] = str(label)
            elif require_label:
                raise MissingFileError(f"CAMUS label map {label} does not exist (needed because require_label=True).")
            item.update(
                patient=patient, view=view, phase=phase, view_index=VIEWS.index(view), source=str(image), info=info
            )
            items.append(item)
    return items


def read_info_cfg(path: Path) -> dict:
    """Parse a CAMUS `Info_<view>.cfg` ("Key: value" lines) into a dict; numbers become int/float; {} when absent."""
    if not path.is_file():
        return {}
    info: dict[str, int | float | str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = _number_or_text(value.strip())
    return info


def _number_or_text(value: str) -> int | float | str:
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return value


def read_camus_array(path: str | os.PathLike) -> tuple[np.ndarray, tuple[float, float]]:
    """Read one CAMUS frame as an (H, W) array in display orientation plus its (row, column) pixel spacing in mm."""
    array, affine = read_camus_frame(path)
    spacing_x, spacing_y = np.linalg.norm(affine[:3, :2], axis=0)
    return array, (float(spacing_y), float(spacing_x))


def camus_frame_shape(path: str | os.PathLike) -> tuple[int, int]:
    """The (H, W) of a CAMUS frame from its header alone (NIfTI header, or the `DimSize` line of an `.mhd`), in the
    orientation of `read_camus_frame`: both formats store the frame as (W, H[, 1])."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"CAMUS file {path} does not exist.")
    name = path.name.lower()
    try:
        if name.endswith(_NIFTI_SUFFIXES):
            dims = tuple(int(d) for d in nib.load(str(path)).shape)
        elif name.endswith(".mhd"):
            lines = [line.split("=", 1) for line in path.read_text(errors="replace").splitlines() if "=" in line]
            dims = tuple(int(d) for d in next(v for k, v in lines if k.strip() == "DimSize").split())
        else:
            return read_camus_frame(path)[0].shape  # .mha: header and pixels in one binary file
    except Exception as err:  # nibabel raises many unrelated types for damaged headers; StopIteration: no DimSize
        raise CorruptFileError(f"{path} cannot be read ({type(err).__name__}: {err}).") from err
    if len(dims) == 3 and dims[-1] == 1:
        dims = dims[:2]
    if len(dims) != 2:
        raise ShapeMismatchError(f"{path} has shape {dims}; expected a single 2D frame.")
    return dims[1], dims[0]


def read_camus_frame(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CAMUS frame: the (H, W) array in display orientation and the file's 4x4 affine, which maps the file's
    own index order (column, row, 0) to world coordinates (the reader's `original_affine`)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"CAMUS file {path} does not exist.")
    name = path.name.lower()
    if name.endswith(_NIFTI_SUFFIXES):
        reader = NibabelReader()
    elif name.endswith(_ITK_SUFFIXES):
        reader = ITKReader()
    else:
        raise CorruptFileError(f"{path} is not a CAMUS image; expected a .nii.gz, .nii or .mhd file.")
    try:
        array, meta = reader.get_data(reader.read(str(path)))
    except Exception as err:  # nibabel, gzip and ITK raise many unrelated types for damaged files
        raise CorruptFileError(f"{path} cannot be read ({type(err).__name__}: {err}).") from err
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ShapeMismatchError(f"{path} has shape {array.shape}; expected a single 2D frame.")
    affine = to_affine_nd(3, np.asarray(meta["original_affine"], dtype=np.float64))
    return np.ascontiguousarray(array.T), affine


def frame_meta(path: str | os.PathLike, shape_hw: Sequence[int], file_affine: np.ndarray) -> dict:
    """MetaTensor metadata of a channel-first (1, H, W) frame read from `path`.

    `affine` maps the frame's (row, column) index to world (the file affine with its first two columns swapped), so
    MONAI's spatial transforms and `Invertd` keep it right. `original_affine` maps the (channel, row, column) index of
    the whole channel-first array to world: MONAI Label's `Restored` resizes a prediction back to `spatial_shape` and
    writes it, channel axis included, with `original_affine`, so this choice lands its 2D label maps exactly on the
    source image in any viewer (a 2D NIfTI or `.mhd` frame, seen as a volume of one slice).
    """
    display = file_affine[:, [1, 0, 2, 3]]
    channel_first = file_affine[:, [2, 1, 0, 3]]
    return {"filename_or_obj": str(path), "spatial_shape": np.asarray(shape_hw, dtype=np.int64),
            "affine": torch.as_tensor(display), "original_affine": channel_first, "original_channel_dim": 0}


class LoadCAMUSd(MapTransform):
    """Replace CAMUS file paths by channel-first MetaTensors: image float32 (1, H, W), label int64 (1, H, W), with the
    metadata of `frame_meta` (source file, spatial shape, affines).

    Intensities are the stored values (no scaling). Adds `spacing` = [row, column] mm (float32) from the image.
    Raises `LabelValueError` for labels outside 0..3 and `ShapeMismatchError` when image and label differ in shape.
    """

    def __init__(
        self,
        keys: Sequence[Hashable] | Hashable = ("image", "label"),
        allow_missing_keys: bool = True,
        image_key: Hashable = "image",
        label_key: Hashable = "label",
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key, self.label_key = image_key, label_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        sources = {}
        for key in self.key_iterator(d):
            sources[key] = d[key]
            array, affine = read_camus_frame(d[key])
            if key == self.label_key:
                array = checked_label_map(array, d[key])
            meta = frame_meta(d[key], array.shape, affine)
            d[key] = MetaTensor(array[None].astype(np.int64 if key == self.label_key else np.float32), meta=meta)
            if key == self.image_key or "spacing" not in d:
                spacing_x, spacing_y = np.linalg.norm(affine[:3, :2], axis=0)
                d["spacing"] = np.asarray((spacing_y, spacing_x), dtype=np.float32)
        if self.image_key in sources and self.label_key in sources:
            image_shape, label_shape = d[self.image_key].shape[1:], d[self.label_key].shape[1:]
            if image_shape != label_shape:
                raise ShapeMismatchError(
                    f"image {sources[self.image_key]} has shape {tuple(image_shape)} but label map "
                    f"{sources[self.label_key]} has shape {tuple(label_shape)}; expected the same (H, W)."
                )
        return d


def checked_label_map(array: np.ndarray, source: str | os.PathLike) -> np.ndarray:
    """Return `array` as int64 after checking that it only holds CAMUS labels 0..3; `source` names it in errors."""
    values = np.unique(array)
    unexpected = [v for v in values.tolist() if v not in CAMUS_LABELS]
    if unexpected:
        shown = ", ".join(str(int(v)) if float(v).is_integer() else str(v) for v in values.tolist())
        names = ", ".join(CAMUS_LABELS.values())
        raise LabelValueError(f"{source} has label values {{{shown}}}; expected CAMUS labels 0..3 ({names}).")
    return array.astype(np.int64)


def write_camus_nifti(
    path: str | os.PathLike, array_hw: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)
) -> Path:
    """Write an (H, W) uint8 frame as the official CAMUS 2023 release does (nibabel (W, H)), atomically.

    `spacing` is (row, column) in mm, stored as the NIfTI zooms (x = column, y = row).
    """
    path = Path(path)
    array = np.asarray(array_hw)
    if array.ndim != 2:
        raise ShapeMismatchError(f"array for {path} has shape {array.shape}; expected a 2D (H, W) frame.")
    if array.dtype != np.uint8:
        if not np.all(np.isin(array, np.arange(256))):
            raise EchoDataError(
                f"array for {path} is {array.dtype} with values outside the integers 0..255; expected uint8."
            )
        array = array.astype(np.uint8)
    affine = np.diag([float(spacing[1]), float(spacing[0]), 1.0, 1.0])
    image = nib.Nifti1Image(np.ascontiguousarray(array.T), affine)
    atomic_write(path, lambda tmp: nib.save(image, tmp), suffix="".join(path.suffixes))
    return path


def holdout_view(
    dataset_dir: str | os.PathLike, out_dir: str | os.PathLike, holdout: int, seed: int = 0,
    train_split: str = "training", eval_split: str | None = "validation",
) -> Path:
    """A CAMUS 2023-layout view of `dataset_dir` for an unbiased train / select / evaluate protocol, without copying
    any image: `out_dir/database_nifti` links to the source, and its split files hold training = `train_split` minus
    `holdout` patients drawn at random (`seed`), validation = those `holdout` patients (for checkpoint selection) and
    testing = the source's `eval_split` (only ever evaluated; no testing split when None). Rewrites the split files;
    returns `out_dir`."""
    source, out = Path(dataset_dir).resolve(), Path(out_dir)
    if not (source / NIFTI_FOLDER).is_dir():
        raise MissingFileError(
            f"{source / NIFTI_FOLDER} does not exist; holdout_view needs the CAMUS 2023 NIfTI layout."
        )
    train = _split_patients(source, train_split, nifti=True)
    evaluated = _split_patients(source, eval_split, nifti=True) if eval_split is not None else None
    if not 0 < holdout < len(train):
        raise ConfigValueError(
            f"holdout={holdout}; expected 1..{len(train) - 1} of the {len(train)} {train_split} patients."
        )
    held = set(np.random.default_rng(seed).choice(train, size=holdout, replace=False).tolist())
    out.mkdir(parents=True, exist_ok=True)
    link = out / NIFTI_FOLDER
    if link.is_symlink() and link.resolve() != (source / NIFTI_FOLDER).resolve():
        link.unlink()
    if not link.exists():
        link.symlink_to(source / NIFTI_FOLDER, target_is_directory=True)
    write_split_file(out, "training", [p for p in train if p not in held])
    write_split_file(out, "validation", [p for p in train if p in held])
    if evaluated is not None:
        write_split_file(out, "testing", evaluated)
    return out


def write_split_file(dataset_dir: str | os.PathLike, split: str, patients: Iterable[str]) -> Path:
    """Write `<dataset_dir>/database_split/subgroup_<split>.txt`, one patient id per line, atomically."""
    if split not in SPLITS:
        raise ConfigKeyError(f"split {split!r} is not one of {', '.join(SPLITS)}.")
    path = split_file_path(dataset_dir, split)
    text = "".join(f"{p}\n" for p in patients)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text), suffix=".txt")
    return path
