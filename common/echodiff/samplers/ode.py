"""Euler and Heun samplers of the probability-flow ODE/SDE over a denoiser D(x; sigma) (Karras et al. 2022, Alg. 1/2).

Every sampler calls `denoise(x, sigma)` with sigma a python float (float64 arithmetic whatever the dtype of x), or
`denoise(x, sigma, cond=cond)` when a condition is given; the caller passes the start x = sigmas[0] * n itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from itertools import pairwise
from typing import Any

import torch

from echodiff.rng import Generators
from echodiff.samplers.churn import ChurnSpec

Denoiser = Callable[..., torch.Tensor]
# callback(i, x_hat, sigma_hat, denoised): step i's (churned) input, its sigma and D(x_hat; sigma_hat)
Callback = Callable[[int, torch.Tensor, float, torch.Tensor], None]


def bind_cond(denoise: Denoiser, cond: Any) -> Denoiser:
    """`denoise` itself, or with the keyword `cond=cond` bound when a condition is given."""
    return denoise if cond is None else partial(denoise, cond=cond)


def as_floats(sigmas: torch.Tensor | Sequence[float]) -> list[float]:
    """The schedule as python floats, so step coefficients are float64 and x keeps its own dtype."""
    return torch.as_tensor(sigmas, dtype=torch.float64).tolist()


def to_d(x: torch.Tensor, sigma: float, denoised: torch.Tensor) -> torch.Tensor:
    """Karras et al. 2022, Eqs. 1 and 3 with sigma(t) = t: the ODE derivative dx/dsigma = (x - D(x; sigma)) / sigma."""
    return (x - denoised) / sigma


def euler(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor | Sequence[float],
    *,
    cond: Any = None,
    churn: ChurnSpec = ChurnSpec(),
    callback: Callback | None = None,
    generator: Generators = None,
) -> torch.Tensor:
    """Karras et al. 2022, Alg. 2 without the second-order correction: first-order Euler, NFE = N."""
    denoise, sigmas = bind_cond(denoise, cond), as_floats(sigmas)
    for i, (sigma, sigma_next) in enumerate(pairwise(sigmas)):
        x, sigma_hat = churn.apply(x, sigma, len(sigmas) - 1, generator)
        denoised = denoise(x, sigma_hat)
        if callback is not None:
            callback(i, x, sigma_hat, denoised)
        x = x + (sigma_next - sigma_hat) * to_d(x, sigma_hat, denoised)
    return x


def heun(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor | Sequence[float],
    *,
    cond: Any = None,
    churn: ChurnSpec = ChurnSpec(),
    callback: Callback | None = None,
    generator: Generators = None,
) -> torch.Tensor:
    """Karras et al. 2022, Alg. 1 (churn off) / Alg. 2 (churn on): second-order Heun, last step Euler, NFE = 2N - 1."""
    denoise, sigmas = bind_cond(denoise, cond), as_floats(sigmas)
    for i, (sigma, sigma_next) in enumerate(pairwise(sigmas)):
        x_hat, sigma_hat = churn.apply(x, sigma, len(sigmas) - 1, generator)
        denoised = denoise(x_hat, sigma_hat)
        if callback is not None:
            callback(i, x_hat, sigma_hat, denoised)
        d = to_d(x_hat, sigma_hat, denoised)
        x = x_hat + (sigma_next - sigma_hat) * d  # x' (Alg. 2, line 8)
        if sigma_next != 0:  # correction evaluated at (x', t_next) (Alg. 2, lines 9-11)
            d_prime = to_d(x, sigma_next, denoise(x, sigma_next))
            x = x_hat + (sigma_next - sigma_hat) * (d + d_prime) / 2
    return x
