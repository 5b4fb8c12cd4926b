"""Gamma-noise diffusion (Nachmani, San Roman, Wolf 2021, "Denoising Diffusion Gamma Models") as MONAI schedulers.

Index convention: MONAI's timestep t = 0..T-1 indexes `alphas_cumprod[t] = prod_{i<=t} (1 - beta_i)`, i.e. the paper's
step t + 1; the paper's sums "i <= t" become cumulative sums over MONAI indices, and its "[t > 1]" is MONAI's t > 0.
The Gamma parameters are kept in float64 (k_bar_T ~ 1e10 for the linear schedule), so CPU and CUDA only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler
from monai.networks.schedulers.ddpm import DDPMPredictionType
from monai.utils import unsqueeze_right

from echodiff.schedulers.ddim import ddim_update, original_and_noise


def sample_gamma(
    concentration: torch.Tensor, rate: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gamma(concentration, rate) samples, reproducible with `generator`.

    torch's Gamma sampler takes no generator: with one, a seed drawn from it seeds the default generator of the
    samples' device inside `torch.random.fork_rng`, so equal generator states give equal samples and the global RNG
    state is left as it was. Without one, the global RNG is used (as MONAI's schedulers do).
    """
    gamma = torch.distributions.Gamma(concentration, rate)
    if generator is None:
        return gamma.sample()
    seed = int(torch.randint(2**62, (), generator=generator, device=generator.device))
    device = concentration.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        else:
            torch.random.default_generator.manual_seed(seed)
        return gamma.sample()


class GammaNoiseMixin:
    """Gamma noise on top of a MONAI scheduler's betas (Nachmani et al. 2021, the Gamma forward process):
    theta_t = sqrt(alpha_bar_t) theta_0, k_t = beta_t / (alpha_bar_t theta_0^2), k_bar_t = sum_{i<=t} k_i,
    so g - k_bar_t theta_t with g ~ Gamma(k_bar_t, scale theta_t) has mean 0 and variance 1 - alpha_bar_t.
    """

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    num_train_timesteps: int
    clip_sample: bool
    clip_sample_values: list[float]
    prediction_type: str

    def _set_gamma_parameters(self, theta_0: float) -> None:
        """Also recomputes `alphas_cumprod` in float64 (MONAI's float32 cumprod agrees to rounding), so x_t, its noise
        and the steps share one exact alpha_bar."""
        betas = self.betas.double()
        self.alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        self.theta_0 = theta_0
        self.theta = self.alphas_cumprod.sqrt() * theta_0
        self.k_bar = torch.cumsum(betas / (self.alphas_cumprod * theta_0**2), dim=0)

    def _centred_gamma(
        self, shape: torch.Size, timesteps: torch.Tensor | int, generator: torch.Generator | None, device: torch.device
    ) -> torch.Tensor:
        """g - k_bar_t theta_t, g ~ Gamma(k_bar_t, scale theta_t), in float64; `timesteps`: one per item, or one."""
        t = torch.as_tensor(timesteps, device=device).long()
        k_bar = unsqueeze_right(self.k_bar.to(device)[t], len(shape))
        theta = unsqueeze_right(self.theta.to(device)[t], len(shape))
        g = sample_gamma(k_bar.expand(shape), 1 / theta.expand(shape), generator)
        return g - k_bar * theta

    def sample_noise(
        self,
        like: torch.Tensor | Sequence[int],
        timesteps: torch.Tensor | int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
    ) -> torch.Tensor:
        """Standardised Gamma noise eps = (g - k_bar_t theta_t) / sqrt(1 - alpha_bar_t) (the paper's training target).

        Mean 0, variance 1, so MONAI's `add_noise(x0, eps, t) = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps` is the
        closed form x_t = sqrt(alpha_bar_t) x0 + g - k_bar_t theta_t. `like`: a tensor (shape, dtype, device taken from
        it) or a shape (float32 on CPU unless `dtype`/`device` say otherwise).
        """
        shape, dtype, device = _shape_dtype_device(like, dtype, device)
        t = torch.as_tensor(timesteps, device=device).long()
        std = unsqueeze_right((self.k_bar * self.theta**2).to(device)[t].sqrt(), len(shape))  # = sqrt(1 - alpha_bar_t)
        return (self._centred_gamma(shape, t, generator, device) / std).to(dtype)

    def sample_prior(
        self,
        like: torch.Tensor | Sequence[int],
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
    ) -> torch.Tensor:
        """The start x_T = g - k_bar_T theta_T, g ~ Gamma(k_bar_T, scale theta_T) (variance 1 - alpha_bar_T, not 1)."""
        shape, dtype, device = _shape_dtype_device(like, dtype, device)
        return self._centred_gamma(shape, self.num_train_timesteps - 1, generator, device).to(dtype)

    def _predict_original_and_noise(
        self, model_output: torch.Tensor, timestep: torch.Tensor | int, sample: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0_hat, eps_hat) for MONAI's prediction types; x0_hat clipped when `clip_sample` (the paper: to [-1, 1])."""
        x0, eps = original_and_noise(model_output, self.alphas_cumprod[timestep], sample, self.prediction_type)
        if self.clip_sample:
            x0 = torch.clamp(x0, *self.clip_sample_values)
        return x0, eps


def _shape_dtype_device(
    like: torch.Tensor | Sequence[int], dtype: torch.dtype | None, device: str | torch.device | None
) -> tuple[torch.Size, torch.dtype, torch.device]:
    """Shape, dtype and device of `like` (a tensor or a shape: float32 on CPU), overridden by `dtype`/`device`."""
    if isinstance(like, torch.Tensor):
        return like.shape, dtype or like.dtype, torch.device(device) if device is not None else like.device
    return torch.Size(like), dtype or torch.float32, torch.device(device or "cpu")


class GammaDDPMScheduler(GammaNoiseMixin, DDPMScheduler):
    """MONAI's DDPMScheduler with Gamma noise (Nachmani et al. 2021, DDPM-type sampling; `theta_0` as in the paper).

    `variance_type` defaults to "fixed_large", the paper's sigma_t^2 = beta_t; MONAI's default "fixed_small" (the
    posterior variance (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t) and the learned variants also work.
    As in MONAI's DDPMScheduler, a step always goes from t to t - 1: sample with all T steps, or with
    GammaDDIMScheduler for fewer.
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        schedule: str = "linear_beta",
        variance_type: str = "fixed_large",
        clip_sample: bool = True,
        prediction_type: str = DDPMPredictionType.EPSILON,
        clip_sample_min: float = -1.0,
        clip_sample_max: float = 1.0,
        theta_0: float = 0.001,
        **schedule_args: Any,
    ) -> None:
        super().__init__(
            num_train_timesteps, schedule, variance_type, clip_sample, prediction_type, clip_sample_min,
            clip_sample_max, **schedule_args,
        )  # fmt: skip
        self._set_gamma_parameters(theta_0)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: torch.Tensor | int,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x_{t-1} = mu(x0_hat, x_t) + [t > 0] sigma_t z, z standardised Gamma noise at t - 1; returns x_{t-1}, x0_hat.

        mu = (sqrt(alpha_bar_{t-1}) beta_t x0_hat + sqrt(alpha_t) (1 - alpha_bar_{t-1}) x_t) / (1 - alpha_bar_t).
        """
        predicted_variance = None
        if model_output.shape[1] == sample.shape[1] * 2 and self.variance_type in ("learned", "learned_range"):
            model_output, predicted_variance = torch.split(model_output, sample.shape[1], dim=1)
        x0, _ = self._predict_original_and_noise(model_output, timestep, sample)
        prev_sample = self._get_mean(timestep, x0, sample)
        if timestep > 0:
            z = self.sample_noise(sample, timestep - 1, generator)
            prev_sample = prev_sample + self._get_variance(timestep, predicted_variance) ** 0.5 * z
        return prev_sample, x0


class GammaDDIMScheduler(GammaNoiseMixin, DDIMScheduler):
    """MONAI's DDIMScheduler with Gamma noise (Nachmani et al. 2021, DDIM-type sampling); `eta` is the default of `step`
    (MONAI's DiffusionInferer calls `step` without it).

    The step goes from t to the next entry t' of `self.timesteps` (-1 after the last), not to MONAI's
    t - T // num_inference_steps, which is off MONAI's own rounded grid (T = 1000, 50 steps: 999, 979, 958, ...;
    stride 20).
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        schedule: str = "linear_beta",
        clip_sample: bool = True,
        set_alpha_to_one: bool = True,
        steps_offset: int = 0,
        prediction_type: str = DDPMPredictionType.EPSILON,
        clip_sample_min: float = -1.0,
        clip_sample_max: float = 1.0,
        theta_0: float = 0.001,
        eta: float = 0.0,
        **schedule_args: Any,
    ) -> None:
        super().__init__(
            num_train_timesteps, schedule, clip_sample, set_alpha_to_one, steps_offset, prediction_type,
            clip_sample_min, clip_sample_max, **schedule_args,
        )  # fmt: skip
        self.eta = eta
        self._set_gamma_parameters(theta_0)
        if not set_alpha_to_one:
            self.final_alpha_cumprod = self.alphas_cumprod[0]

    def previous_timestep(self, timestep: torch.Tensor | int) -> int:
        """t': the next (smaller) entry of `self.timesteps` after `timestep`, or -1 after the last one."""
        later = self.timesteps[self.timesteps < timestep]
        return int(later[0]) if len(later) else -1

    def step(
        self,
        model_output: torch.Tensor,
        timestep: torch.Tensor | int,
        sample: torch.Tensor,
        eta: float | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x_{t'} = sqrt(alpha_bar_{t'}) x0_hat + sqrt(1 - ab_{t'} - sigma^2) eps_hat + sigma z (`ddim_update`, Song et
        al. 2021, Eq. 12 and 16), z the standardised Gamma noise at t'; returns (x_{t'}, x0_hat)."""
        eta = self.eta if eta is None else eta
        prev_timestep = self.previous_timestep(timestep)
        alpha_bar_t = self.alphas_cumprod[timestep]
        alpha_bar_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        x0, eps = self._predict_original_and_noise(model_output, timestep, sample)
        # with set_alpha_to_one=False the final t' = -1 uses alpha_bar_0, hence the noise of step 0
        prev_sample = ddim_update(x0, eps, alpha_bar_t, alpha_bar_prev, eta,
                                  lambda: self.sample_noise(sample, max(prev_timestep, 0), generator))  # fmt: skip
        return prev_sample, x0
