"""View-classification accuracy with bootstrap spread (Stojanovski et al. 2024; docs/methods.md section 4)."""

from __future__ import annotations

import numpy as np
import torch

from echodiff.errors import ShapeMismatchError


def correct_from_logits(logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-item correctness (N,) bool from logits (N, C) by argmax, or one binary logit (N,) / (N, 1) by > 0."""
    scores = np.asarray(logits.detach().cpu() if isinstance(logits, torch.Tensor) else logits, dtype=np.float64)
    targets = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if scores.ndim == 2 and scores.shape[1] > 1:
        predicted = scores.argmax(axis=1)
    elif scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] == 1):
        predicted = (scores.reshape(-1) > 0).astype(np.int64)
    else:
        raise ShapeMismatchError(f"logits have shape {scores.shape}; expected (N, C) or one binary logit (N,) / (N, 1)")
    if predicted.shape[0] != targets.shape[0]:
        raise ShapeMismatchError(
            f"{predicted.shape[0]} logits but {targets.shape[0]} labels; expected one label per item"
        )
    return predicted == targets


def bootstrap_accuracy(
    correct: np.ndarray | torch.Tensor, n_draws: int = 1000, fraction: float = 0.8, seed: int = 0
) -> dict[str, float | int]:
    """Accuracy over ``n_draws`` random subsets of ``round(fraction * n)`` test items, mean/median/std.

    The generator paper's "1000 bootstrap draws of 80 % of the test set": each draw is a subset
    drawn without replacement (sub-sampling), so its std is the finite-population one,
    sqrt(p (1 - p) / m * (n - m) / (n - 1)), and all-correct gives exactly 1.0 with std 0.
    std is over draws (``np.std``). Seeded with ``numpy.random.default_rng(seed)``.
    """
    outcomes = np.asarray(correct.detach().cpu() if isinstance(correct, torch.Tensor) else correct)
    if outcomes.ndim != 1 or outcomes.size == 0:
        raise ShapeMismatchError(f"correct has shape {outcomes.shape}; expected a non-empty 1-D array of 0/1 per item")
    if not np.isin(outcomes, (0, 1)).all():
        raise ValueError(f"correct holds values {np.unique(outcomes)}; expected booleans or 0/1 per test item")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction is {fraction}; expected 0 < fraction <= 1")
    if n_draws < 1:
        raise ValueError(f"n_draws is {n_draws}; expected at least 1")
    n = outcomes.size
    draw_size = max(1, round(fraction * n))
    generator = np.random.default_rng(seed)
    outcomes = outcomes.astype(np.float64)
    accuracies = np.array(
        [outcomes[generator.choice(n, size=draw_size, replace=False)].mean() for _ in range(n_draws)]
    )
    return {
        "mean": float(accuracies.mean()),
        "median": float(np.median(accuracies)),
        "std": float(accuracies.std()),
        "n_draws": n_draws,
        "fraction": fraction,
        "n": n,
        "draw_size": draw_size,
    }
