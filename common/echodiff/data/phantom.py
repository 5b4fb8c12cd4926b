"""Built-in procedural echo phantom: apical 2CH/4CH frames with CAMUS labels, CAMUS and EchoNet-Dynamic datasets.

Geometry lives in normalised image coordinates (x right, y down, both 0..1 across the frame), so one heart
renders at any size. The LV cavity is an ellipse truncated at the mitral plane, in a frame attached to the
endocardial apex: `u` runs along the long axis towards the base, `v` across it. Its volume is measured like the
EchoNet tracings, by the method of disks over 20 chords, with the frame assumed to span `FRAME_MM` millimetres.
"""

from __future__ import annotations

import csv
import inspect
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from ..errors import ConfigKeyError, EchoDataError
from .camus import PHASES, SPLITS, VIEWS, write_camus_nifti, write_split_file

__all__ = ["FRAME_MM", "ensure_phantom", "make_phantom_camus", "make_phantom_echonet", "phantom_frame"]

FRAME_MM = 200.0
N_CHORDS = 20
BASE_FRACTION = 0.7  # the mitral plane cuts the cavity ellipse at 0.7 of its half length below the centre
MANIFEST = "phantom.json"
ECHONET_FPS = 50


@dataclass(frozen=True)
class PhantomHeart:
    """Random anatomy and pose of one phantom patient (lengths in frame units, angles in radians)."""

    sector_apex_y: float
    sector_radius: float
    sector_half_angle: float
    apex_x: dict[str, float]
    apex_y: float
    tilt: dict[str, float]
    lv_length: float
    lv_half_width: float
    wall: float
    la_half_length: float
    la_half_width: float
    rv_half_width: float
    shortening: float  # fractional long-axis shortening at ES
    narrowing: float  # fractional cavity-width reduction at ES
    thickening: float  # fractional wall thickening at ES
    la_growth: float  # fractional LA growth at ES
    tissue: float
    myocardium: float
    blood: float


def draw_heart(rng: np.random.Generator) -> PhantomHeart:
    """Draw one patient's anatomy: chamber sizes, wall thickness, pose, sector and grey levels."""
    scale = rng.uniform(0.9, 1.1)
    return PhantomHeart(
        sector_apex_y=rng.uniform(0.0, 0.02),
        sector_radius=rng.uniform(0.93, 0.98),
        sector_half_angle=np.deg2rad(rng.uniform(35.0, 40.0)),
        apex_x={"2CH": 0.5 + rng.uniform(-0.02, 0.02), "4CH": 0.5 + rng.uniform(-0.01, 0.02)},
        apex_y=rng.uniform(0.12, 0.15),
        tilt={"2CH": np.deg2rad(rng.uniform(-8.0, 8.0)), "4CH": np.deg2rad(rng.uniform(2.0, 8.0))},
        lv_length=scale * rng.uniform(0.42, 0.5),
        lv_half_width=scale * rng.uniform(0.085, 0.11),
        wall=scale * rng.uniform(0.03, 0.042),
        la_half_length=scale * rng.uniform(0.09, 0.115),
        la_half_width=scale * rng.uniform(0.07, 0.09),
        rv_half_width=scale * rng.uniform(0.06, 0.08),
        shortening=rng.uniform(0.08, 0.14),
        narrowing=rng.uniform(0.2, 0.32),
        thickening=rng.uniform(0.3, 0.5),
        la_growth=rng.uniform(0.1, 0.25),
        tissue=rng.uniform(0.2, 0.3),
        myocardium=rng.uniform(0.55, 0.75),
        blood=rng.uniform(0.03, 0.07),
    )


@dataclass(frozen=True)
class CavityShape:
    """LV cavity at one contraction state: half width `a`, length `length` from apex to mitral plane."""

    a: float
    length: float

    @property
    def b(self) -> float:
        """Half length of the cavity ellipse; its centre lies `b` below the apex."""
        return self.length / (1.0 + BASE_FRACTION)

    def half_width_at(self, u: np.ndarray) -> np.ndarray:
        """Cavity half width at distance `u` from the apex along the long axis."""
        return self.a * np.sqrt(np.clip(1.0 - ((u - self.b) / self.b) ** 2, 0.0, None))


def cavity_at(heart: PhantomHeart, contraction: float) -> CavityShape:
    """Cavity at `contraction` (0 = end-diastole, 1 = end-systole); the apex stays, the base moves up."""
    return CavityShape(
        a=heart.lv_half_width * (1.0 - heart.narrowing * contraction),
        length=heart.lv_length * (1.0 - heart.shortening * contraction),
    )


def chord_positions(cavity: CavityShape) -> np.ndarray:
    """Distances from the apex of the `N_CHORDS` disk centres used for tracings and volumes."""
    return (np.arange(N_CHORDS) + 0.5) * cavity.length / N_CHORDS


def lv_volume_ml(cavity: CavityShape) -> float:
    """LV volume by the method of disks over `N_CHORDS` chords (Simpson's single-plane rule) in mL."""
    diameters = 2.0 * cavity.half_width_at(chord_positions(cavity))
    volume = np.sum(np.pi / 4.0 * diameters**2) * cavity.length / N_CHORDS
    return float(volume * FRAME_MM**3 / 1000.0)


def _axes(heart: PhantomHeart, view: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apex position, long-axis unit vector (towards the base) and cross-axis unit vector, as (x, y)."""
    tilt = heart.tilt[view]
    return (
        np.array([heart.apex_x[view], heart.apex_y]),
        np.array([np.sin(tilt), np.cos(tilt)]),
        np.array([np.cos(tilt), -np.sin(tilt)]),
    )


def _ellipse(u: np.ndarray, v: np.ndarray, u0: float, v0: float, half_u: float, half_v: float) -> np.ndarray:
    return ((u - u0) / half_u) ** 2 + ((v - v0) / half_v) ** 2 <= 1.0


def render_frame(
    heart: PhantomHeart, view: str, contraction: float, size: int, speckle: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Render one (size, size) frame and its CAMUS labels; `speckle` is a (size, size) multiplicative texture."""
    if view not in VIEWS:
        raise ConfigKeyError(f"view {view!r} is not one of {', '.join(VIEWS)}.")
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    depth_x, depth_y = x - 0.5, y - heart.sector_apex_y
    radius = np.hypot(depth_x, depth_y)
    sector = (radius <= heart.sector_radius) & (np.abs(np.arctan2(depth_x, depth_y)) <= heart.sector_half_angle)

    apex, axis, cross = _axes(heart, view)
    u = (x - apex[0]) * axis[0] + (y - apex[1]) * axis[1]
    v = (x - apex[0]) * cross[0] + (y - apex[1]) * cross[1]
    cavity = cavity_at(heart, contraction)
    wall = heart.wall * (1.0 + heart.thickening * contraction)
    above_base, below_base = u <= cavity.length, u > cavity.length
    lv = _ellipse(u, v, cavity.b, 0.0, cavity.b, cavity.a) & above_base
    epicardium = _ellipse(u, v, cavity.b, 0.0, cavity.b + wall, cavity.a + wall) & above_base
    la_growth = 1.0 + heart.la_growth * contraction
    la_half_length, la_half_width = heart.la_half_length * la_growth, heart.la_half_width * la_growth
    la = _ellipse(u, v, cavity.length + 0.75 * la_half_length, 0.0, la_half_length, la_half_width) & below_base

    labels = np.zeros((size, size), np.uint8)
    labels[epicardium] = 2
    labels[lv] = 1
    labels[la] = 3
    labels[~sector] = 0

    intensity = np.full((size, size), heart.tissue)
    intensity[epicardium] = heart.myocardium
    blood = lv | la
    if view == "4CH":
        blood |= _right_heart(heart, u, v, contraction, la_half_length, intensity)
    intensity[blood] = heart.blood
    intensity = ndimage.gaussian_filter(intensity, sigma=0.6 * size / 128)
    attenuation = 1.0 - 0.4 * radius / heart.sector_radius
    image = np.clip(intensity * speckle * attenuation, 1.0 / 255, 1.0)
    image = np.where(sector, np.round(image * 255), 0).astype(np.uint8)
    return image, labels


def _right_heart(
    heart: PhantomHeart, u: np.ndarray, v: np.ndarray, contraction: float, la_half_length: float, intensity: np.ndarray
) -> np.ndarray:
    """Draw the 4CH right ventricle (with its bright free wall) and right atrium; return their blood pools."""
    cavity = cavity_at(heart, contraction)
    wall = heart.wall * (1.0 + heart.thickening * contraction)
    rv_half_width = heart.rv_half_width * (1.0 - 0.5 * heart.narrowing * contraction)
    rv_top = 0.25 * cavity.length
    rv_half_length = (cavity.length - rv_top) / (1.0 + BASE_FRACTION)
    rv_centre_v = -(cavity.a + wall + 0.01 + rv_half_width)
    rv_centre_u = rv_top + rv_half_length
    above_base = u <= cavity.length
    rv_wall = 0.6 * heart.wall
    free_wall = _ellipse(u, v, rv_centre_u, rv_centre_v, rv_half_length + rv_wall, rv_half_width + rv_wall)
    intensity[free_wall & above_base & (v < rv_centre_v)] = heart.myocardium
    rv = _ellipse(u, v, rv_centre_u, rv_centre_v, rv_half_length, rv_half_width) & above_base
    ra_half_width = 0.9 * heart.la_half_width
    ra_centre_v = rv_centre_v - 0.02
    ra = _ellipse(u, v, cavity.length + 0.02 + 0.7 * la_half_length, ra_centre_v, 0.9 * la_half_length, ra_half_width)
    return rv | (ra & (u > cavity.length + 0.015) & (v < -0.4 * heart.la_half_width))


def draw_speckle(size: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative speckle (mean 1): Gamma-distributed grains, smoothed, times a slow gain field."""
    grains = rng.gamma(shape=1.2, scale=1.0 / 1.2, size=(size, size))
    grains = ndimage.gaussian_filter(grains, sigma=(0.5 * size / 128, 1.0 * size / 128))
    grains /= grains.mean()
    gain = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=size / 10)
    gain = 1.0 + 0.25 * gain / (gain.std() + 1e-8)
    return grains * np.clip(gain, 0.5, 1.5)


def phantom_frame(
    view: str, phase: str, size: int, rng: np.random.Generator | int
) -> tuple[np.ndarray, np.ndarray]:
    """One apical 2CH or 4CH phantom frame: uint8 image (H, W) and uint8 CAMUS labels (H, W).

    Fan-shaped sector from the top centre (70-80 degree opening, zero outside), dark LV cavity (1), bright
    myocardium (2), dark left atrium (3) below the LV; 4CH frames add a dark right ventricle and atrium
    (label 0, as in CAMUS). Two calls with equally seeded generators draw the same anatomy and speckle, so
    `phase="ES"` then shows the same heart contracted.
    """
    if phase not in PHASES:
        raise ConfigKeyError(f"phase {phase!r} is not one of {', '.join(PHASES)}.")
    rng = np.random.default_rng(rng)
    heart = draw_heart(rng)
    return render_frame(heart, view, float(PHASES.index(phase)), size, draw_speckle(size, rng))


def make_phantom_camus(
    out_dir: str | os.PathLike, n_train: int = 8, n_val: int = 2, n_test: int = 2, size: int = 128, seed: int = 0
) -> Path:
    """Write a phantom dataset in the CAMUS 2023 NIfTI layout, with split files and Info_<view>.cfg; return its root.

    Patients are numbered from patient0001: training first, then validation, then testing. `phantom.json`
    records the arguments. Pixel spacing is `FRAME_MM / size` mm; LVedv/LVesv are method-of-disks volumes.
    """
    root = Path(out_dir)
    counts = dict(zip(SPLITS, (n_train, n_val, n_test)))
    number = 0
    for split, count in counts.items():
        patients = []
        for _ in range(count):
            number += 1
            patients.append(_write_camus_patient(root, number, size, seed))
        write_split_file(root, split, patients)
    manifest = {"kind": "camus", "n_train": n_train, "n_val": n_val, "n_test": n_test, "size": size, "seed": seed}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return root


def _write_camus_patient(root: Path, number: int, size: int, seed: int) -> str:
    patient = f"patient{number:04d}"
    folder = root / "database_nifti" / patient
    rng = np.random.default_rng([seed, number])
    heart = draw_heart(rng)
    edv, esv = lv_volume_ml(cavity_at(heart, 0.0)), lv_volume_ml(cavity_at(heart, 1.0))
    spacing = (FRAME_MM / size, FRAME_MM / size)
    for view_index, view in enumerate(VIEWS):
        n_frames = int(rng.integers(14, 25))
        info = {"ED": 1, "ES": n_frames, "NbFrame": n_frames,
                "LVedv": round(edv, 1), "LVesv": round(esv, 1), "LVef": round(100 * (edv - esv) / edv, 1)}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"Info_{view}.cfg").write_text("".join(f"{key}: {value}\n" for key, value in info.items()))
        for phase_index, phase in enumerate(PHASES):
            speckle = draw_speckle(size, np.random.default_rng([seed, number, view_index, phase_index]))
            image, labels = render_frame(heart, view, float(phase_index), size, speckle)
            write_camus_nifti(folder / f"{patient}_{view}_{phase}.nii.gz", image, spacing)
            write_camus_nifti(folder / f"{patient}_{view}_{phase}_gt.nii.gz", labels, spacing)
    return patient


def make_phantom_echonet(
    out_dir: str | os.PathLike, n_videos: int = 4, n_frames: int = 32, size: int = 112, seed: int = 0
) -> Path:
    """Write a phantom dataset in the EchoNet-Dynamic layout (Videos/*.avi, FileList.csv, VolumeTracings.csv).

    Each video is a 4CH cine loop whose contraction follows 0.5 - 0.5 cos(2 pi (t - ED) / period), so the ED
    frame holds the largest and the ES frame (half a period before or after it) the smallest cavity; both are
    traced, in frame order.
    EF = 100 (EDV - ESV) / EDV with EDV, ESV the method-of-disks volumes over the 20 traced chords
    (Simpson's single-plane rule, as computed from VolumeTracings.csv), in mL for a `FRAME_MM` wide frame.
    """
    if n_frames < 8:
        raise EchoDataError(f"n_frames={n_frames} is too short for a traced ED and ES frame; expected at least 8.")
    root = Path(out_dir)
    (root / "Videos").mkdir(parents=True, exist_ok=True)
    n_held_out = max(1, round(0.15 * n_videos)) if n_videos >= 3 else 0
    splits = ["TRAIN"] * (n_videos - 2 * n_held_out) + ["VAL"] * n_held_out + ["TEST"] * n_held_out
    file_rows, tracing_rows = [], []
    for number, split in enumerate(splits, start=1):
        name = f"PHANTOM{number:04d}"
        rng = np.random.default_rng([seed, number])
        heart = draw_heart(rng)
        half_period = int(rng.integers(n_frames // 4, n_frames // 3 + 1))
        first = int(rng.integers(1, n_frames - half_period - 1))
        ed_frame, es_frame = (first, first + half_period) if rng.random() < 0.5 else (first + half_period, first)
        speckle = draw_speckle(size, rng)
        frames = np.arange(n_frames)
        contraction = 0.5 - 0.5 * np.cos(np.pi * (frames - ed_frame) / half_period)
        _write_video(root / "Videos" / f"{name}.avi", heart, contraction, size, speckle)
        edv, esv = lv_volume_ml(cavity_at(heart, 0.0)), lv_volume_ml(cavity_at(heart, 1.0))
        file_rows.append([name, 100 * (edv - esv) / edv, esv, edv, size, size, ECHONET_FPS, n_frames, split])
        for frame in sorted((ed_frame, es_frame)):
            for x1, y1, x2, y2 in lv_tracing(heart, float(frame == es_frame), size):
                tracing_rows.append([f"{name}.avi", x1, y1, x2, y2, frame])
    _write_csv(root / "FileList.csv",
               ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"],
               file_rows)
    _write_csv(root / "VolumeTracings.csv", ["FileName", "X1", "Y1", "X2", "Y2", "Frame"], tracing_rows)
    manifest = {"kind": "echonet", "n_videos": n_videos, "n_frames": n_frames, "size": size, "seed": seed}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return root


def lv_tracing(heart: PhantomHeart, contraction: float, size: int) -> list[tuple[float, float, float, float]]:
    """EchoNet-style tracing of the 4CH LV cavity in pixel coordinates (pixel centres at integers).

    Row 1: long axis from the apex to the mitral-valve midpoint; rows 2-21: chords perpendicular to it.
    """
    apex, axis, cross = _axes(heart, "4CH")
    cavity = cavity_at(heart, contraction)
    positions = chord_positions(cavity)
    half_widths = cavity.half_width_at(positions)

    def pixel(u: float, v: float) -> tuple[float, float]:
        x, y = (apex + u * axis + v * cross) * size - 0.5
        return float(x), float(y)

    rows = [(*pixel(0.0, 0.0), *pixel(cavity.length, 0.0))]
    rows += [(*pixel(u, -w), *pixel(u, w)) for u, w in zip(positions, half_widths)]
    return rows


def _write_video(
    path: Path, heart: PhantomHeart, contraction: np.ndarray, size: int, speckle: np.ndarray
) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), ECHONET_FPS, (size, size), True)
    if not writer.isOpened():
        raise EchoDataError(f"OpenCV cannot open {path} for writing an MJPG video.")
    try:
        for c in contraction:
            image, _ = render_frame(heart, "4CH", float(c), size, speckle)
            writer.write(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    finally:
        writer.release()


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def ensure_phantom(path: str | os.PathLike | None = None, kind: str = "camus", **kwargs) -> str:
    """Return the path of a phantom folder, building it with `make_phantom_camus(**kwargs)` (or
    `make_phantom_echonet` for `kind="echonet"`: cine clips) if absent.

    Default: `$ECHODIFF_DATA/phantom_<kind>` (`ECHODIFF_DATA` defaults to `data`, relative to the working
    directory). The folder is built beside its final place and renamed in one step, so a killed run never
    leaves a half-written phantom. An existing phantom built with other arguments raises `EchoDataError`.
    """
    if kind not in PHANTOM_BUILDERS:
        raise ConfigKeyError(f"phantom kind {kind!r}; expected one of {', '.join(PHANTOM_BUILDERS)}")
    target = Path(path) if path is not None else Path(os.environ.get("ECHODIFF_DATA", "data")) / f"phantom_{kind}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        building.chmod(0o755)  # mkdtemp makes it private; the phantom is shared data
        try:
            PHANTOM_BUILDERS[kind](building, **kwargs)
            os.replace(building, target)
        except OSError:
            if not target.is_dir():  # a concurrent builder that finished first is fine
                raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
    _check_manifest(target, kind, kwargs)
    return str(target)


def _check_manifest(target: Path, kind: str, kwargs: dict) -> None:
    manifest_path = target / MANIFEST
    if not manifest_path.is_file():
        return
    built = json.loads(manifest_path.read_text())
    parameters = inspect.signature(PHANTOM_BUILDERS[kind]).parameters
    defaults = {name: p.default for name, p in parameters.items() if name != "out_dir"}
    wanted = {"kind": kind, **defaults, **kwargs}
    if wanted != built:
        raise EchoDataError(
            f"phantom {target} was built with {built}, not {wanted}; delete it or pass another path."
        )


PHANTOM_BUILDERS = {"camus": make_phantom_camus, "echonet": make_phantom_echonet}


def main() -> None:
    """`echodiff-phantom camus OUT_DIR [--n_train ...]` or `echodiff-phantom echonet OUT_DIR [--n_videos ...]`."""
    import fire

    fire.Fire({"camus": make_phantom_camus, "echonet": make_phantom_echonet})
