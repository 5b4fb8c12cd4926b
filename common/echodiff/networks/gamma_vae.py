"""Gamma-prior variational autoencoder ("Gamma-VAE") of Stojanovski et al. 2024, "Efficient Semantic Diffusion
Architectures for Model Training on Synthetic Echocardiograms", Gamma-VAE section."""

from __future__ import annotations

from collections.abc import Sequence

import math

import torch.nn.functional as F
from monai.networks.nets.autoencoderkl import Decoder, Encoder
from monai.utils import ensure_tuple_rep
from torch import Tensor, nn
from torch.distributions import Gamma

from echodiff.errors import ShapeMismatchError

MIN_PARAMETER = 1e-6  # added to concentration and rate so that Gamma(k, r) is always defined
MIN_LATENT = 1e-7  # floor of a latent mapped back from [-1, 1] before decoding (Stojanovski et al. 2024)


class GammaVAE(nn.Module):
    """Convolutional VAE with a Gamma(concentration, rate) posterior over a sector-masked latent.

    Stojanovski et al. 2024, "Efficient Semantic Diffusion Architectures for Model Training on Synthetic
    Echocardiograms". Encoder and decoder are MONAI's AutoencoderKL ``Encoder``/``Decoder`` (residual blocks,
    GroupNorm, attention at the levels in ``attention_levels`` plus the non-local attention of the deepest level).
    The encoder downsamples by 2 exactly ``len(channels) - 1`` times, so the latent grid is
    ``H / 2**(len(channels) - 1)``: at 256 x 256, ``channels=(64, 128, 192)`` gives a 64 x 64 latent (the paper's
    "L64", EDM-L64) and ``channels=(64, 128)`` a 128 x 128 latent ("L128", EDM-L128).

    The encoder emits two maps a, b per latent channel; the posterior is Gamma(k, r) with
    k = concentration_scale * softplus(a, beta=softplus_beta), r = rate_scale * softplus(b, beta=softplus_beta).
    In training the latent is a reparameterised sample (``rsample``); in evaluation it is the posterior mean k / r.
    The latent is multiplied by the sector mask on the latent grid and the reconstruction by the full-resolution
    sector mask; the sector is ``image > 0`` unless a ``sector_mask`` is given. The prior Gamma(3.75, 10.8) only
    enters the KL term, so it is configured on ``echodiff.losses.GammaVAELoss``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        channels: Sequence[int] = (64, 128, 192),
        num_res_blocks: int | Sequence[int] = 2,
        attention_levels: Sequence[bool] | None = None,
        norm_num_groups: int = 32,
        latent_channels: int = 1,
        concentration_scale: float = 3.75,
        rate_scale: float = 10.8,
        softplus_beta: float = 10.0,
    ) -> None:
        super().__init__()
        if attention_levels is None:
            attention_levels = [False] * (len(channels) - 1) + [True]
        if len(attention_levels) != len(channels):
            raise ValueError(
                f"attention_levels has {len(attention_levels)} entries; expected one per level of "
                f"channels={tuple(channels)}"
            )
        if any(c % norm_num_groups for c in channels):
            raise ValueError(f"channels={tuple(channels)} must all be multiples of norm_num_groups={norm_num_groups}")
        num_res_blocks = ensure_tuple_rep(num_res_blocks, len(channels))
        self.spatial_dims = spatial_dims
        self.latent_channels = latent_channels
        self.downsample_factor = 2 ** (len(channels) - 1)
        self.concentration_scale = concentration_scale
        self.rate_scale = rate_scale
        self.softplus_beta = softplus_beta
        levels = dict(
            spatial_dims=spatial_dims,
            channels=channels,
            num_res_blocks=num_res_blocks,
            norm_num_groups=norm_num_groups,
            norm_eps=1e-6,
            attention_levels=attention_levels,
        )
        self.encoder = Encoder(in_channels=in_channels, out_channels=2 * latent_channels, **levels)
        nn.init.constant_(self.encoder.blocks[-1].conv.bias, math.log(math.expm1(softplus_beta)) / softplus_beta)
        self.decoder = Decoder(in_channels=latent_channels, out_channels=in_channels, **levels)

    def latent_shape(self, image_shape: Sequence[int]) -> tuple[int, ...]:
        """Latent shape for a channel-first image shape ``(C, *spatial)`` or ``(B, C, *spatial)``."""
        self._check_spatial(image_shape)
        leading = tuple(image_shape[: -self.spatial_dims - 1])
        spatial = tuple(s // self.downsample_factor for s in image_shape[-self.spatial_dims :])
        return (*leading, self.latent_channels, *spatial)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior parameters (concentration k, rate r) = (3.75 softplus(a, 10), 10.8 softplus(b, 10)) + epsilon."""
        self._check_spatial(x.shape)
        return self.posterior(self.encoder(x))

    def posterior(self, encoder_output: Tensor) -> tuple[Tensor, Tensor]:
        """(k, r) of the encoder's output maps (a, b), in float32 (also under bf16 autocast)."""
        a, b = encoder_output.float().chunk(2, dim=1)
        concentration = self.concentration_scale * F.softplus(a, beta=self.softplus_beta) + MIN_PARAMETER
        rate = self.rate_scale * F.softplus(b, beta=self.softplus_beta) + MIN_PARAMETER
        return concentration, rate

    @staticmethod
    def sample_latent(concentration: Tensor, rate: Tensor) -> Tensor:
        """Reparameterised sample z ~ Gamma(concentration, rate); gradients reach both parameters."""
        return Gamma(concentration, rate).rsample()

    @staticmethod
    def posterior_mean(concentration: Tensor, rate: Tensor) -> Tensor:
        """Mean of Gamma(k, r): k / r."""
        return concentration / rate

    def latent_mask(self, sector_mask: Tensor) -> Tensor:
        """Sector mask on the latent grid, by max-pooling each factor x factor block of the full-resolution mask.

        A latent pixel is inside the sector when any image pixel it covers is, so every in-sector pixel of the
        reconstruction is decoded from unmasked latents.
        """
        self._check_spatial(sector_mask.shape)
        max_pool = getattr(F, f"max_pool{self.spatial_dims}d")
        return max_pool((sector_mask > 0).float(), self.downsample_factor)

    def decode(self, z: Tensor) -> Tensor:
        """Decoder output for a latent z (no mask, no clamp)."""
        return self.decoder(z)

    def forward(self, x: Tensor, sector_mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(recon, z, concentration, rate); z is an rsample in training and the posterior mean in evaluation."""
        full_mask = self._full_mask(x, sector_mask)
        concentration, rate = self.encode(x)
        if self.training:
            z = self.sample_latent(concentration, rate)
        else:
            z = self.posterior_mean(concentration, rate)
        z = z * self.latent_mask(full_mask)
        recon = self.decode(z) * full_mask
        return recon, z, concentration, rate

    def encode_for_diffusion(self, x: Tensor, sector_mask: Tensor | None = None) -> Tensor:
        """Diffusion latent clamp(2 z - 1, -1, 1) with z = posterior mean * latent mask (never a prior sample)."""
        full_mask = self._full_mask(x, sector_mask)
        z = self.posterior_mean(*self.encode(x)) * self.latent_mask(full_mask)
        return (z * 2 - 1).clamp(-1, 1)

    def decode_from_diffusion(self, latent: Tensor, sector_mask: Tensor) -> Tensor:
        """Image in [0, 1] from a diffusion latent: decode(clamp((latent + 1) / 2, 1e-7) * latent mask) * mask."""
        spatial = tuple(latent.shape[-self.spatial_dims :])
        expected = tuple(s * self.downsample_factor for s in spatial)
        if tuple(sector_mask.shape[-self.spatial_dims :]) != expected:
            raise ShapeMismatchError(
                f"sector_mask has spatial shape {tuple(sector_mask.shape[-self.spatial_dims:])}; expected {expected} "
                f"(latent {spatial} times the downsampling factor {self.downsample_factor})"
            )
        full_mask = (sector_mask > 0).to(latent.dtype)
        z = ((latent + 1) / 2).clamp(min=MIN_LATENT) * self.latent_mask(full_mask)
        return (self.decode(z) * full_mask).clamp(0, 1)

    def _full_mask(self, x: Tensor, sector_mask: Tensor | None) -> Tensor:
        if sector_mask is None:
            return (x > 0).to(x.dtype)
        if tuple(sector_mask.shape[-self.spatial_dims :]) != tuple(x.shape[-self.spatial_dims :]):
            raise ShapeMismatchError(
                f"sector_mask has shape {tuple(sector_mask.shape)}; expected the image's spatial shape "
                f"{tuple(x.shape[-self.spatial_dims:])}"
            )
        return (sector_mask > 0).to(x.dtype)

    def _check_spatial(self, shape: Sequence[int]) -> None:
        spatial = tuple(shape[-self.spatial_dims :])
        if len(shape) < self.spatial_dims + 1 or any(s % self.downsample_factor for s in spatial):
            raise ShapeMismatchError(
                f"Gamma-VAE input has shape {tuple(shape)}; expected channel-first (..., C, "
                f"{', '.join(['S'] * self.spatial_dims)}) with each spatial size a multiple of "
                f"{self.downsample_factor} = 2**(len(channels) - 1)"
            )
