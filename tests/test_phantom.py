"""Built-in phantom: deterministic frames with clean labels, CAMUS and EchoNet layouts, atomic default phantom."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from echodiff.data.camus import SPLITS, LoadCAMUSd, list_camus
from echodiff.data.phantom import (
    cavity_at,
    draw_heart,
    draw_speckle,
    ensure_phantom,
    lv_tracing,
    make_phantom_camus,
    phantom_frame,
    render_frame,
)
from echodiff.data.phantom import (
    main as phantom_main,
)
from echodiff.errors import ConfigKeyError, EchoDataError
from scipy import ndimage

SEEDS = range(6)


def dark_unlabelled_fraction(image: np.ndarray, label: np.ndarray) -> float:
    """Share of the sector that is unlabelled yet dark like blood (smoothed to see through speckle)."""
    smooth = ndimage.uniform_filter(image.astype(float), 5)
    sector = image > 0
    return float(((smooth < 20) & sector & (label == 0)).sum() / sector.sum())


def read_video(path: Path) -> list[np.ndarray]:
    video, frames = cv2.VideoCapture(str(path)), []
    while (frame := video.read())[0]:
        frames.append(frame[1])
    video.release()
    return frames


def test_same_seed_gives_identical_frames_and_other_seeds_differ():
    image, label = phantom_frame("2CH", "ED", 64, 3)
    again = phantom_frame("2CH", "ED", 64, np.random.default_rng(3))
    other = phantom_frame("2CH", "ED", 64, 4)
    np.testing.assert_array_equal(image, again[0])
    np.testing.assert_array_equal(label, again[1])
    assert not np.array_equal(image, other[0]) and not np.array_equal(label, other[1])
    assert image.dtype == label.dtype == np.uint8 and image.shape == (64, 64)


@pytest.mark.parametrize("view", ["2CH", "4CH"])
def test_labels_are_clean_and_lie_inside_a_top_centred_sector(view: str):
    for seed in SEEDS:
        image, label = phantom_frame(view, "ED", 64, seed)
        assert set(np.unique(label).tolist()) == {0, 1, 2, 3}
        assert np.all(image[label > 0] > 0)
        assert image[0, 0] == image[0, -1] == 0 and (image[1] > 0).sum() < (image[-8] > 0).sum()
        assert abs(np.flatnonzero(image[2]).mean() - 31.5) < 2  # apex at the top centre
        rows = {k: np.argwhere(label == k)[:, 0].mean() for k in (1, 3)}
        assert rows[1] < rows[3]  # left atrium below the ventricle


def test_blood_pools_are_dark_and_myocardium_bright():
    image, label = phantom_frame("2CH", "ED", 128, 0)
    means = {k: image[label == k].mean() for k in (1, 2, 3)}
    assert means[2] > 3 * means[1] and means[2] > 3 * means[3]


def test_four_chamber_frames_show_extra_dark_unlabelled_chambers():
    for seed in SEEDS:
        two = dark_unlabelled_fraction(*phantom_frame("2CH", "ED", 128, seed))
        four = dark_unlabelled_fraction(*phantom_frame("4CH", "ED", 128, seed))
        assert four > two + 0.03, (seed, two, four)


def test_end_systole_cavity_is_smaller_and_atrium_larger_than_end_diastole():
    for view in ("2CH", "4CH"):
        for seed in SEEDS:
            _, ed = phantom_frame(view, "ED", 64, seed)
            _, es = phantom_frame(view, "ES", 64, seed)
            assert (es == 1).sum() < 0.85 * (ed == 1).sum()
            assert (es == 3).sum() > (ed == 3).sum()


def test_unknown_view_or_phase_is_a_config_key_error():
    with pytest.raises(ConfigKeyError, match="view '3CH' is not one of 2CH, 4CH"):
        phantom_frame("3CH", "ED", 32, 0)
    with pytest.raises(ConfigKeyError, match="phase 'MS' is not one of ED, ES"):
        phantom_frame("2CH", "MS", 32, 0)


def test_phantom_camus_layout_reads_for_every_split(phantom_camus: Path):
    counts = {split: len({i["patient"] for i in list_camus(phantom_camus, split)}) for split in SPLITS}
    assert counts == {"training": 4, "validation": 2, "testing": 2}
    testing = list_camus(phantom_camus, "testing")
    assert [i["patient"] for i in testing[::4]] == ["patient0007", "patient0008"]
    data = LoadCAMUSd()(testing[0])
    assert data["image"].shape == data["label"].shape == (1, 64, 64)
    np.testing.assert_allclose(data["spacing"], [200 / 64, 200 / 64])
    info = testing[0]["info"]
    assert set(info) == {"ED", "ES", "NbFrame", "LVedv", "LVesv", "LVef"}
    assert info["LVedv"] > info["LVesv"] > 0
    assert info["LVef"] == pytest.approx(100 * (info["LVedv"] - info["LVesv"]) / info["LVedv"], abs=0.2)
    assert json.loads((phantom_camus / "phantom.json").read_text())["size"] == 64


def test_phantom_camus_is_byte_identical_for_a_seed(tmp_path: Path):
    first = make_phantom_camus(tmp_path / "a", n_train=1, n_val=0, n_test=0, size=32, seed=5)
    second = make_phantom_camus(tmp_path / "b", n_train=1, n_val=0, n_test=0, size=32, seed=5)
    other = make_phantom_camus(tmp_path / "c", n_train=1, n_val=0, n_test=0, size=32, seed=6)
    name = "database_nifti/patient0001/patient0001_4CH_ES.nii.gz"
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 8 + 2 + 3 + 1  # frames and labels, Info cfgs, split files, manifest
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    assert (first / name).read_bytes() != (other / name).read_bytes()


def test_phantom_echonet_files_follow_the_official_columns(phantom_echonet: Path):
    with open(phantom_echonet / "FileList.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"]
    assert [r["FileName"] for r in rows] == ["PHANTOM0001", "PHANTOM0002", "PHANTOM0003"]
    assert [r["Split"] for r in rows] == ["TRAIN", "VAL", "TEST"]
    with open(phantom_echonet / "VolumeTracings.csv", newline="") as f:
        tracings = list(csv.DictReader(f))
    assert list(tracings[0]) == ["FileName", "X1", "Y1", "X2", "Y2", "Frame"]
    assert len(tracings) == 3 * 2 * 21
    for row in rows:
        frames = read_video(phantom_echonet / "Videos" / f"{row['FileName']}.avi")
        assert len(frames) == int(row["NumberOfFrames"]) == 24
        assert frames[0].shape == (112, 112, 3)
        assert np.abs(frames[0].astype(int) - frames[0][..., :1]).max() <= 3  # grey in three channels
        own = [t for t in tracings if t["FileName"] == row["FileName"] + ".avi"]
        assert len({t["Frame"] for t in own}) == 2


def test_phantom_echonet_ef_is_the_method_of_disks_ef_of_its_tracings(phantom_echonet: Path):
    with open(phantom_echonet / "FileList.csv", newline="") as f:
        ef = {r["FileName"] + ".avi": float(r["EF"]) for r in csv.DictReader(f)}
    with open(phantom_echonet / "VolumeTracings.csv", newline="") as f:
        tracings = list(csv.DictReader(f))
    for name, expected in ef.items():
        volumes = []
        for frame in sorted({t["Frame"] for t in tracings if t["FileName"] == name}):
            rows = np.array([[float(t[k]) for k in ("X1", "Y1", "X2", "Y2")]
                             for t in tracings if t["FileName"] == name and t["Frame"] == frame])
            length = np.hypot(*(rows[0, 2:] - rows[0, :2]))
            diameters = np.hypot(*(rows[1:, 2:] - rows[1:, :2]).T)
            volumes.append(np.sum(np.pi / 4 * diameters**2) * length / 20)
        edv, esv = max(volumes), min(volumes)
        assert 100 * (edv - esv) / edv == pytest.approx(expected, rel=1e-9)
        assert 30 < expected < 75


def test_phantom_echonet_video_cavity_is_largest_at_the_larger_tracing(phantom_echonet: Path):
    with open(phantom_echonet / "VolumeTracings.csv", newline="") as f:
        tracings = list(csv.DictReader(f))
    for name in sorted({t["FileName"] for t in tracings}):
        frames = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in read_video(phantom_echonet / "Videos" / name)]
        areas, dark = {}, {}
        for frame in {int(t["Frame"]) for t in tracings if t["FileName"] == name}:
            rows = np.array([[float(t[k]) for k in ("X1", "Y1", "X2", "Y2")]
                             for t in tracings if t["FileName"] == name and int(t["Frame"]) == frame])
            polygon = np.round(np.concatenate([rows[1:, :2], rows[:0:-1, 2:]])).astype(np.int32)
            mask = cv2.fillPoly(np.zeros((112, 112), np.uint8), [polygon], 1).astype(bool)
            areas[frame] = mask.sum()
            dark[frame] = (ndimage.uniform_filter(frames[frame].astype(float), 3) < 25).sum()
        ed, es = max(areas, key=areas.get), min(areas, key=areas.get)
        assert dark[ed] > dark[es]


def test_tracing_outlines_the_rendered_lv_cavity():
    heart = draw_heart(np.random.default_rng(1))
    for contraction in (0.0, 1.0):
        _, label = render_frame(heart, "4CH", contraction, 112, draw_speckle(112, np.random.default_rng(0)))
        rows = np.array(lv_tracing(heart, contraction, 112))
        apex, base = rows[0, :2], rows[0, 2:]
        assert np.hypot(*(base - apex)) == pytest.approx(cavity_at(heart, contraction).length * 112)
        polygon = np.concatenate([rows[1:, :2], rows[:0:-1, 2:]])
        traced = np.zeros((112, 112), np.uint8)
        cv2.fillPoly(traced, [np.round(polygon).astype(np.int32)], 1)
        dice = 2 * (traced & (label == 1)).sum() / (traced.sum() + (label == 1).sum())
        assert dice > 0.9


def test_ensure_phantom_builds_once_at_the_default_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ECHODIFF_DATA", "store")
    path = ensure_phantom(n_train=1, n_val=1, n_test=0, size=16)
    assert path == str(Path("store") / "phantom_camus")
    assert len(list_camus(path, "validation")) == 4
    stamp = (Path(path) / "phantom.json").stat().st_mtime_ns
    assert ensure_phantom(n_train=1, n_val=1, n_test=0, size=16) == path
    assert (Path(path) / "phantom.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in Path("store").iterdir()) == ["phantom_camus"]  # no temp folder left
    with pytest.raises(EchoDataError, match=r"phantom store/phantom_camus was built with .*'size': 16.*'size': 32"):
        ensure_phantom(n_train=1, n_val=1, n_test=0, size=32)


def test_cli_writes_a_camus_phantom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "argv", ["echodiff-phantom", "camus", str(tmp_path / "cli"), "--n_train=1", "--n_val=0",
                                      "--n_test=1", "--size=16"])
    phantom_main()
    assert [i["patient"] for i in list_camus(tmp_path / "cli", "testing")][:1] == ["patient0002"]


def test_phantom_echonet_headers_match_the_real_sample(shared_data: Path, phantom_echonet: Path):
    for name in ("FileList.csv", "VolumeTracings.csv"):
        real = (shared_data / "echonet_sample" / name).read_text().splitlines()
        ours = (phantom_echonet / name).read_text().splitlines()
        assert ours[0] == real[0]
        assert ours[1].split(",")[0].endswith(".avi") == real[1].split(",")[0].endswith(".avi")
