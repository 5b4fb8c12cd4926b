"""Denoiser preconditioning D(x, sigma, cond) = c_skip x + c_out F(c_in x, c_noise, cond) (Karras et al. 2022, Table 1).

F is a MONAI ``SPADEDiffusionModelUNet`` (label-map conditioned through SPADE) or ``DiffusionModelUNet`` (no
condition, or a condition concatenated to the input channels). MONAI's UNets embed ``timesteps`` with sinusoids
designed for 0..1000, so each preconditioner maps its c_noise into that range with one documented function.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from monai.networks.nets import SPADEDiffusionModelUNet
from torch import Tensor, nn

from echodiff.errors import ConfigKeyError, ShapeMismatchError
from echodiff.samplers.sigma_schedules import vp_sigma, vp_sigma_inv

CONDITIONING_MODES = ("spade", "concat")


def noise_level_to_timestep(c_noise: Tensor) -> Tensor:
    """EDM c_noise = ln(sigma) / 4 to a MONAI timestep: t = 600 + (800 / ln 10) c_noise = 200 (log10 sigma + 3).

    Affine in ln(sigma): sigma in [1e-3, 1e2] maps to [0, 1000]; the EDM sampling range [0.002, 80] lands in
    about [60, 981]. Outside that range t leaves [0, 1000] smoothly, which the sinusoidal embedding accepts.
    """
    return 600 + (800 / math.log(10)) * c_noise


def ve_noise_level_to_timestep(c_noise: Tensor) -> Tensor:
    """VE c_noise = ln(sigma / 2) to a MONAI timestep: t = 100 (c_noise + 5).

    The VE range sigma in [0.02, 100] (c_noise in [ln 0.01, ln 50]) lands in about [40, 891].
    """
    return 100 * (c_noise + 5)


class Preconditioner(nn.Module):
    """Shared forward of Table 1: subclasses give ``coefficients(sigma)`` and ``timestep(c_noise)``.

    ``conditioning`` says how a non-None ``cond`` reaches the network: "spade" passes it as MONAI's ``seg``
    (a one-hot label map (B, n_classes, *spatial), resized inside SPADE), "concat" concatenates it to the
    network input channels. None picks "spade" for a ``SPADEDiffusionModelUNet`` and "concat" otherwise.
    """

    sigma_min: float
    sigma_max: float

    def __init__(self, model: nn.Module, conditioning: str | None = None) -> None:
        super().__init__()
        if conditioning is None:
            conditioning = "spade" if isinstance(model, SPADEDiffusionModelUNet) else "concat"
        if conditioning not in CONDITIONING_MODES:
            raise ConfigKeyError(
                f"unknown conditioning '{conditioning}'; expected one of {', '.join(CONDITIONING_MODES)}"
            )
        self.model = model
        self.conditioning = conditioning

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(c_skip, c_out, c_in, c_noise) for a broadcastable sigma."""
        raise NotImplementedError

    def timestep(self, c_noise: Tensor) -> Tensor:
        """c_noise mapped to MONAI's timestep range."""
        raise NotImplementedError

    def round_sigma(self, sigma: Tensor | float) -> Tensor:
        """Noise level the network supports closest to sigma; continuous here, as in EDM."""
        return torch.as_tensor(sigma)

    def forward(
        self, x: Tensor, sigma: Tensor | float, cond: Tensor | None = None, class_labels: Tensor | None = None
    ) -> Tensor:
        """D(x, sigma, cond) = c_skip x + c_out F(c_in x, c_noise, cond); sigma is a float, 0-dim or (B,) tensor.

        `class_labels` (B,) int64, when given, reach F as MONAI's ``class_labels`` (a class embedding added to the
        time embedding; the network must be built with ``num_class_embeds``), e.g. the echo view."""
        x = x.to(torch.float32)
        sigma = self._batch_sigma(sigma, x)
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        timesteps = self.timestep(c_noise).flatten()
        x_in = c_in * x
        labels = {} if class_labels is None else {"class_labels": class_labels}
        if cond is None:
            F_x = self.model(x_in, timesteps, **labels)
        elif self.conditioning == "spade":
            F_x = self.model(x_in, timesteps, seg=cond, **labels)
        else:
            F_x = self.model(torch.cat([x_in, cond.to(x_in.dtype)], dim=1), timesteps, **labels)
        if F_x.shape != x.shape:
            raise ShapeMismatchError(
                f"network output has shape {tuple(F_x.shape)}; expected the input's shape {tuple(x.shape)}"
            )
        return c_skip * x + c_out * F_x.to(torch.float32)

    @staticmethod
    def _batch_sigma(sigma: Tensor | float, x: Tensor) -> Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[0])
        if sigma.numel() != x.shape[0]:
            raise ShapeMismatchError(
                f"sigma has {sigma.numel()} values; expected a float, a 0-dim tensor or one per sample ({x.shape[0]})"
            )
        return sigma.reshape(-1, *([1] * (x.ndim - 1)))


class EDMPrecond(Preconditioner):
    """EDM preconditioning (Karras et al. 2022, Table 1 "Ours", Eq. 7), timestep map ``noise_level_to_timestep``."""

    def __init__(
        self,
        model: nn.Module,
        sigma_data: float = 0.5,
        sigma_min: float = 0.0,
        sigma_max: float = float("inf"),
        conditioning: str | None = None,
    ) -> None:
        super().__init__(model, conditioning)
        self.sigma_data = sigma_data
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        sd = self.sigma_data
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
        c_in = 1 / (sigma**2 + sd**2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def timestep(self, c_noise: Tensor) -> Tensor:
        return noise_level_to_timestep(c_noise)


class VPPrecond(Preconditioner):
    """Variance-preserving preconditioning (Karras et al. 2022, Table 1 "VP"; Song et al. 2021 DDPM++).

    The network predicts the noise (c_out = -sigma). c_noise = (M - 1) sigma^-1(sigma) already lies in
    [0, M - 1] = [0, 999], MONAI's timestep range, so it is the timestep unchanged.
    """

    def __init__(
        self,
        model: nn.Module,
        beta_d: float = 19.9,
        beta_min: float = 0.1,
        M: int = 1000,
        epsilon_t: float = 1e-5,
        conditioning: str | None = None,
    ) -> None:
        super().__init__(model, conditioning)
        self.beta_d = beta_d
        self.beta_min = beta_min
        self.M = M
        self.epsilon_t = epsilon_t
        self.sigma_min = float(vp_sigma(epsilon_t, beta_d, beta_min))
        self.sigma_max = float(vp_sigma(1.0, beta_d, beta_min))

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        c_skip = torch.ones_like(sigma)
        c_out = -sigma
        c_in = 1 / (sigma**2 + 1).sqrt()
        c_noise = (self.M - 1) * vp_sigma_inv(sigma, self.beta_d, self.beta_min)
        return c_skip, c_out, c_in, c_noise

    def timestep(self, c_noise: Tensor) -> Tensor:
        return c_noise


class VEPrecond(Preconditioner):
    """Variance-exploding preconditioning (Karras et al. 2022, Table 1 "VE"; Song et al. 2021 NCSN++),
    timestep map ``ve_noise_level_to_timestep``."""

    def __init__(
        self,
        model: nn.Module,
        sigma_min: float = 0.02,
        sigma_max: float = 100.0,
        conditioning: str | None = None,
    ) -> None:
        super().__init__(model, conditioning)
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        c_skip = torch.ones_like(sigma)
        c_out = sigma
        c_in = torch.ones_like(sigma)
        c_noise = (0.5 * sigma).log()
        return c_skip, c_out, c_in, c_noise

    def timestep(self, c_noise: Tensor) -> Tensor:
        return ve_noise_level_to_timestep(c_noise)


PRECONDITIONERS: dict[str, Callable[..., Preconditioner]] = {"edm": EDMPrecond, "vp": VPPrecond, "ve": VEPrecond}


def build_precond(kind: str, model: nn.Module, **kwargs: object) -> Preconditioner:
    """Preconditioner named by a config key ("edm", "vp" or "ve") around ``model``."""
    if kind not in PRECONDITIONERS:
        raise ConfigKeyError(f"unknown preconditioner '{kind}'; expected one of {', '.join(PRECONDITIONERS)}")
    return PRECONDITIONERS[kind](model, **kwargs)
