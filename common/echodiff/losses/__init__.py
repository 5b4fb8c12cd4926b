"""Losses: the Gamma-VAE objective, the EDM/VP/VE denoising losses and soft-mask distillation."""

from __future__ import annotations

from echodiff.losses.distillation import SoftMaskDistillationLoss, student_channels, teacher_probabilities
from echodiff.losses.edm_loss import EDMLoss, VELoss, VPLoss
from echodiff.losses.gamma_vae_loss import GammaVAELoss

__all__ = ["EDMLoss", "GammaVAELoss", "SoftMaskDistillationLoss", "VELoss", "VPLoss", "student_channels",
           "teacher_probabilities"]
