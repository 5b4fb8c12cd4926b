"""LV-function scores from per-frame LV probabilities on EchoNet-Dynamic videos (Petit et al. 2024, EchoDFKD; docs/methods.md section 3).

Area curve A[t] = number of pixels with probability > 25/255; ED/ES frames from the z-normalised
curve; aFD = mean |estimate - reference| frames; EF proxy = 100 (A_ED - A_ES) / A_ED at the detected frames (ours), or
at the reference (traced) frames with areas at 80/255 and an empty ED scored 0 (`paper_ef_proxy`, the EchoDFKD code).
The curve's frame-to-frame jitter (`area_jitter`, ours) says how much noise those frame picks and area ratios read.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from monai.metrics import compute_dice
from scipy.stats import pearsonr

from echodiff.errors import ConfigKeyError, ShapeMismatchError

AREA_THRESHOLD = 25 / 255
DICE_THRESHOLD = 80 / 255
Values = npt.ArrayLike | torch.Tensor


def _numpy(values: Values) -> np.ndarray:
    return np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64)


def _binary_batch(binary: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(binary.astype(np.float64))[None, None]


def lv_area_curve(probs: Values, threshold: float = AREA_THRESHOLD) -> np.ndarray:
    """LV area A[t] (T,) in pixels: count of pixels with probability > threshold, probs (T, H, W) or (T, 1, H, W)."""
    frames = _numpy(probs)
    if frames.ndim == 4 and frames.shape[1] == 1:
        frames = frames[:, 0]
    if frames.ndim != 3:
        raise ShapeMismatchError(f"probs have shape {frames.shape}; expected (T, H, W) or (T, 1, H, W)")
    return (frames > threshold).sum(axis=(1, 2))


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frame of each run of consecutive True values."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist()))


def detect_ed_es(area: Values, reference_frame: int, kind: Literal["ed", "es"]) -> int:
    """ED or ES frame from an LV area curve, near a reference frame (EchoDFKD aFD protocol).

    The curve is z-normalised (a flat curve becomes zeros). ES: among the runs of consecutive
    frames strictly below the median, take the run nearest ``reference_frame`` (distance 0 when
    it lies inside, else frames to the nearer end; equal distances pick the earlier run) and return
    its minimum (first one on ties). ED: the same with runs above the median and the maximum.
    When no frame is strictly beyond the median (e.g. a flat curve), runs at or beyond it are used,
    as in the EchoDFKD code.
    """
    if kind not in ("ed", "es"):
        raise ConfigKeyError(f"kind {kind!r} is not a cardiac phase; expected 'ed' or 'es'")
    curve = _numpy(area).reshape(-1)
    if curve.size == 0:
        raise ShapeMismatchError("area curve is empty; expected one LV area per frame")
    std = curve.std()
    curve = (curve - curve.mean()) / std if std > 0 else np.zeros_like(curve)
    signed = curve if kind == "es" else -curve  # ED: maximum of A = minimum of -A
    median = np.median(signed)
    below = signed < median
    runs = _runs(below if below.any() else signed <= median)

    def distance(run: tuple[int, int]) -> int:
        first, last = run
        return 0 if first <= reference_frame <= last else min(abs(first - reference_frame), abs(last - reference_frame))

    first, last = min(runs, key=distance)
    return first + int(np.argmin(signed[first : last + 1]))


def frame_detection_error(estimates: Values, references: Values) -> float:
    """aFD: mean absolute difference in frames between estimated and reference ED (or ES) frames."""
    estimated, reference = _numpy(estimates).reshape(-1), _numpy(references).reshape(-1)
    if estimated.shape != reference.shape or estimated.size == 0:
        raise ShapeMismatchError(
            f"{estimated.size} estimates and {reference.size} references; expected the same non-zero number"
        )
    return float(np.abs(estimated - reference).mean())


def ef_proxy(area_ed: Values, area_es: Values) -> float | np.ndarray:
    """EF proxy from LV areas, 100 (A_ED - A_ES) / A_ED in percent; nan where A_ED = 0."""
    ed, es = _numpy(area_ed), _numpy(area_es)
    proxy = np.divide(100 * (ed - es), ed, out=np.full(np.broadcast(ed, es).shape, np.nan), where=ed != 0)
    return float(proxy) if proxy.ndim == 0 else proxy


def paper_ef_proxy(probs: Values, ed_frame: int, es_frame: int, threshold: float = DICE_THRESHOLD) -> float:
    """EF proxy of the EchoDFKD evaluation (Petit et al. 2024): areas (p > 80/255) at the reference (traced) ED and ES
    frames of probs (T, H, W); an empty ED scores 0 instead of nan, so the video stays in the correlation."""
    area_ed, area_es = lv_area_curve(_numpy(probs)[[ed_frame, es_frame]], threshold)
    return float(np.nan_to_num(ef_proxy(area_ed, area_es), nan=0.0))


def area_jitter(area: Values) -> float:
    """Frame-to-frame jitter of an LV area curve A[t] (ours, not the paper's): mean |A[t+1] - 2 A[t] + A[t-1]| over
    the mean area. The second difference leaves out the cycle's own slow change (a cosine cycle of T frames and
    relative amplitude c scores at most c (2 pi / T)^2) and keeps frame-to-frame noise (white noise of relative standard
    deviation s scores about 2 s); nan for fewer than 3 frames or an empty curve."""
    curve = _numpy(area).reshape(-1)
    mean = curve.mean() if curve.size else 0.0
    if curve.size < 3 or mean == 0:
        return float("nan")
    return float(np.abs(np.diff(curve, n=2)).mean() / mean)


def pearson_r(x: Values, y: Values) -> float:
    """Pearson correlation coefficient between two equally long series (scipy.stats.pearsonr)."""
    first, second = _numpy(x).reshape(-1), _numpy(y).reshape(-1)
    if first.shape != second.shape or first.size < 2:
        raise ShapeMismatchError(f"series of {first.size} and {second.size} values; expected equal lengths >= 2")
    return float(pearsonr(first, second).statistic)


def segmentation_dice_at_threshold(
    prob: Values, mask: Values, threshold: float = DICE_THRESHOLD
) -> float:
    """Binary Dice of (prob > threshold) against a traced mask (> 0), both (H, W); empty vs empty = 1.0."""
    prediction, target = _numpy(prob), _numpy(mask)
    if prediction.shape != target.shape or prediction.ndim != 2:
        raise ShapeMismatchError(f"prob has shape {prediction.shape}, mask {target.shape}; expected the same (H, W)")
    dice = compute_dice(_binary_batch(prediction > threshold), _binary_batch(target > 0), ignore_empty=False)
    return float(dice[0, 0])
