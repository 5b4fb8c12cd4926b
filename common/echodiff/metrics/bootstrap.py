"""Patient-level bootstrap intervals: the test patients, not the images, are resampled with replacement (Efron &
Tibshirani 1993, ch. 13 percentile interval; the cluster bootstrap of Field & Welsh 2007, since the four CAMUS images of
one patient, 2CH/4CH x ED/ES, are not independent); docs/methods.md section 4."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from echodiff.errors import ShapeMismatchError

__all__ = ["is_tie", "patient_bootstrap"]


def patient_bootstrap(
    values: Sequence[float] | np.ndarray, patients: Sequence[str], n_draws: int = 1000, seed: int = 0
) -> dict:
    """Mean of per-image `values` with its 95 % percentile interval over `n_draws` resamples of the patients.

    Each draw picks as many patients as there are, with replacement, and takes the mean over all images of the picked
    patients (a patient picked twice counts twice). Non-finite values (a Hausdorff distance of an empty structure) are
    left out. The interval of a paired difference (model A minus model B on the same images) is this function on the
    per-image differences: the same patients are resampled for both. Seeded with `numpy.random.default_rng(seed)`.
    Returns {"mean", "ci95": [low, high], "n_patients", "n_draws"}.
    """
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(patients) != array.size or array.size == 0:
        raise ShapeMismatchError(f"{array.size} values but {len(patients)} patient ids; expected one id per value")
    if n_draws < 1:
        raise ValueError(f"n_draws is {n_draws}; expected at least 1")
    names, index = np.unique(np.asarray(patients, dtype=str), return_inverse=True)
    finite = np.isfinite(array)
    sums = np.bincount(index, weights=np.where(finite, array, 0.0), minlength=names.size)
    counts = np.bincount(index, weights=finite.astype(np.float64), minlength=names.size)
    picks = np.random.default_rng(seed).integers(0, names.size, size=(n_draws, names.size))
    times = np.stack([np.bincount(row, minlength=names.size) for row in picks])  # (draws, patients)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (times @ sums) / (times @ counts)
        mean = float(sums.sum() / counts.sum()) if counts.sum() else float("nan")
    low, high = np.nanpercentile(means, [2.5, 97.5]) if np.isfinite(means).any() else (np.nan, np.nan)
    return {"mean": mean, "ci95": [float(low), float(high)], "n_patients": int(names.size), "n_draws": n_draws}


def is_tie(ci95: Sequence[float]) -> bool:
    """A paired difference whose 95 % interval contains 0: the two models are not told apart on these patients."""
    low, high = ci95
    return bool(low <= 0 <= high)
