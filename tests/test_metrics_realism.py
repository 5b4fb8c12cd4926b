"""Realism, diversity and privacy figures (echodiff.metrics.realism): their ordering on phantom images, not their
values."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from echodiff.data.camus import list_camus
from echodiff.data.camus_input import load_camus_images
from echodiff.errors import ConfigValueError, ShapeMismatchError
from echodiff.metrics.realism import (
    FeatureSpace,
    camus_privacy_filter,
    frechet_distance,
    intra_map_ms_ssim,
    mean_feature_mmd,
    privacy,
    split_half_realism,
    two_sample_accuracy,
)
from torch import nn

SIZE = 64


@pytest.fixture(scope="module")
def real(phantom_camus: Path) -> torch.Tensor:
    """All 32 phantom frames (8 patients x 2 views x 2 phases), 64 px, in [0, 1]."""
    return load_camus_images(phantom_camus, "all", (SIZE, SIZE))


@pytest.fixture(scope="module")
def features(feature_network: nn.Module) -> FeatureSpace:
    return FeatureSpace(feature_network)


def blurred(images: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(images, 5, stride=1, padding=2)


def test_features_are_the_input_of_the_classifiers_final_linear_layer(features, real):
    values = features(real[:5])
    assert values.shape == (5, features.network.fc.in_features)
    with torch.no_grad():
        torch.testing.assert_close(features.network.fc(values), features.network(real[:5]))


def test_a_network_without_a_final_linear_layer_is_refused_by_name():
    with pytest.raises(ConfigValueError, match="Conv2d has no final linear layer"):
        FeatureSpace(nn.Conv2d(1, 2, 3))(torch.zeros(1, 1, 8, 8))


def test_two_halves_of_the_real_set_are_far_closer_than_real_and_noise(features, real):
    first, second = features(real[0::2]), features(real[1::2])
    noise = features(torch.rand_like(real[1::2]))
    assert frechet_distance(first, second) < 0.05 * frechet_distance(first, noise)
    assert mean_feature_mmd(first, second) < 0.05 * mean_feature_mmd(first, noise)


def test_blurred_images_score_worse_than_the_originals(features, real):
    first, second = features(real[0::2]), features(real[1::2])
    blurred_second = features(blurred(real[1::2]))
    assert frechet_distance(first, blurred_second) > 3 * frechet_distance(first, second)
    assert mean_feature_mmd(first, blurred_second) > 3 * abs(mean_feature_mmd(first, second))  # unbiased: may be < 0


@pytest.fixture(scope="module")
def patients(phantom_camus: Path) -> list[str]:
    return [item["patient"] for item in list_camus(phantom_camus, "all", require_label=False)]


def test_split_halves_compare_equal_sizes_and_never_an_image_with_itself(features, real, patients):
    same = split_half_realism(features(real), features(real), patients, splits=4)
    assert same["splits"] == 4 and len(same["fd_splits"]) == 4 and sum(same["half_sizes"]) == len(real)
    assert same["half_sizes"][0] == same["half_sizes"][1]  # 4 of the 8 phantom patients each
    assert min(same["fd_splits"]) > 0  # the halves hold different patients: no image meets itself
    noise = split_half_realism(features(real), features(torch.rand_like(real)), patients, splits=4)
    blur = split_half_realism(features(real), features(blurred(real)), patients, splits=4)
    assert max(same["fd_splits"]) < 0.05 * min(noise["fd_splits"]) and same["fd"] < blur["fd"] < noise["fd"]
    again = split_half_realism(features(real), features(real), patients, splits=4)
    assert again["fd_splits"] == same["fd_splits"]  # the splits are seeded


def test_split_halves_name_mismatched_rows_and_too_few_patients(features, real, patients):
    with pytest.raises(ShapeMismatchError, match="31 other feature rows and 32 groups"):
        split_half_realism(features(real), features(real[1:]), patients)
    with pytest.raises(ShapeMismatchError, match="2 patients; expected at least 4"):
        split_half_realism(features(real), features(real), ["a", "b"] * 16)


def test_two_sample_test_is_exactly_chance_on_identical_sets_and_tells_blur_apart(real):
    train, test = real[:16], real[16:]
    assert two_sample_accuracy(train, train, test, test, steps=5) == 0.5
    assert two_sample_accuracy(train, blurred(train), test, blurred(test), steps=80) >= 0.9


def test_two_sample_test_names_a_set_that_is_not_images(real):
    with pytest.raises(ShapeMismatchError, match=r"test_other has shape \(16, 64, 64\)"):
        two_sample_accuracy(real, real, real, real[:16, 0])


def test_copies_of_training_images_are_all_copies_and_fresh_images_none(features, real):
    training, heldout = real[:16], real[16:]
    copies = privacy(features(training[[3, 7, 7, 11]]), features(training), features(heldout))
    assert copies.copy_rate == 1.0 and copies.threshold > 0 and copies.synthetic_distances.abs().max() < 1e-6
    fresh = privacy(features(torch.rand(8, 1, SIZE, SIZE)), features(training), features(heldout))
    assert fresh.copy_rate == 0.0 and fresh.synthetic_distances.min() > fresh.heldout_distances.max()
    assert fresh.heldout_distances.shape == (16,) and fresh.threshold == copies.threshold


def test_bad_sets_and_percentiles_are_named(features, real):
    training = features(real[:16])
    with pytest.raises(ConfigValueError, match="percentile=100; expected 0 < percentile < 100"):
        privacy(training, training, training, percentile=100)
    with pytest.raises(ShapeMismatchError, match="fake_features has shape \\(1, 16\\)"):
        frechet_distance(training, training[:1])
    with pytest.raises(ShapeMismatchError, match="feature widths differ"):
        mean_feature_mmd(training, training[:, :8])


def test_ms_ssim_across_seeds_is_one_for_identical_images_and_lower_for_different_ones(real):
    maps = real[:4]
    identical = maps[:, None].expand(4, 3, 1, SIZE, SIZE)
    assert intra_map_ms_ssim(identical) == pytest.approx(1.0, abs=1e-5)
    generator = torch.Generator().manual_seed(0)
    noisy = (identical + 0.2 * torch.randn(identical.shape, generator=generator)).clamp(0, 1)
    assert intra_map_ms_ssim(noisy) < 0.9
    assert intra_map_ms_ssim(F.avg_pool2d(identical.flatten(0, 1), 2).unflatten(0, (4, 3))) == pytest.approx(1.0)


def test_ms_ssim_names_too_small_images_and_a_single_seed(real):
    with pytest.raises(ShapeMismatchError, match="16 x 16 px are too small"):
        intra_map_ms_ssim(F.avg_pool2d(real[:2], 4)[:, None].expand(2, 2, 1, 16, 16))
    with pytest.raises(ShapeMismatchError, match="seeds >= 2"):
        intra_map_ms_ssim(real[:2, None])


def test_privacy_filter_from_a_view_classifier_checkpoint_of_the_bundle(phantom_camus, view_classifier_checkpoint):
    fitted, info = camus_privacy_filter(view_classifier_checkpoint, phantom_camus, 32, heldout_split="validation")
    assert fitted.training_features.shape == (16, 512) and fitted.threshold > 0
    assert info["image_size"] == [32, 32] and info["heldout_split"] == "validation"
    assert fitted.distances(load_camus_images(phantom_camus, "training", (32, 32))[:3]).abs().max() < 1e-6
