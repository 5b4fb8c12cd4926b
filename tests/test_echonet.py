"""EchoNet-Dynamic reader: CSV parsing, ED/ES by traced area, polygon rasterisation, videos, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from echodiff.data.echonet import (
    list_echonet,
    load_echonet_item,
    polygon_area,
    read_filelist,
    read_tracings,
    read_video,
    tracing_mask,
    tracing_polygon,
)
from echodiff.errors import (
    ConfigKeyError,
    CorruptFileError,
    EchoDataError,
    EmptySplitError,
    MissingFileError,
    ShapeMismatchError,
)

FILELIST_HEADER = ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"]


def rectangle_tracing(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """(21, 4) tracing of the rectangle [x0, x1] x [y0, y1]: long axis, then 20 horizontal chords."""
    rows = np.linspace(y0, y1, 20)
    chords = np.stack([np.full(20, x0), rows, np.full(20, x1), rows], axis=1)
    return np.vstack([[(x0 + x1) / 2, y0, (x0 + x1) / 2, y1], chords])


def write_video(path: Path, n_frames: int = 3, height: int = 16, width: int = 20) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50, (width, height), isColor=False)
    for index in range(n_frames):
        writer.write(np.full((height, width), 40 * index + 20, np.uint8))
    writer.release()


def write_dataset(root: Path, tracings: dict[str, dict[int, np.ndarray]], splits: dict[str, str] | None = None) -> Path:
    """A tiny EchoNet-Dynamic folder: one 3-frame 16x20 video per entry of ``tracings``, CSV rows in dict order."""
    (root / "Videos").mkdir(parents=True)
    with open(root / "FileList.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FILELIST_HEADER)
        for name in tracings:
            write_video(root / "Videos" / f"{name}.avi")
            split = (splits or {}).get(name, "TEST")
            writer.writerow([name, "60.5", "20.0", "50.0", "16", "20", "50", "3", split])
    with open(root / "VolumeTracings.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["FileName", "X1", "Y1", "X2", "Y2", "Frame"])
        for name, frames in tracings.items():
            for frame, coords in frames.items():
                writer.writerows([[f"{name}.avi", *row, frame] for row in coords])
    return root


BIG = rectangle_tracing(2.5, 14.5, 3.5, 13.5)  # 12 x 10 = 120 px
SMALL = rectangle_tracing(4.5, 10.5, 5.5, 9.5)  # 6 x 4 = 24 px


# --- polygon and mask ---------------------------------------------------------------------------------


def test_tracing_polygon_follows_official_rule_x1_down_then_flipped_x2():
    coords = np.arange(21 * 4, dtype=float).reshape(21, 4)
    polygon = tracing_polygon(coords)
    assert polygon.shape == (40, 2)
    np.testing.assert_array_equal(polygon[:20, 0], coords[1:, 0])
    np.testing.assert_array_equal(polygon[20:, 0], coords[1:, 2][::-1])
    np.testing.assert_array_equal(polygon[:20, 1], coords[1:, 1])
    np.testing.assert_array_equal(polygon[20:, 1], coords[1:, 3][::-1])


def test_polygon_area_of_rectangle_tracing_is_width_times_height():
    assert polygon_area(BIG) == pytest.approx(120.0)
    assert polygon_area(SMALL) == pytest.approx(24.0)


def test_square_mask_counts_pixel_centres_inside_exactly():
    # corners at half pixels: centres x = 3..14 (12 columns), y = 4..13 (10 rows)
    mask = tracing_mask(BIG, 16, 20)
    assert mask.dtype == np.uint8 and mask.shape == (16, 20)
    assert mask.sum() == 120
    assert mask[4:14, 3:15].all()


def test_mask_uses_pixel_centres_not_pixel_overlap():
    # x in [2.6, 8.4] holds centres 3..8 (6), y in [3.6, 7.4] holds 4..7 (4): 24 px for an area of 22.04
    coords = rectangle_tracing(2.6, 8.4, 3.6, 7.4)
    assert polygon_area(coords) == pytest.approx(5.8 * 3.8)
    mask = tracing_mask(coords, 12, 12)
    assert mask.sum() == 24 and mask[4:8, 3:9].all()


def test_integer_corner_square_is_half_open_so_count_equals_area():
    mask = tracing_mask(rectangle_tracing(2, 8, 3, 7), 12, 12)
    assert mask.sum() == 24
    assert mask[3:7, 2:8].all()


def test_tracing_with_wrong_shape_raises_shape_mismatch():
    with pytest.raises(ShapeMismatchError, match=r"\(21, 3\)"):
        tracing_polygon(np.zeros((21, 3)))


# --- CSV readers and listing --------------------------------------------------------------------------


def test_read_filelist_converts_numbers_and_strips_extension(tmp_path):
    root = write_dataset(tmp_path / "echonet", {"0XAA": {1: SMALL, 2: BIG}})
    info = read_filelist(root)["0XAA"]
    assert info["EF"] == 60.5 and info["FPS"] == 50.0 and info["NumberOfFrames"] == 3
    assert isinstance(info["FrameHeight"], int) and info["Split"] == "TEST"
    assert list(read_tracings(root)) == ["0XAA"]
    assert read_tracings(root)["0XAA"][2].shape == (21, 4)


@pytest.mark.parametrize("order", [(1, 2), (2, 1)])
def test_ed_is_the_larger_traced_area_whatever_the_csv_order(tmp_path, order):
    by_frame = {1: SMALL, 2: BIG}
    root = write_dataset(tmp_path / "echonet", {"0XAA": {frame: by_frame[frame] for frame in order}})
    (item,) = list_echonet(root)
    assert (item["ed_frame"], item["es_frame"]) == (2, 1)
    np.testing.assert_array_equal(item["ed_tracing"], BIG)
    assert item["filename"] == "0XAA" and item["n_frames"] == 3 and item["ef"] == 60.5


def test_load_item_adds_frames_and_masks_at_video_size(tmp_path):
    root = write_dataset(tmp_path / "echonet", {"0XAA": {1: SMALL, 2: BIG}})
    loaded = load_echonet_item(list_echonet(root)[0])
    assert loaded["frames"].shape == (3, 16, 20) and loaded["frames"].dtype == np.uint8
    assert loaded["ed_mask"].sum() == 120 and loaded["es_mask"].sum() == 24


def test_split_filter_is_case_insensitive_and_checked(tmp_path):
    splits = {"0XAA": "TRAIN", "0XBB": "TEST"}
    root = write_dataset(tmp_path / "echonet", {"0XAA": {1: SMALL, 2: BIG}, "0XBB": {1: SMALL, 2: BIG}}, splits)
    assert [item["filename"] for item in list_echonet(root, split="test")] == ["0XBB"]
    with pytest.raises(ConfigKeyError, match="'tset'"):
        list_echonet(root, split="tset")
    with pytest.raises(EmptySplitError, match="'val'"):
        list_echonet(root, split="val")


def test_video_with_one_traced_frame_raises_or_is_skipped(tmp_path):
    root = write_dataset(tmp_path / "echonet", {"0XAA": {1: SMALL, 2: BIG}, "0XBB": {7: BIG}})
    with pytest.raises(EchoDataError, match=r"0XBB has 1 traced frame\(s\) \[7\]"):
        list_echonet(root)
    with pytest.warns(UserWarning, match="0XBB"):
        items = list_echonet(root, on_bad="skip")
    assert [item["filename"] for item in items] == ["0XAA"]


def test_traced_frame_with_wrong_row_count_is_reported(tmp_path):
    root = write_dataset(tmp_path / "echonet", {"0XAA": {1: SMALL[:20], 2: BIG}})
    with pytest.raises(EchoDataError, match=r"0XAA has traced frames with \{1: 20\} rows"):
        list_echonet(root)


@pytest.mark.parametrize("missing", ["FileList.csv", "VolumeTracings.csv", "Videos"])
def test_missing_csv_or_video_folder_names_the_path(tmp_path, missing):
    root = write_dataset(tmp_path / "echonet", {"0XAA": {1: SMALL, 2: BIG}})
    target = root / missing
    if target.is_dir():
        (target / "0XAA.avi").unlink()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(MissingFileError, match=missing):
        list_echonet(root)


def test_read_video_errors_name_the_file(tmp_path):
    with pytest.raises(MissingFileError, match="absent.avi"):
        read_video(tmp_path / "absent.avi")
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptFileError, match="garbage.avi"):
        read_video(garbage)


# --- real sample (skipped when ../shared/data is absent) ---------------------------------------------


@pytest.fixture(scope="module")
def echonet_sample(shared_data):
    root = shared_data / "echonet_sample"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    return [load_echonet_item(item) for item in list_echonet(root, split="TEST")]


@pytest.mark.real_data
def test_sample_has_ten_videos_with_all_frames(echonet_sample):
    assert len(echonet_sample) == 10
    for item in echonet_sample:
        assert item["frames"].dtype == np.uint8
        assert item["frames"].shape == (item["n_frames"], 112, 112)


@pytest.mark.real_data
def test_sample_ed_area_exceeds_es_area(echonet_sample):
    for item in echonet_sample:
        assert polygon_area(item["ed_tracing"]) > polygon_area(item["es_tracing"]), item["filename"]


@pytest.mark.real_data
def test_sample_ed_es_frames_checked_by_hand(echonet_sample):
    by_name = {item["filename"]: item for item in echonet_sample}
    # VolumeTracings.csv lists frame 110 before 97; 97 is the larger outline (~1012 vs ~603 px)
    item = by_name["0X111EDA8A1E44169C"]
    assert (item["ed_frame"], item["es_frame"]) == (97, 110)
    assert polygon_area(item["ed_tracing"]) == pytest.approx(1011.8, abs=0.1)
    first = by_name["0X100CF05D141FF143"]
    assert (first["ed_frame"], first["es_frame"]) == (132, 148)
    np.testing.assert_allclose(first["ed_tracing"][0], [47.61458333, 21.36458333, 63.65625, 78.421875])


@pytest.mark.real_data
def test_sample_masks_match_polygon_area_within_perimeter(echonet_sample):
    total_pixels = sum(int(item[f"{phase}_mask"].sum()) for item in echonet_sample for phase in ("ed", "es"))
    total_area = sum(polygon_area(item[f"{phase}_tracing"]) for item in echonet_sample for phase in ("ed", "es"))
    assert total_pixels == pytest.approx(total_area, rel=0.01)
    for item in echonet_sample:
        for phase in ("ed", "es"):
            mask, tracing = item[f"{phase}_mask"], item[f"{phase}_tracing"]
            polygon = tracing_polygon(tracing)
            assert mask.shape == (112, 112) and mask.sum() > 0
            assert (polygon >= 0).all() and (polygon <= 111).all()
            perimeter = np.linalg.norm(np.diff(polygon, axis=0, append=polygon[:1]), axis=1).sum()
            assert abs(int(mask.sum()) - polygon_area(tracing)) <= perimeter / 2, item["filename"]
