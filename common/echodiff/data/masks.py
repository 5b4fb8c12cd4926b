"""Segmentation masks as diffusion samples (Guo et al. 2022): one-hot labels scaled to [-1, 1], a segmenter's soft
pre-segmentation on the same scale, and back to class scores."""

from __future__ import annotations

import torch
from monai.networks.utils import one_hot

from echodiff.errors import LabelValueError, ShapeMismatchError

__all__ = ["logits_to_x0", "mask_to_x0", "x0_to_probabilities"]


def mask_to_x0(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """x_0 = one_hot(label) * 2 - 1 (Guo et al. 2022): labels (B, 1, H, W) -> (B, C, H, W) in {-1, 1}."""
    if label.ndim != 4 or label.shape[1] != 1:
        raise ShapeMismatchError(f"label map has shape {tuple(label.shape)}; expected (B, 1, H, W)")
    label = torch.as_tensor(label).long()
    if label.numel() and (label.min() < 0 or label.max() >= num_classes):
        found = sorted(torch.unique(label).tolist())
        raise LabelValueError(f"label map has values {found}; expected class indices 0..{num_classes - 1}")
    return one_hot(label, num_classes, dtype=torch.float32, dim=1) * 2 - 1


def logits_to_x0(logits: torch.Tensor) -> torch.Tensor:
    """softmax(logits) * 2 - 1 over classes (dim 1): a segmenter's class probabilities on the [-1, 1] scale of
    `mask_to_x0`, the soft pre-segmentation that conditions a refining mask denoiser."""
    return torch.softmax(logits.float(), dim=1) * 2 - 1


def x0_to_probabilities(x0: torch.Tensor) -> torch.Tensor:
    """Class scores in [0, 1] from mask samples in [-1, 1]: (x_0 + 1) / 2, clipped (the inverse of `mask_to_x0`)."""
    return ((x0 + 1) / 2).clamp(0, 1)
