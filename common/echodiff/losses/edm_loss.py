"""Denoising score-matching losses of Karras et al. 2022 (Eq. 2 and 8, Table 1 "Training") for EDM, VP and VE.

Each loss draws one sigma per sample, noises the images y with n ~ N(0, sigma^2 I) and returns the mean over the batch
and all elements of lambda(sigma) ||D(y + n, sigma, cond) - y||^2. ``denoiser`` is any D(x, sigma, cond), e.g. a
preconditioner from ``echodiff.networks``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from echodiff.networks.preconditioning import vp_sigma

Denoiser = Callable[[Tensor, Tensor, Tensor | None], Tensor]


class DenoisingLoss:
    """Shared body of Eq. 2 / 8; subclasses give ``sample_sigma`` (p_train) and ``weight`` (lambda)."""

    def sample_sigma(self, batch_size: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        """One training noise level per sample, shape (batch_size,)."""
        raise NotImplementedError

    def weight(self, sigma: Tensor) -> Tensor:
        """Loss weight lambda(sigma)."""
        raise NotImplementedError

    def __call__(
        self,
        denoiser: Denoiser,
        images: Tensor,
        cond: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Mean of lambda(sigma) (D(y + sigma n, sigma, cond) - y)^2 over samples and elements."""
        sigma = self.sample_sigma(images.shape[0], images.device, generator)
        sigma_b = sigma.reshape(-1, *([1] * (images.ndim - 1)))
        noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
        denoised = denoiser(images + sigma_b * noise, sigma, cond)
        return (self.weight(sigma_b) * (denoised - images) ** 2).mean()


class EDMLoss(DenoisingLoss):
    """EDM training (Karras et al. 2022, Table 1): ln sigma ~ N(P_mean, P_std^2), lambda = (s^2 + sd^2) / (s sd)^2."""

    def __init__(self, P_mean: float = -1.2, P_std: float = 1.2, sigma_data: float = 0.5) -> None:
        self.P_mean = P_mean
        self.P_std = P_std
        self.sigma_data = sigma_data

    def sample_sigma(self, batch_size: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        rnd_normal = torch.randn(batch_size, generator=generator, device=device)
        return (rnd_normal * self.P_std + self.P_mean).exp()

    def weight(self, sigma: Tensor) -> Tensor:
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2


class VPLoss(DenoisingLoss):
    """VP training (Karras et al. 2022, Table 1): sigma = sigma_VP(t), t ~ U(epsilon_t, 1), lambda = 1 / sigma^2."""

    def __init__(self, beta_d: float = 19.9, beta_min: float = 0.1, epsilon_t: float = 1e-5) -> None:
        self.beta_d = beta_d
        self.beta_min = beta_min
        self.epsilon_t = epsilon_t

    def sample_sigma(self, batch_size: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        rnd_uniform = torch.rand(batch_size, generator=generator, device=device)
        return vp_sigma(1 + rnd_uniform * (self.epsilon_t - 1), self.beta_d, self.beta_min)

    def weight(self, sigma: Tensor) -> Tensor:
        return 1 / sigma**2


class VELoss(DenoisingLoss):
    """VE training (Karras et al. 2022, Table 1): ln sigma ~ U(ln sigma_min, ln sigma_max), lambda = 1 / sigma^2."""

    def __init__(self, sigma_min: float = 0.02, sigma_max: float = 100.0) -> None:
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max

    def sample_sigma(self, batch_size: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        rnd_uniform = torch.rand(batch_size, generator=generator, device=device)
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** rnd_uniform

    def weight(self, sigma: Tensor) -> Tensor:
        return 1 / sigma**2
