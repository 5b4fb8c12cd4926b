"""CAMUS segmentation scores: Dice per structure and LV-endocardium Hausdorff distance (Stojanovski et al. 2024; docs/methods.md section 4).

Structures from CAMUS label maps (0 background, 1 LV cavity, 2 myocardium, 3 left atrium):
LV endo = 1, LV epi = 1 u 2, LA = 3. Dice is computed with `monai.metrics.compute_dice` on these
(overlapping) binary channels; a structure absent from both prediction and target scores 1.0
(nothing to find, nothing found), absent from the target only scores 0.0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance
from monai.utils import convert_to_tensor

from echodiff.errors import LabelValueError, ShapeMismatchError

STRUCTURES: dict[str, tuple[int, ...]] = {"lv_endo": (1,), "lv_epi": (1, 2), "la": (3,)}
CAMUS_LABELS = (0, 1, 2, 3)
# row = label, column = structure: 1 where the label belongs to it (a lookup instead of one comparison per structure)
_STRUCTURE_TABLE = torch.tensor([[label in values for values in STRUCTURES.values()] for label in CAMUS_LABELS],
                                dtype=torch.float64)  # fmt: skip
LabelMap = np.ndarray | torch.Tensor


def _label_batch(labels: LabelMap, name: str, batched: bool) -> torch.Tensor:
    """Label map(s) as an integer tensor (B, 1, H, W), checked against the CAMUS label set."""
    if not isinstance(labels, torch.Tensor):
        labels = torch.from_numpy(np.asarray(labels, dtype=np.float64))
    tensor = convert_to_tensor(labels, track_meta=False).detach().cpu().double()  # no MetaTensor overhead per op
    if batched:
        if tensor.ndim != 4 or tensor.shape[1] != 1:
            raise ShapeMismatchError(f"{name} has shape {tuple(tensor.shape)}; expected a batch (B, 1, H, W)")
    else:
        if tensor.ndim not in (2, 3, 4) or tensor.shape[:-2].numel() != 1:
            raise ShapeMismatchError(
                f"{name} has shape {tuple(tensor.shape)}; expected one label map (H, W), (1, H, W) or (1, 1, H, W) "
                f"(use the *_batch function for batches)"
            )
        tensor = tensor.reshape(1, 1, *tensor.shape[-2:])
    if not bool(((tensor == tensor.round()) & (tensor >= 0) & (tensor <= max(CAMUS_LABELS))).all()):
        found = ", ".join(f"{value:g}" for value in torch.unique(tensor).tolist())
        raise LabelValueError(
            f"{name} has label values {{{found}}}; expected CAMUS labels 0..3 "
            f"(background, LV cavity, myocardium, left atrium)"
        )
    return tensor.long()


def _pair(pred: LabelMap, target: LabelMap, batched: bool) -> tuple[torch.Tensor, torch.Tensor]:
    pred_batch, target_batch = _label_batch(pred, "pred", batched), _label_batch(target, "target", batched)
    if pred_batch.shape != target_batch.shape:
        raise ShapeMismatchError(
            f"pred has shape {tuple(pred_batch.shape)} but target has {tuple(target_batch.shape)}; "
            "expected equal shapes"
        )
    return pred_batch, target_batch


def camus_structures(labels: torch.Tensor) -> torch.Tensor:
    """Binary channels (B, 3, H, W) float64: LV endo, LV epi, LA from a (B, 1, H, W) label map."""
    return _STRUCTURE_TABLE[labels[:, 0]].permute(0, 3, 1, 2)


def _dice(pred_batch: torch.Tensor, target_batch: torch.Tensor) -> dict[str, np.ndarray]:
    scores = compute_dice(
        camus_structures(pred_batch), camus_structures(target_batch), include_background=True, ignore_empty=False
    ).numpy()
    result = {name: scores[:, index] for index, name in enumerate(STRUCTURES)}
    result["mean"] = scores.mean(axis=1)
    return result


def camus_dice_batch(pred: LabelMap, target: LabelMap) -> dict[str, np.ndarray]:
    """Dice per image for LV endo, LV epi, LA and their mean; label maps (B, 1, H, W), numpy or torch."""
    return _dice(*_pair(pred, target, batched=True))


def camus_dice(pred: LabelMap, target: LabelMap) -> dict[str, float]:
    """Dice for LV endo, LV epi, LA and their mean of one label map (H, W), (1, H, W) or (1, 1, H, W)."""
    pred_batch, target_batch = _pair(pred, target, batched=False)
    return {name: float(values[0]) for name, values in camus_dice_batch(pred_batch, target_batch).items()}


def lv_endo_hausdorff_batch(
    pred: LabelMap, target: LabelMap, spacing: float | Sequence[float] | None = None, percentile: float | None = None
) -> np.ndarray:
    """Symmetric Hausdorff distance per image between LV cavities (label 1), (B,) array.

    Pixels by default; with ``spacing`` = (row, col) in mm (or one number), in mm. ``percentile``
    in (0, 100], e.g. 95, replaces the maximum by that percentile of surface distances (0 is refused:
    `compute_hausdorff_distance` reads it as "no percentile"). The distance is undefined, and
    returned as nan, when either cavity is empty.
    """
    return _hausdorff(*_pair(pred, target, batched=True), spacing, percentile)


def _hausdorff(
    pred_batch: torch.Tensor, target_batch: torch.Tensor, spacing: float | Sequence[float] | None,
    percentile: float | None,
) -> np.ndarray:
    if percentile is not None and not 0 < percentile <= 100:
        raise ValueError(f"percentile is {percentile}; expected 0 < percentile <= 100 or None (maximum)")
    pred_endo, target_endo = (pred_batch == 1).float(), (target_batch == 1).float()
    distances = np.full(pred_batch.shape[0], np.nan)
    defined = (pred_endo.flatten(1).amax(1) > 0) & (target_endo.flatten(1).amax(1) > 0)
    if defined.any():
        distances[defined.numpy()] = compute_hausdorff_distance(
            pred_endo[defined], target_endo[defined], include_background=True, percentile=percentile, spacing=spacing
        )[:, 0].numpy()
    return distances


def camus_scores_batch(pred: LabelMap, target: LabelMap) -> dict[str, np.ndarray]:
    """`camus_dice_batch` (keys lv_endo, lv_epi, la, mean) and `lv_endo_hausdorff_batch` in pixels (key hd_lv_endo) of
    label maps (B, 1, H, W), checked once."""
    pred_batch, target_batch = _pair(pred, target, batched=True)
    return {**_dice(pred_batch, target_batch), "hd_lv_endo": _hausdorff(pred_batch, target_batch, None, None)}


def lv_endo_hausdorff(
    pred: LabelMap, target: LabelMap, spacing: float | Sequence[float] | None = None, percentile: float | None = None
) -> float:
    """`lv_endo_hausdorff_batch` for one label map (H, W), (1, H, W) or (1, 1, H, W)."""
    pred_batch, target_batch = _pair(pred, target, batched=False)
    return float(lv_endo_hausdorff_batch(pred_batch, target_batch, spacing=spacing, percentile=percentile)[0])


def summarize(values: dict[str, Sequence[float]]) -> dict[str, dict[str, float | int]]:
    """Mean, std (population, as ``np.std``) and count per metric over images; nan values are left out.

    ``n`` counts the values used, ``n_nan`` those left out (e.g. Hausdorff with an empty cavity).
    """
    summary = {}
    for name, metric_values in values.items():
        array = np.asarray(metric_values, dtype=np.float64).ravel()
        present = array[~np.isnan(array)]
        summary[name] = {
            "mean": float(present.mean()) if present.size else float("nan"),
            "std": float(present.std()) if present.size else float("nan"),
            "n": int(present.size),
            "n_nan": int(array.size - present.size),
        }
    return summary


def markdown_table(summary: dict[str, dict[str, float | int]], digits: int = 3) -> str:
    """`summarize` output as a Markdown table: metric, mean, std, n (and how many nan were left out), and the 95 %
    interval when the summary holds one (`ci95`, e.g. of `echodiff.metrics.patient_bootstrap`)."""
    intervals = any("ci95" in stats for stats in summary.values())
    lines = ["| metric | mean | std | n |" + (" 95 % CI |" if intervals else ""),
             "|---|---:|---:|---:|" + ("---|" if intervals else "")]  # fmt: skip
    for name, stats in summary.items():
        count = f"{stats['n']}" + (f" ({stats['n_nan']} nan left out)" if stats.get("n_nan") else "")
        line = f"| {name} | {stats['mean']:.{digits}f} | {stats['std']:.{digits}f} | {count} |"
        if intervals:
            low, high = stats.get("ci95", (float("nan"), float("nan")))
            line += f" [{low:.{digits}f}, {high:.{digits}f}] |"
        lines.append(line)
    return "\n".join(lines)
