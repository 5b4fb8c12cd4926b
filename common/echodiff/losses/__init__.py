"""Losses: the Gamma-VAE objective and the EDM/VP/VE denoising losses."""

from __future__ import annotations

from echodiff.losses.edm_loss import EDMLoss, VELoss, VPLoss
from echodiff.losses.gamma_vae_loss import GammaVAELoss

__all__ = ["EDMLoss", "GammaVAELoss", "VELoss", "VPLoss"]
