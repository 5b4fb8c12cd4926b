"""Discrete-time sampling shared by every DDPM-type model (PD-DDPM, SDM): noise of the scheduler's kind, DDIM steps on an
arbitrary timestep grid (MONAI's `DDIMScheduler.step` assumes a fixed stride from T), and the one reverse-diffusion
loop. The training batches that draw that noise are in `echodiff.engines.diffusion_batches`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.networks.schedulers import Scheduler
from tqdm import tqdm

from echodiff.errors import ConfigKeyError
from echodiff.rng import Generators, is_per_sample, per_sample
from echodiff.schedulers.ddim import ddim_update, original_and_noise
from echodiff.schedulers.gamma import GammaNoiseMixin


def scheduler_noise(
    scheduler: Scheduler, like: torch.Tensor, timesteps: torch.Tensor | int, generator: Generators = None
) -> torch.Tensor:
    """eps for `scheduler.add_noise(x_0, eps, timesteps)`, shaped like `like`: the standardised Gamma noise of the Gamma
    schedulers (Nachmani et al. 2021), N(0, I) otherwise (Ho et al. 2020, Eq. 4). `generator`: see `echodiff.rng`."""
    if is_per_sample(generator):
        t = torch.as_tensor(timesteps)
        return per_sample(lambda b, g: scheduler_noise(scheduler, like[b : b + 1], t if t.ndim == 0 else t[b : b + 1], g),
                          generator, like.shape[0])
    if isinstance(scheduler, GammaNoiseMixin):
        return scheduler.sample_noise(like, timesteps, generator)
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def scheduler_prior(scheduler: Scheduler, like: torch.Tensor, generator: Generators = None) -> torch.Tensor:
    """x_T, the pure-noise start of plain DDPM: the Gamma schedulers' prior, N(0, I) otherwise."""
    if is_per_sample(generator):
        return per_sample(lambda b, g: scheduler_prior(scheduler, like[b : b + 1], g), generator, like.shape[0])
    if isinstance(scheduler, GammaNoiseMixin):
        return scheduler.sample_prior(like, generator)
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def scheduler_step(
    scheduler: Scheduler, model_output: torch.Tensor, t: int, x_t: torch.Tensor, generator: Generators = None
) -> torch.Tensor:
    """`scheduler.step(model_output, t, x_t, generator)[0]` (a DDPM step, Ho et al. 2020, Alg. 2), also with one
    generator per batch item (`echodiff.rng`): then item by item, exactly as for batches of one; the network call stays
    batched."""
    if is_per_sample(generator):
        return per_sample(lambda b, g: scheduler.step(model_output[b : b + 1], t, x_t[b : b + 1], generator=g)[0],
                          generator, x_t.shape[0])
    return scheduler.step(model_output, t, x_t, generator=generator)[0]


def ddim_timesteps(t_prime: int, steps: int) -> list[int]:
    """`steps` timesteps evenly spaced from t_prime - 1 down to 0: MONAI's `set_timesteps` grid, started at T'."""
    return torch.linspace(t_prime - 1, 0, steps).round().long().tolist()


def ddim_step(
    scheduler: Scheduler,
    model_output: torch.Tensor,
    t: int,
    t_prev: int,
    x_t: torch.Tensor,
    eta: float = 0.0,
    generator: Generators = None,
) -> torch.Tensor:
    """One DDIM step t -> t_prev (Song et al. 2021, Eq. 12) on the scheduler's alpha_bar; alpha_bar = 1 at t_prev = -1.

    x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps + sigma z,
    sigma = eta sqrt((1 - ab_prev) / (1 - ab_t) (1 - ab_t / ab_prev)) (Eq. 16), (x0_hat, eps) from the model output of
    the scheduler's `prediction_type` (`original_and_noise`), x0_hat clipped when the scheduler clips.
    MONAI's `DDIMScheduler.step` cannot take this grid: it derives t_prev = t - T // num_inference_steps.
    """
    alpha_bar_t = float(scheduler.alphas_cumprod[t])
    alpha_bar_prev = float(scheduler.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0
    x0, eps = original_and_noise(model_output, alpha_bar_t, x_t, scheduler.prediction_type)
    if scheduler.clip_sample:
        x0 = x0.clamp(*scheduler.clip_sample_values)
    return ddim_update(x0, eps, alpha_bar_t, alpha_bar_prev, eta,
                       lambda: scheduler_noise(scheduler, x_t, t_prev, generator))  # fmt: skip


STEP_RULES = ("ddpm", "ddim")


def reverse_grid(t_start: int, step_rule: str, steps: int | None = None) -> list[tuple[int, int]]:
    """(t, t_prev) MONAI timesteps of a reverse process from t_start - 1 down to 0 (t_prev = -1 after the last):
    every timestep ("ddpm") or `steps` of them (`ddim_timesteps`, "ddim")."""
    if step_rule not in STEP_RULES:
        raise ConfigKeyError(f"unknown step rule {step_rule!r}; expected one of {', '.join(STEP_RULES)}")
    grid = list(range(t_start - 1, -1, -1)) if step_rule == "ddpm" else ddim_timesteps(t_start, int(steps or t_start))
    return list(zip(grid, [*grid[1:], -1]))


def reverse_diffusion(
    scheduler: Scheduler,
    x: torch.Tensor,
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    grid: Sequence[tuple[int, int]],
    step_rule: str,
    eta: float = 0.0,
    generator: Generators = None,
    callback: Callable[[int, torch.Tensor, float, torch.Tensor], None] | None = None,
    progress: str | None = None,
) -> torch.Tensor:
    """The reverse process of every DDPM-type model (SDM, PD-DDPM) over `grid` (`reverse_grid`): `predict(x,
    timesteps)`, the model output of the scheduler's `prediction_type` (eps for the papers' models), then a DDPM step
    (Ho et al. 2020, Alg. 2, `scheduler_step`) or a DDIM step (Song et al. 2021, Eq. 12, `ddim_step` with `eta`).
    x keeps its dtype (Gamma steps compute in float64). `progress`: a tqdm label, or None."""
    dtype = x.dtype
    for i, (t, t_prev) in enumerate(tqdm(grid, desc=progress, disable=progress is None)):
        output = predict(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)).to(dtype)
        if callback is not None:
            callback(i, x, float(t), output)
        if step_rule == "ddpm":
            x = scheduler_step(scheduler, output, t, x, generator).to(dtype)
        else:
            x = ddim_step(scheduler, output, t, t_prev, x, eta, generator).to(dtype)
    return x
