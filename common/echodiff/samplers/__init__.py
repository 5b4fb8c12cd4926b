"""Samplers over any denoiser D(x, sigma[, cond]): Euler, Heun (Karras et al. 2022), stochastic churn, DPM-Solver++(2M).

Conditioning: bind it yourself (`functools.partial(net, label_map=y)`), or pass `cond=...` to a sampler or to
`sample`, which then calls `denoise(x, sigma, cond=cond)`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch

from echodiff import rng
from echodiff.errors import ConfigKeyError
from echodiff.rng import Generators
from echodiff.samplers.churn import ChurnSpec
from echodiff.samplers.dpm_solver import dpmpp_2m
from echodiff.samplers.ode import Callback, Denoiser, euler, heun, to_d
from echodiff.samplers.sigma_schedules import (
    SIGMA_SCHEDULES,
    get_sigmas,
    karras_sigmas,
    ve_sigmas,
    vp_sigmas,
)

SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {"euler": euler, "heun": heun, "dpmpp_2m": dpmpp_2m}

__all__ = [
    "SAMPLERS",
    "SIGMA_SCHEDULES",
    "ChurnSpec",
    "dpmpp_2m",
    "euler",
    "get_sampler",
    "get_sigmas",
    "heun",
    "karras_sigmas",
    "sample",
    "to_d",
    "ve_sigmas",
    "vp_sigmas",
]


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """The sampler function registered as `name` in SAMPLERS."""
    if name not in SAMPLERS:
        raise ConfigKeyError(f"unknown sampler {name!r}; expected one of {sorted(SAMPLERS)}")
    return SAMPLERS[name]


def sample(
    denoise: Denoiser,
    noise_or_shape: torch.Tensor | Sequence[int],
    *,
    sampler: str = "heun",
    steps: int = 18,
    schedule: str = "karras",
    churn: ChurnSpec | None = None,
    generator: Generators = None,
    cond: Any = None,
    callback: Callback | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    **schedule_kwargs: float,
) -> tuple[torch.Tensor, int]:
    """Sample from x_0 = sigma_0 n, n ~ N(0, I), with `sampler` over `get_sigmas(schedule, steps, **schedule_kwargs)`.

    `noise_or_shape` is either the unit noise n itself or the shape to draw it with (`generator`, `dtype`, `device`);
    `generator` may hold one generator per image (`echodiff.rng`), for the start noise and the churn alike.
    Returns the sample and the number of denoiser evaluations (NFE), counted call by call.
    """
    solver = get_sampler(sampler)
    sigmas = get_sigmas(schedule, steps, **schedule_kwargs)
    if isinstance(noise_or_shape, torch.Tensor):
        noise = noise_or_shape
    else:
        noise = rng.randn(noise_or_shape, generator, dtype, device)
    stochastic: dict[str, Any] = {}
    if churn is not None:
        if "churn" in inspect.signature(solver).parameters:
            stochastic = {"churn": churn, "generator": generator}
        elif churn.S_churn > 0:
            stochastic_names = sorted(k for k, f in SAMPLERS.items() if "churn" in inspect.signature(f).parameters)
            raise ValueError(f"sampler {sampler!r} has no stochastic churn; use one of {stochastic_names}")

    nfe = 0

    def counted(x: torch.Tensor, sigma: float, **kwargs: Any) -> torch.Tensor:
        nonlocal nfe
        nfe += 1
        return denoise(x, sigma, **kwargs)

    x = solver(counted, noise * float(sigmas[0]), sigmas, cond=cond, callback=callback, **stochastic)
    return x, nfe
