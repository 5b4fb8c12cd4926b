"""Networks: the Gamma-prior VAE, EDM/VP/VE preconditioning around MONAI's (SPADE)DiffusionModelUNet, the PD-DDPM
mask denoiser anchored on its pre-segmentation, and the ConvLSTM video student of EchoDFKD."""

from __future__ import annotations

from echodiff.networks.convlstm import ConvLSTM, ConvLSTMSegmenter
from echodiff.networks.framewise import FrameWise
from echodiff.networks.gamma_vae import GammaVAE
from echodiff.networks.mask_denoiser import PresegmentationResidualUNet
from echodiff.networks.parallel import unwrap
from echodiff.networks.preconditioning import (
    PRECONDITIONERS,
    EDMPrecond,
    Preconditioner,
    VEPrecond,
    VPPrecond,
    build_precond,
    noise_level_to_timestep,
    ve_noise_level_to_timestep,
    vp_sigma,
    vp_sigma_inv,
)

__all__ = [
    "PRECONDITIONERS",
    "ConvLSTM",
    "ConvLSTMSegmenter",
    "EDMPrecond",
    "FrameWise",
    "GammaVAE",
    "Preconditioner",
    "PresegmentationResidualUNet",
    "VEPrecond",
    "VPPrecond",
    "build_precond",
    "noise_level_to_timestep",
    "unwrap",
    "ve_noise_level_to_timestep",
    "vp_sigma",
    "vp_sigma_inv",
]
