"""EchoNet-Dynamic reader: FileList.csv, VolumeTracings.csv and Videos/*.avi (Ouyang et al., Nature 2020).

Tracing coordinates are in pixels with (x, y) = (column, row) and integer values at pixel centres,
the convention of the official code (``skimage.draw.polygon(rows=y, cols=x)``).
Which traced frame is end-diastole is decided per video by polygon area, larger = ED
(Petit et al. 2024; docs/methods.md section 3): the public code takes the CSV order, which is not reliable.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from echodiff.errors import (
    ConfigKeyError,
    CorruptFileError,
    EchoDataError,
    EmptySplitError,
    MissingFileError,
    ShapeMismatchError,
)

FILELIST_NUMBERS: dict[str, Callable[[str], float | int]] = {
    "EF": float,
    "ESV": float,
    "EDV": float,
    "FrameHeight": int,
    "FrameWidth": int,
    "FPS": float,
    "NumberOfFrames": int,
}
TRACING_COLUMNS = ("FileName", "X1", "Y1", "X2", "Y2", "Frame")
TRACING_ROWS = 21  # row 1: long axis, rows 2-21: chords perpendicular to it
TRACED_FRAMES = 2
SPLITS = ("TRAIN", "VAL", "TEST")


def _video_name(filename: str) -> str:
    """FileName without its ".avi" extension (FileList omits it, VolumeTracings keeps it)."""
    return filename[:-4] if filename.lower().endswith(".avi") else filename


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise MissingFileError(f"{path}: EchoNet-Dynamic {what} not found")
    return path


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in columns if column not in (reader.fieldnames or [])]
        if missing:
            raise CorruptFileError(
                f"{path}: missing columns {missing}; expected the EchoNet-Dynamic header with {list(columns)}"
            )
        return list(reader)


def _number(path: Path, line: int, column: str, text: str, kind: Callable[[str], float | int]) -> float | int:
    try:
        return kind(text)
    except ValueError:
        raise CorruptFileError(
            f"{path}, line {line}: column {column} is {text!r}; expected a number ({kind.__name__})"
        ) from None


def read_filelist(root: str | Path) -> dict[str, dict]:
    """FileList.csv rows keyed by FileName without extension; numbers converted, Split upper-case."""
    path = _require(Path(root) / "FileList.csv", "file list")
    rows = _read_csv(path, ("FileName", "Split", *FILELIST_NUMBERS))
    table: dict[str, dict] = {}
    for line, row in enumerate(rows, start=2):
        info: dict = dict(row)
        for column, kind in FILELIST_NUMBERS.items():
            info[column] = _number(path, line, column, row[column], kind)
        info["Split"] = row["Split"].strip().upper()
        table[_video_name(row["FileName"])] = info
    return table


def read_tracings(root: str | Path) -> dict[str, dict[int, np.ndarray]]:
    """VolumeTracings.csv as {video: {frame: (rows, 4) array of X1, Y1, X2, Y2}} in file order.

    Row counts are not checked here: `list_echonet` reports videos whose tracings are not
    two frames of 21 rows.
    """
    path = _require(Path(root) / "VolumeTracings.csv", "volume tracings")
    grouped: dict[str, dict[int, list[list[float]]]] = {}
    for line, row in enumerate(_read_csv(path, TRACING_COLUMNS), start=2):
        frame = int(_number(path, line, "Frame", row["Frame"], int))
        point = [float(_number(path, line, column, row[column], float)) for column in ("X1", "Y1", "X2", "Y2")]
        grouped.setdefault(_video_name(row["FileName"]), {}).setdefault(frame, []).append(point)
    return {
        video: {frame: np.asarray(points, dtype=np.float64) for frame, points in frames.items()}
        for video, frames in grouped.items()
    }


def _check_tracing(coords: np.ndarray) -> np.ndarray:
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 4 or coords.shape[0] < 3:
        raise ShapeMismatchError(
            f"tracing has shape {coords.shape}; expected (rows, 4) columns X1, Y1, X2, Y2 with rows >= 3 "
            f"(EchoNet-Dynamic: {TRACING_ROWS})"
        )
    return coords


def tracing_polygon(coords: np.ndarray) -> np.ndarray:
    """LV outline (K, 2) of (x, y) points from one traced frame, the official EchoNet-Dynamic rule.

    The long axis (row 1) is dropped; the chords' first ends run down one wall and their
    second ends return up the other: x = concat(X1[1:], flip(X2[1:])), likewise y.
    """
    x1, y1, x2, y2 = _check_tracing(coords)[1:].T
    return np.stack([np.concatenate([x1, x2[::-1]]), np.concatenate([y1, y2[::-1]])], axis=1)


def polygon_area(coords: np.ndarray) -> float:
    """Area in pixels of the traced LV outline (`tracing_polygon`) by the shoelace formula."""
    x, y = tracing_polygon(coords).T
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def tracing_mask(coords: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rasterise a tracing to a (height, width) uint8 mask, with sub-pixel vertices.

    Pixel (r, c) is inside when its centre (x=c, y=r) is inside the polygon: the even-odd crossing
    test of ``skimage.draw.polygon(rows=y, cols=x)``, half-open so that centres on a left/top edge
    of an axis-aligned rectangle are in and on its right/bottom edge out (its pixel count equals its
    area). The official code rounds the vertices to integers first; here they keep sub-pixel values.
    """
    x, y = tracing_polygon(coords).T
    x_next, y_next = np.roll(x, -1), np.roll(y, -1)
    row_centres = np.arange(height, dtype=np.float64)[:, None]
    crosses = (y > row_centres) != (y_next > row_centres)  # (H, K): edge k spans row r
    with np.errstate(divide="ignore", invalid="ignore"):
        x_crossing = x + (row_centres - y) * (x_next - x) / (y_next - y)
    x_crossing = np.where(crosses, x_crossing, -np.inf)
    column_centres = np.arange(width, dtype=np.float64)[None, :, None]
    crossings_to_the_right = (column_centres < x_crossing[:, None, :]).sum(axis=2)
    return (crossings_to_the_right % 2).astype(np.uint8)


GREY_TOLERANCE = 4.0  # mean |R - G| + |G - B| of a grey video stored as colour (MJPG chroma rounding)


def read_video(path: str | Path) -> np.ndarray:
    """All frames of an AVI as grey uint8 (T, H, W), read with OpenCV; colour frames whose channels differ (mean
    channel difference above `GREY_TOLERANCE`, e.g. colour Doppler) are refused: echo videos are grey."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: video file not found")
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if frame.ndim == 3 and len(frames) == 0:
                spread = np.abs(np.diff(frame.astype(np.int16), axis=2)).sum(axis=2).mean()
                if spread > GREY_TOLERANCE:
                    raise ShapeMismatchError(
                        f"{path} has colour frames ({frame.shape[2]} channels that differ by {spread:.1f} grey levels "
                        f"on average); expected a grey echocardiography video (one channel, or equal channels)"
                    )
            frames.append(frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    finally:
        capture.release()
    if not frames:
        raise CorruptFileError(f"{path}: no frames could be decoded; expected an AVI video readable by OpenCV")
    return np.stack(frames)


def _tracing_problem(frames: dict[int, np.ndarray] | None) -> str | None:
    """What is wrong with one video's tracings, or None when they are two frames of 21 rows."""
    if not frames:
        return "has no traced frames"
    if len(frames) != TRACED_FRAMES:
        return f"has {len(frames)} traced frame(s) {sorted(frames)}"
    wrong = {frame: len(rows) for frame, rows in frames.items() if len(rows) != TRACING_ROWS}
    if wrong:
        return f"has traced frames with {wrong} rows (frame: rows)"
    return None


def _split_filter(split: str | None) -> str | None:
    if split is None:
        return None
    if split.upper() not in SPLITS:
        raise ConfigKeyError(f"split {split!r} is not an EchoNet-Dynamic split; expected one of {SPLITS} or None")
    return split.upper()


def list_echonet(
    root: str | Path, split: str | None = None, on_bad: Literal["raise", "skip"] = "raise"
) -> list[dict]:
    """One item per video listed in FileList.csv and present in Videos/, with its ED and ES tracings.

    ED is the traced frame with the larger polygon area, ES the other one (Petit et al. 2024; docs/methods.md section 3);
    equal areas keep the CSV order (first = ED).
    Videos whose tracings are not two frames of 21 rows raise EchoDataError (``on_bad="raise"``)
    or are left out with a warning (``on_bad="skip"``). ``split`` ("train", "val", "test") is
    matched case-insensitively.
    """
    if on_bad not in ("raise", "skip"):
        raise ConfigKeyError(f"on_bad {on_bad!r} is not a known choice; expected 'raise' or 'skip'")
    root = Path(root)
    wanted = _split_filter(split)
    filelist = read_filelist(root)
    tracings = read_tracings(root)
    videos = _require(root / "Videos", "video folder")
    items = []
    for name, info in filelist.items():
        video = videos / f"{name}.avi"
        if (wanted is not None and info["Split"] != wanted) or not video.is_file():
            continue
        problem = _tracing_problem(tracings.get(name))
        if problem is not None:
            message = (
                f"{root / 'VolumeTracings.csv'}: video {name} {problem}; expected {TRACED_FRAMES} traced frames "
                f"of {TRACING_ROWS} rows (long axis + 20 chords)"
            )
            if on_bad == "raise":
                raise EchoDataError(message)
            warnings.warn(f"{message}; skipped", stacklevel=2)
            continue
        (frame_a, tracing_a), (frame_b, tracing_b) = tracings[name].items()
        if polygon_area(tracing_b) > polygon_area(tracing_a):
            (frame_a, tracing_a), (frame_b, tracing_b) = (frame_b, tracing_b), (frame_a, tracing_a)
        items.append(
            {
                "video": str(video),
                "filename": name,
                "ef": float(info["EF"]),
                "fps": float(info["FPS"]),
                "n_frames": int(info["NumberOfFrames"]),
                "split": info["Split"],
                "ed_frame": frame_a,
                "es_frame": frame_b,
                "ed_tracing": tracing_a,
                "es_tracing": tracing_b,
            }
        )
    if not items:
        raise EmptySplitError(
            f"{root}: no usable EchoNet-Dynamic videos (split {split!r}); expected FileList.csv rows "
            f"with a matching Videos/<FileName>.avi and two traced frames"
        )
    return items


def load_echonet_item(item: dict) -> dict:
    """A copy of a `list_echonet` item with "frames" (T, H, W) and "ed_mask"/"es_mask" (H, W), uint8."""
    frames = read_video(item["video"])
    height, width = frames.shape[1:]
    return {
        **item,
        "frames": frames,
        "ed_mask": tracing_mask(item["ed_tracing"], height, width),
        "es_mask": tracing_mask(item["es_tracing"], height, width),
    }


def list_echonet_videos(root: str | Path, split: str | None = None) -> list[dict]:
    """One item per FileList.csv video present in Videos/ (tracings not needed): "video", "filename", "fps",
    "n_frames", "split". For unlabelled video folders, e.g. synthetic clips or teacher-labelled distillation data."""
    root = Path(root)
    wanted = _split_filter(split)
    videos = _require(root / "Videos", "video folder")
    items = [
        {"video": str(videos / f"{name}.avi"), "filename": name, "fps": float(info["FPS"]),
         "n_frames": int(info["NumberOfFrames"]), "split": info["Split"],
         "frame_size": (int(info["FrameHeight"]), int(info["FrameWidth"]))}
        for name, info in read_filelist(root).items()
        if (wanted is None or info["Split"] == wanted) and (videos / f"{name}.avi").is_file()
    ]  # fmt: skip
    if not items:
        raise EmptySplitError(
            f"{root}: no EchoNet-Dynamic videos in split {split!r}; expected FileList.csv rows with a matching "
            f"Videos/<FileName>.avi"
        )
    return items


def check_traced_videos(root: str | Path) -> None:
    """Refuse tracings of videos that are not in Videos/ (a scored set must not silently lose traced videos)."""
    root = Path(root)
    missing = sorted(name for name in read_tracings(root) if not (root / "Videos" / f"{name}.avi").is_file())
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise MissingFileError(
            f"{root / 'VolumeTracings.csv'} traces {len(missing)} video(s) missing from {root / 'Videos'} ({shown}); "
            f"expected Videos/<FileName>.avi for every traced video (add them, or remove their tracing rows)"
        )
