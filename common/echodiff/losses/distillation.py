"""Soft-mask distillation losses (Petit et al. 2024, "EchoDFKD", section 3; Hinton et al. 2015, "Distilling the
Knowledge in a Neural Network", section 2).

Targets are the teacher's probabilities p (B, C, ...) (`teacher_probabilities`): the softmax over its classes, or the
sigmoid of a one-channel (LV-only) teacher, whose softmax would be 1 everywhere. `"lv"`: per-pixel BCE-with-logits of
the student's single LV logit against p[:, lv_channel] (EchoDFKD's loss). `"multiclass"`: the student predicts all C
classes; loss = tau^2 * mean over pixels of the cross-entropy between the tempered teacher distribution
q = softmax(log p / tau) = p^(1 / tau) / sum p^(1 / tau) and softmax(student logits / tau) (Hinton's tau^2 keeps the
gradient scale independent of tau). Stored probabilities are 8-bit, so q rounds classes below 1/510 to zero.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from echodiff.errors import ConfigKeyError, ConfigValueError, ShapeMismatchError

__all__ = ["SoftMaskDistillationLoss", "student_channels", "teacher_probabilities"]

MODES = ("lv", "multiclass")


def teacher_probabilities(logits: Tensor) -> Tensor:
    """Teacher probabilities of logits (B, C, ...): sigmoid of one channel (an LV segmenter such as EchoNet-Dynamic's
    DeepLabV3), softmax over C > 1 classes (a CAMUS segmenter)."""
    logits = logits.float()
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


def student_channels(mode: str, teacher_classes: int, lv_channel: int = 1) -> int:
    """Output channels a student needs for `mode` with a teacher of `teacher_classes` classes (checked)."""
    if mode not in MODES:
        raise ConfigKeyError(f"distillation mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "multiclass" and teacher_classes < 2:
        raise ConfigValueError(
            f"mode 'multiclass' with a {teacher_classes}-channel teacher; expected mode 'lv' (a one-channel teacher "
            f"gives the LV probability by its sigmoid, lv_channel 0) or a teacher of >= 2 classes"
        )
    if not 0 <= lv_channel < teacher_classes:
        raise ConfigValueError(f"lv_channel={lv_channel}; expected a class of the teacher's 0..{teacher_classes - 1}")
    return 1 if mode == "lv" else teacher_classes


class SoftMaskDistillationLoss(nn.Module):
    """Distillation loss of student logits (B, S, ...) against teacher probabilities (B, C, ...) (module docstring)."""

    def __init__(self, mode: Literal["lv", "multiclass"] = "lv", lv_channel: int = 1, temperature: float = 1.0) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigKeyError(f"distillation mode {mode!r}; expected one of {', '.join(MODES)}")
        if temperature <= 0:
            raise ConfigValueError(f"temperature={temperature}; expected a positive number")
        self.mode, self.lv_channel, self.temperature = mode, int(lv_channel), float(temperature)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        classes = target.shape[1]
        expected = student_channels(self.mode, classes, self.lv_channel)
        if logits.shape[1] != expected or logits.shape[2:] != target.shape[2:]:
            raise ShapeMismatchError(
                f"student output {tuple(logits.shape)} vs teacher targets {tuple(target.shape)}: mode {self.mode!r} "
                f"with a {classes}-class teacher expects a student with out_channels={expected} and the same frames"
            )
        if self.mode == "lv":
            return F.binary_cross_entropy_with_logits(logits, target[:, self.lv_channel : self.lv_channel + 1])
        tau = self.temperature
        tempered = torch.softmax(torch.log(target.clamp_min(1e-12)) / tau, dim=1)
        return tau**2 * -(tempered * torch.log_softmax(logits / tau, dim=1)).sum(dim=1).mean()

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, lv_channel={self.lv_channel}, temperature={self.temperature}"
