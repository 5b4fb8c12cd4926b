"""Patient-level bootstrap intervals (echodiff.metrics.bootstrap): coverage of the point estimate, width against the
number of patients, patients (not images) resampled, and the tie rule of a paired difference."""

from __future__ import annotations

import numpy as np
import pytest
from echodiff.errors import ShapeMismatchError
from echodiff.metrics import is_tie, patient_bootstrap


def _patients(n: int, images_per_patient: int = 4) -> list[str]:
    return [f"patient{p:04d}" for p in range(n) for _ in range(images_per_patient)]


def _width(result: dict) -> float:
    low, high = result["ci95"]
    return high - low


def test_interval_covers_the_point_estimate() -> None:
    values = np.random.default_rng(0).normal(90, 5, size=40 * 4)
    result = patient_bootstrap(values, _patients(40))
    assert result["mean"] == pytest.approx(values.mean())
    assert result["ci95"][0] < result["mean"] < result["ci95"][1]
    assert result["n_patients"] == 40 and result["n_draws"] == 1000


def test_interval_narrows_with_more_patients() -> None:
    rng = np.random.default_rng(1)
    few, many = rng.normal(90, 5, size=10 * 4), rng.normal(90, 5, size=160 * 4)
    narrow, wide = _width(patient_bootstrap(many, _patients(160))), _width(patient_bootstrap(few, _patients(10)))
    assert narrow < wide / 2.5  # 16 times the patients: about a quarter of the width


def test_patients_are_resampled_not_images() -> None:
    per_patient = np.random.default_rng(2).normal(90, 5, size=30)
    four_identical = np.repeat(per_patient, 4)
    one_each = patient_bootstrap(per_patient, _patients(30, 1))
    clustered = patient_bootstrap(four_identical, _patients(30))
    # four identical images of one patient carry no more information than one: the interval stays as wide
    assert clustered["ci95"] == pytest.approx(one_each["ci95"])
    # the same 120 values taken as independent images would claim an interval about half as wide
    as_images = patient_bootstrap(four_identical, [str(i) for i in range(120)])
    assert _width(as_images) < 0.6 * _width(clustered)


def test_paired_difference_is_a_tie_when_its_interval_contains_zero() -> None:
    rng = np.random.default_rng(3)
    patients = _patients(50)
    same = patient_bootstrap(rng.normal(0, 1, size=200), patients)  # per-image synthetic minus real Dice
    worse = patient_bootstrap(rng.normal(-3, 1, size=200), patients)
    assert is_tie(same["ci95"]) and not is_tie(worse["ci95"]) and worse["ci95"][1] < 0
    assert is_tie([-1.0, 0.0]) and not is_tie([0.1, 2.0])


def test_non_finite_values_are_left_out_and_a_length_mismatch_is_refused() -> None:
    result = patient_bootstrap([1.0, float("nan"), 3.0, 3.0], ["a", "a", "b", "b"])
    assert result["mean"] == pytest.approx(7 / 3)
    with pytest.raises(ShapeMismatchError, match="3 values but 2 patient ids"):
        patient_bootstrap([1.0, 2.0, 3.0], ["a", "b"])
