"""Label-map augmentation: labels stay integer and within their set, seeded runs repeat, maps change, bounds hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from echodiff.data.augment import RandLabelMapAugmentd, bspline_displacement, label_map_augmentation
from echodiff.data.phantom import phantom_frame


@pytest.fixture(scope="module")
def label_map() -> np.ndarray:
    return phantom_frame("4CH", "ED", 96, 0)[1][None].astype(np.int64)


def augment(transform, label: np.ndarray, seed: int):
    transform.set_random_state(seed)
    return transform({"label": label})["label"]


def test_augmented_labels_stay_integer_and_within_the_original_set(label_map: np.ndarray):
    transform = label_map_augmentation()
    for seed in range(4):
        out = augment(transform, label_map, seed)
        assert out.dtype == np.int64 and out.shape == label_map.shape
        assert set(np.unique(out).tolist()) <= set(np.unique(label_map).tolist())
        assert (out == 1).any() and (out == 3).any()


def test_augmentation_is_seeded_and_changes_the_map(label_map: np.ndarray):
    transform = label_map_augmentation()
    first, again, other = (augment(transform, label_map, s) for s in (7, 7, 8))
    np.testing.assert_array_equal(first, again)
    assert (first != label_map).mean() > 0.01
    assert (first != other).mean() > 0.01


def test_all_keys_share_one_deformation_and_torch_stays_torch(label_map: np.ndarray):
    transform = RandLabelMapAugmentd(keys=("label", "cond"))
    transform.set_random_state(3)
    out = transform({"label": label_map, "cond": torch.from_numpy(label_map + 1).to(torch.uint8)})
    assert isinstance(out["cond"], torch.Tensor) and out["cond"].dtype == torch.uint8
    inside = out["label"] > 0
    np.testing.assert_array_equal(out["cond"].numpy()[inside], out["label"][inside] + 1)


def test_zero_ranges_give_the_identity_and_prob_zero_only_resizes(label_map: np.ndarray):
    still = RandLabelMapAugmentd(
        rotate_deg=0, translate_fraction=0, scale_range=(1, 1), shear_deg=0, max_displacement=0)
    np.testing.assert_array_equal(augment(still, label_map, 0), label_map)
    np.testing.assert_array_equal(augment(RandLabelMapAugmentd(prob=0.0), label_map, 0), label_map)
    padded = augment(RandLabelMapAugmentd(prob=0.0, spatial_size=(100, 96)), label_map, 0)
    assert padded.shape == (1, 100, 96)
    np.testing.assert_array_equal(padded[:, 2:98], label_map)


def test_scale_range_is_the_zoom_of_the_content(label_map: np.ndarray):
    shrink = RandLabelMapAugmentd(rotate_deg=0, translate_fraction=0, scale_range=(0.8, 0.8), shear_deg=0,
                                  max_displacement=0)
    ratio = (augment(shrink, label_map, 0) > 0).sum() / (label_map > 0).sum()
    assert ratio == pytest.approx(0.64, abs=0.03)


def test_bspline_displacement_never_exceeds_the_largest_control_move():
    moves = np.random.default_rng(0).uniform(-1, 1, size=(2, 10, 10))
    field = bspline_displacement(moves, (64, 80))
    assert field.shape == (2, 64, 80) and np.abs(field).max() <= 1.0
    interior = bspline_displacement(np.ones((2, 10, 10)), (64, 80))[:, 10:54, 10:70]
    np.testing.assert_allclose(interior, 1.0)  # B-spline weights sum to one away from the border
