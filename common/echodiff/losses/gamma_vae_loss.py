"""Training objective of the Gamma-VAE (Stojanovski et al. 2024, Gamma-VAE section)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Gamma, kl_divergence

from echodiff.errors import ShapeMismatchError


class GammaVAELoss(nn.Module):
    """recon_weight MSE(recon, x) + kl_weight KL(prior || posterior) + perceptual_weight perceptual
    + latent_weight MSE(z, x area-downsampled to the latent grid) + bound_weight mean(relu(k / r - bound)^2).

    With several latent channels (a CPU-scale lever, not the paper's single channel) the latent term ties every
    channel to the downsampled image. An untied channel is only held by the tiny KL weight and drifts far outside
    [0, 1] (posterior means of 1e6 were measured), where the diffusion mapping clamp(2 z - 1, -1, 1) destroys it.

    Stojanovski et al. 2024 use weights 10, 1e-3, 1e-3, 1e-2 and switch the last two on after a warm-up:
    they count from epoch ``warmup_epochs`` on (epochs numbered from 0; the paper's ``epoch >= 5``).
    KL(prior || posterior) = KL(Gamma(prior_concentration, prior_rate) || Gamma(k, r)) in closed form, averaged over
    the latent elements inside the sector (``latent_mask`` > 0), in this direction as in the paper's code.
    ``perceptual`` is any callable (recon, x) -> scalar, e.g. MONAI's ``PerceptualLoss`` built with weights that are
    already on disk; None (default) leaves the term out, and nothing is ever downloaded here.

    The bound term (not in the paper; off with ``bound_weight`` 0) holds every posterior mean k / r below ``bound``
    (default 1: where the diffusion mapping clamp(2 z - 1, -1, 1) starts to clip; the 0.996 quantile of the prior
    Gamma(3.75, 10.8)), from the first step, warm-up included: the decoder's GroupNorm makes the latent's scale
    invisible to the reconstruction, and the KL term grows only logarithmically with the mean, so nothing else stops
    an untied channel from drifting. Averaged over the in-sector latent elements, like the KL term.
    """

    def __init__(
        self,
        recon_weight: float = 10.0,
        kl_weight: float = 1e-3,
        perceptual_weight: float = 1e-3,
        latent_weight: float = 1e-2,
        warmup_epochs: int = 5,
        prior_concentration: float = 3.75,
        prior_rate: float = 10.8,
        perceptual: Callable[[Tensor, Tensor], Tensor] | None = None,
        bound_weight: float = 0.0,
        bound: float = 1.0,
    ) -> None:
        super().__init__()
        self.recon_weight = recon_weight
        self.kl_weight = kl_weight
        self.perceptual_weight = perceptual_weight
        self.latent_weight = latent_weight
        self.warmup_epochs = warmup_epochs
        self.prior_concentration = prior_concentration
        self.prior_rate = prior_rate
        self.perceptual = perceptual
        self.bound_weight = bound_weight
        self.bound = bound
        self.epoch = 0

    def extra_repr(self) -> str:
        names = ("recon_weight", "kl_weight", "perceptual_weight", "latent_weight", "warmup_epochs", "prior_concentration",
                 "prior_rate", "bound_weight", "bound")  # fmt: skip
        return ", ".join(f"{name}={getattr(self, name)}" for name in names)

    def set_epoch(self, epoch: int) -> None:
        """Epoch (from 0) used when ``forward`` gets no ``epoch``; decides whether the warm-up is over."""
        self.epoch = epoch

    def kl_prior_posterior(self, concentration: Tensor, rate: Tensor) -> Tensor:
        """Elementwise KL(Gamma(prior_concentration, prior_rate) || Gamma(concentration, rate))."""
        prior = Gamma(torch.full_like(concentration, self.prior_concentration), torch.full_like(rate, self.prior_rate))
        return kl_divergence(prior, Gamma(concentration, rate))

    def forward(
        self,
        x: Tensor,
        recon: Tensor,
        z: Tensor,
        concentration: Tensor,
        rate: Tensor,
        latent_mask: Tensor,
        epoch: int | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """Total loss and its weighted terms as detached floats ("recon", "kl", "perceptual", "latent", "bound",
        "total")."""
        epoch = self.epoch if epoch is None else epoch
        recon_term = self.recon_weight * F.mse_loss(recon, x)
        latent_mask = latent_mask.expand_as(concentration)
        kl = self.kl_prior_posterior(concentration, rate)
        kl_term = self.kl_weight * (kl * latent_mask).sum() / latent_mask.sum().clamp(min=1)
        excess = F.relu(concentration / rate - self.bound) ** 2
        bound_term = self.bound_weight * (excess * latent_mask).sum() / latent_mask.sum().clamp(min=1)
        perceptual_term = torch.zeros((), device=x.device)
        latent_term = torch.zeros((), device=x.device)
        if epoch >= self.warmup_epochs:
            if self.perceptual is not None:
                perceptual_term = self.perceptual_weight * self.perceptual(recon, x)
            x_latent = F.interpolate(x, size=z.shape[2:], mode="area")
            if x_latent.shape[0] != z.shape[0] or x_latent.shape[1] != 1:
                raise ShapeMismatchError(
                    f"latent z has shape {tuple(z.shape)}; the latent MSE term expects a one-channel image of the same "
                    f"batch, area-downsampled to the latent grid, got shape {tuple(x_latent.shape)}"
                )
            latent_term = self.latent_weight * F.mse_loss(z, x_latent.expand_as(z))
        total = recon_term + kl_term + perceptual_term + latent_term + bound_term
        terms = dict(recon=recon_term, kl=kl_term, perceptual=perceptual_term, latent=latent_term, bound=bound_term,
                     total=total)  # fmt: skip
        return total, {name: float(value.detach()) for name, value in terms.items()}
