"""CAMUS Dice per structure, LV-endo Hausdorff (pixels and anisotropic mm), summary table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from echodiff.errors import LabelValueError, ShapeMismatchError
from echodiff.metrics.segmentation import (
    camus_dice,
    camus_dice_batch,
    lv_endo_hausdorff,
    lv_endo_hausdorff_batch,
    markdown_table,
    summarize,
)

PRED = np.array(
    [
        [0, 1, 1, 0],
        [0, 1, 2, 0],
        [0, 2, 2, 0],
        [3, 3, 0, 0],
    ]
)
TARGET = np.array(
    [
        [0, 1, 1, 0],
        [0, 1, 1, 0],
        [0, 2, 2, 0],
        [3, 0, 0, 0],
    ]
)
# endo: 3 px vs 4 px, 3 shared -> 2*3/7; epi (1 u 2): the same 6 px -> 1; LA: 2 px vs 1 px, 1 shared -> 2/3
EXPECTED = {"lv_endo": 6 / 7, "lv_epi": 1.0, "la": 2 / 3, "mean": (6 / 7 + 1 + 2 / 3) / 3}


def square(offset_rows: int = 0, offset_cols: int = 0, size: int = 24) -> np.ndarray:
    labels = np.zeros((size, size), dtype=np.int64)
    labels[6 + offset_rows : 12 + offset_rows, 6 + offset_cols : 12 + offset_cols] = 1
    return labels


def test_dice_of_hand_drawn_maps_matches_hand_computed_fractions():
    scores = camus_dice(PRED, TARGET)
    assert scores.keys() == EXPECTED.keys()
    for name, value in EXPECTED.items():
        assert scores[name] == pytest.approx(value, abs=1e-12), name


def test_lv_epi_is_union_so_cavity_myocardium_swaps_inside_do_not_count():
    swapped = np.where(TARGET == 1, 2, np.where(TARGET == 2, 1, TARGET))
    scores = camus_dice(swapped, TARGET)
    assert scores["lv_epi"] == 1.0
    # endo: swapped cavity {(2,1),(2,2)} vs target cavity 4 px, no overlap
    assert scores["lv_endo"] == 0.0


def test_dice_accepts_channel_first_and_torch_inputs():
    expected = camus_dice(PRED, TARGET)
    assert camus_dice(PRED[None], torch.from_numpy(TARGET)[None, None]) == expected


def test_structure_absent_from_both_scores_one_and_from_target_only_zero():
    no_la_pred, no_la_target = np.where(PRED == 3, 0, PRED), np.where(TARGET == 3, 0, TARGET)
    assert camus_dice(no_la_pred, no_la_target)["la"] == 1.0
    assert camus_dice(PRED, no_la_target)["la"] == 0.0


def test_batched_dice_gives_one_value_per_image():
    pred = np.stack([PRED, TARGET])[:, None]
    target = np.stack([TARGET, TARGET])[:, None]
    scores = camus_dice_batch(pred, target)
    for name, value in EXPECTED.items():
        np.testing.assert_allclose(scores[name], [value, 1.0], atol=1e-12)


def test_dice_rejects_unknown_labels_and_mismatched_shapes():
    with pytest.raises(LabelValueError, match=r"pred has label values \{0, 1, 2, 7\}"):
        camus_dice(np.where(PRED == 3, 7, PRED), TARGET)
    with pytest.raises(ShapeMismatchError, match="expected equal shapes"):
        camus_dice(PRED, TARGET[:3])
    with pytest.raises(ShapeMismatchError, match="_batch"):
        camus_dice(np.stack([PRED, PRED])[:, None], np.stack([TARGET, TARGET])[:, None])


@pytest.mark.parametrize("k", [1, 3])
def test_hausdorff_of_squares_offset_by_k_pixels_is_k(k):
    assert lv_endo_hausdorff(square(offset_rows=k), square()) == pytest.approx(k)
    assert lv_endo_hausdorff(square(offset_cols=k), square()) == pytest.approx(k)


def test_hausdorff_of_diagonal_offset_is_the_corner_distance():
    assert lv_endo_hausdorff(square(2, 1), square()) == pytest.approx(math.sqrt(5), rel=1e-6)


def test_hausdorff_honours_anisotropic_row_col_spacing():
    # rows 2 mm, cols 0.5 mm: a 3-row shift is 6 mm, a 4-column shift is 2 mm
    assert lv_endo_hausdorff(square(offset_rows=3), square(), spacing=(2.0, 0.5)) == pytest.approx(6.0)
    assert lv_endo_hausdorff(square(offset_cols=4), square(), spacing=(2.0, 0.5)) == pytest.approx(2.0)
    # diagonal (2 rows, 1 col) at (1.5, 2) mm: sqrt(3^2 + 2^2)
    assert lv_endo_hausdorff(square(2, 1), square(), spacing=(1.5, 2.0)) == pytest.approx(math.sqrt(13), rel=1e-6)


def test_hausdorff_percentile_interpolates_surface_distances():
    # 1-row shift: each square has 20 boundary pixels, 10 on the other's boundary (0) and 10 one pixel off (1);
    # the linear-interpolated median of [0] * 10 + [1] * 10 is 0.5
    assert lv_endo_hausdorff(square(offset_rows=1), square(), percentile=50) == pytest.approx(0.5)
    assert lv_endo_hausdorff(square(offset_rows=1), square(), percentile=25) == pytest.approx(0.0)
    assert lv_endo_hausdorff(square(offset_rows=3), square(), percentile=100) == pytest.approx(3.0)


def test_hausdorff_rejects_percentile_zero_that_monai_reads_as_maximum():
    with pytest.raises(ValueError, match="percentile"):
        lv_endo_hausdorff(square(offset_rows=1), square(), percentile=0)


def test_hausdorff_ignores_other_labels_and_is_nan_when_a_cavity_is_empty():
    with_others = square()
    with_others[14:18, 6:12] = 3
    assert lv_endo_hausdorff(square(offset_rows=2), with_others) == pytest.approx(2.0)
    empty = np.zeros_like(square())
    assert math.isnan(lv_endo_hausdorff(empty, square()))
    assert math.isnan(lv_endo_hausdorff(empty, empty))
    pred, target = np.stack([square(offset_rows=2), empty])[:, None], np.stack([square(), square()])[:, None]
    distances = lv_endo_hausdorff_batch(pred, target)
    assert distances[0] == pytest.approx(2.0) and math.isnan(distances[1])


def test_summary_leaves_out_nan_and_table_shows_mean_std_n():
    summary = summarize({"lv_endo": [0.8, 0.9, 1.0], "hausdorff": [2.0, 4.0, float("nan")]})
    assert summary["lv_endo"]["mean"] == pytest.approx(0.9)
    assert summary["lv_endo"]["std"] == pytest.approx(math.sqrt(0.02 / 3))
    assert summary["hausdorff"] == {"mean": 3.0, "std": 1.0, "n": 2, "n_nan": 1}
    assert markdown_table(summary, digits=2).splitlines() == [
        "| metric | mean | std | n |",
        "|---|---:|---:|---:|",
        "| lv_endo | 0.90 | 0.08 | 3 |",
        "| hausdorff | 3.00 | 1.00 | 2 (1 nan left out) |",
    ]
