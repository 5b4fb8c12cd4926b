"""LV area curve, ED/ES detection near a reference frame, aFD, EF proxy, Pearson r, Dice at 80/255."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from echodiff.errors import ConfigKeyError, ShapeMismatchError
from echodiff.metrics.cardiac import (
    area_jitter,
    detect_ed_es,
    ef_proxy,
    frame_detection_error,
    lv_area_curve,
    paper_ef_proxy,
    pearson_r,
    segmentation_dice_at_threshold,
)

# two beats of 30 frames: maxima (ED) at 0 and 30, minima (ES) at 15 and 45;
# below-median runs 8..22 and 38..52, above-median runs 0..7, 23..37, 53..59
COSINE_AREA = 1000 + 200 * np.cos(2 * np.pi * np.arange(60) / 30)


def test_area_curve_counts_pixels_strictly_above_threshold():
    probs = np.zeros((3, 2, 2))
    probs[0] = [[0.9, 25 / 255], [0.0, 0.2]]
    probs[1] = 1.0
    assert lv_area_curve(probs).tolist() == [2, 4, 0]
    assert lv_area_curve(torch.from_numpy(probs)[:, None], threshold=0.5).tolist() == [1, 4, 0]


@pytest.mark.parametrize(("reference", "expected"), [(20, 15), (8, 15), (40, 45), (31, 45), (0, 15)])
def test_es_is_minimum_of_below_median_run_nearest_reference(reference, expected):
    assert detect_ed_es(COSINE_AREA, reference, "es") == expected


@pytest.mark.parametrize(("reference", "expected"), [(25, 30), (2, 0), (58, 59), (50, 59), (45, 30)])
def test_ed_is_maximum_of_above_median_run_nearest_reference(reference, expected):
    # run 53..59 stops before the next maximum at 60, so its largest frame is 59
    assert detect_ed_es(COSINE_AREA, reference, "ed") == expected


def test_reference_equidistant_from_two_runs_picks_the_earlier_run():
    assert detect_ed_es(COSINE_AREA, 30, "es") == 15  # 8 frames from run 8..22 and from run 38..52


def test_tied_minimum_returns_first_frame_and_scaling_changes_nothing():
    area = np.array([5, 3, 1, 1, 3, 5])
    assert detect_ed_es(area, 2, "es") == 2
    assert detect_ed_es(7 * area + 100, 3, "es") == 2


def test_frames_at_the_median_end_a_run():
    # the median 5 is hit exactly (frames 1, 3, 4, 5, 7, as real area curves do): frames 2 and 6 are two runs
    area = np.array([9, 5, 2, 5, 5, 5, 1, 5, 9])
    assert detect_ed_es(area, 2, "es") == 2
    assert detect_ed_es(20 - area, 2, "ed") == 2


def test_flat_curve_falls_back_to_one_run_of_all_frames():
    assert detect_ed_es(np.full(10, 50.0), 6, "es") == 0


def test_unknown_phase_is_refused():
    with pytest.raises(ConfigKeyError, match="'mid'"):
        detect_ed_es(COSINE_AREA, 3, "mid")


def test_afd_is_mean_absolute_frame_difference():
    assert frame_detection_error([10, 20, 30], [12, 20, 25]) == pytest.approx(7 / 3)
    with pytest.raises(ShapeMismatchError):
        frame_detection_error([1, 2], [1])


def test_ef_proxy_is_percent_area_change_and_nan_for_empty_ed():
    assert ef_proxy(100, 60) == pytest.approx(40.0)
    np.testing.assert_allclose(ef_proxy(np.array([200.0, 0.0]), np.array([50.0, 0.0])), [75.0, np.nan])


def test_paper_ef_proxy_reads_the_reference_frames_at_80_of_255_and_scores_an_empty_ed_zero():
    probs = np.zeros((3, 4, 4))
    probs[0, :2] = 0.9  # 8 px
    probs[0, 2] = 0.2  # faint: counted at 25/255, not at 80/255
    probs[2, 0] = 0.9  # 4 px
    assert paper_ef_proxy(probs, 0, 2) == pytest.approx(50.0)
    assert paper_ef_proxy(probs, 1, 2) == 0.0  # empty ED: 0, not nan (the video stays in r)


def test_area_jitter_is_small_for_a_smooth_cycle_grows_with_frame_noise_and_ignores_scale():
    rng = np.random.default_rng(0)
    assert area_jitter(np.linspace(800, 1200, 50)) == pytest.approx(0.0, abs=1e-12)  # a straight line: no jitter
    smooth = area_jitter(COSINE_AREA)
    assert smooth <= 0.2 * (2 * np.pi / 30) ** 2  # relative amplitude 0.2, 30-frame cycle: at most c (2 pi / T)^2
    jitters = [area_jitter(COSINE_AREA * (1 + s * rng.standard_normal(60))) for s in (0.005, 0.02, 0.05)]
    assert smooth < jitters[0] < jitters[1] < jitters[2] and jitters[1] == pytest.approx(2 * 0.02, rel=0.25)
    assert area_jitter(3 * COSINE_AREA) == pytest.approx(smooth)  # relative to the mean area: any grid, any size
    assert np.isnan(area_jitter([100, 90])) and np.isnan(area_jitter(np.zeros(10)))


def test_pearson_matches_numpy_corrcoef():
    x = np.array([1.0, 2.0, 4.0, 3.0, 7.0])
    y = np.array([2.0, 1.0, 5.0, 4.0, 6.0])
    assert pearson_r(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert pearson_r(x, -2 * x + 1) == pytest.approx(-1.0)


def test_dice_at_threshold_binarises_strictly_above_80_of_255():
    prob = np.array([[0.9, 0.5, 80 / 255], [0.0, 0.2, 0.4]])
    mask = np.array([[1, 1, 1], [1, 0, 0]])
    # predicted {(0,0), (0,1), (1,2)}, traced 4 px, 2 shared: 2*2 / (3 + 4)
    assert segmentation_dice_at_threshold(prob, mask) == pytest.approx(4 / 7)
    assert segmentation_dice_at_threshold(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
