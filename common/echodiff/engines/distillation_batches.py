"""Training batches of the distilled students with targets made online: the teacher's probabilities on the very clip
the student sees, after augmentation ("function matching", Beyer et al. 2022, "Knowledge distillation: A good teacher is
patient and consistent", CVPR, section 3: teacher and student get the same augmented view)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from monai.engines import PrepareBatch
from torch import nn

from echodiff.losses.distillation import teacher_probabilities
from echodiff.networks import FrameWise

__all__ = ["TeacherTargetsPrepareBatch"]


class TeacherTargetsPrepareBatch(PrepareBatch):
    """`(image, target)` for MONAI's SupervisedTrainer where `target` = `teacher_probabilities(teacher(image))` (softmax
    over the classes, sigmoid of a one-channel teacher), frame by frame: (B, 1, L, H, W) clips -> (B, C, L, H, W)
    probabilities, the layout of the stored targets (`echodiff.distillation.produce_targets`). The stored targets of the
    batch are ignored: precomputed targets can only follow the spatial part of an augmentation (they are warped with the
    image), while the teacher's answer to a contrast, noise or intensity change, which is what the student must match
    off the training images, needs the teacher itself. Costs one teacher forward pass per training batch, in eval mode
    and without gradients."""

    def __init__(self, teacher: nn.Module) -> None:
        self.teacher = FrameWise(teacher.eval())

    @torch.no_grad()
    def __call__(
        self, batchdata: Mapping[str, Any], device: str | torch.device | None = None, non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.as_tensor(batchdata["image"]).to(device=device, non_blocking=non_blocking)
        self.teacher.eval()
        return image, teacher_probabilities(self.teacher(image))
