"""Bootstrap accuracy by sub-sampling 80 % of the test set, and per-item correctness from logits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from echodiff.errors import ShapeMismatchError
from echodiff.metrics.classification import bootstrap_accuracy, correct_from_logits


def test_all_correct_gives_exactly_one_with_zero_spread():
    result = bootstrap_accuracy(np.ones(40, dtype=bool))
    assert (result["mean"], result["median"], result["std"]) == (1.0, 1.0, 0.0)
    assert (result["n_draws"], result["fraction"], result["n"], result["draw_size"]) == (1000, 0.8, 40, 32)


def test_half_correct_spread_matches_finite_population_formula():
    n, m, p = 100, 80, 0.5
    result = bootstrap_accuracy(np.arange(n) % 2 == 0)
    expected_std = math.sqrt(p * (1 - p) / m * (n - m) / (n - 1))  # 0.02513
    assert result["mean"] == pytest.approx(0.5, abs=0.003)
    assert result["median"] == pytest.approx(0.5, abs=0.0125)
    assert result["std"] == pytest.approx(expected_std, rel=0.1)


def test_draws_leaving_out_one_of_five_give_three_quarters_or_one():
    # m = 4 of 5 without replacement: 1.0 when the single wrong item is left out (p = 1/5), else 0.75
    result = bootstrap_accuracy([1, 1, 1, 1, 0], n_draws=2000)
    assert result["draw_size"] == 4 and result["median"] == 0.75
    assert result["mean"] == pytest.approx(0.75 + 0.25 / 5, abs=0.01)
    assert result["std"] == pytest.approx(0.25 * math.sqrt(0.2 * 0.8), rel=0.1)


def test_same_seed_reproduces_and_other_seed_differs():
    correct = np.random.default_rng(1).random(60) < 0.7
    assert bootstrap_accuracy(correct, seed=3) == bootstrap_accuracy(torch.from_numpy(correct), seed=3)
    assert bootstrap_accuracy(correct, seed=3)["std"] != bootstrap_accuracy(correct, seed=4)["std"]


def test_draw_size_is_rounded_fraction_of_n():
    assert bootstrap_accuracy(np.ones(7), n_draws=2)["draw_size"] == 6  # round(5.6)
    assert bootstrap_accuracy(np.ones(7), n_draws=2, fraction=1.0)["std"] == 0.0


def test_bad_inputs_are_refused():
    with pytest.raises(ShapeMismatchError, match="1-D"):
        bootstrap_accuracy(np.ones((2, 3)))
    with pytest.raises(ValueError, match="0/1"):
        bootstrap_accuracy([0, 1, 2])
    with pytest.raises(ValueError, match="fraction"):
        bootstrap_accuracy([0, 1], fraction=0.0)


def test_correct_from_logits_uses_argmax_or_sign_of_one_logit():
    logits = torch.tensor([[2.0, -1.0], [0.1, 0.3], [0.0, 5.0]])
    np.testing.assert_array_equal(correct_from_logits(logits, torch.tensor([0, 0, 1])), [True, False, True])
    np.testing.assert_array_equal(correct_from_logits(np.array([[-0.2], [1.5]]), [0, 0]), [True, False])
    with pytest.raises(ShapeMismatchError, match="3 logits but 2 labels"):
        correct_from_logits(logits, [0, 1])
