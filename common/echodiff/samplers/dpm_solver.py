"""DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) for the EDM ODE (alpha_t = 1, sigma_t = sigma, lambda = -log sigma)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch

from echodiff.samplers.ode import Callback, Denoiser, as_floats, bind_cond


def dpmpp_2m(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor | Sequence[float],
    *,
    cond: Any = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Lu et al. 2022, Alg. 2: data-prediction multistep, second order; NFE = N.

    x_next = (sigma_next / sigma) x - (e^{-h} - 1) D_i with h = lambda_next - lambda and
    D_i = (1 + 1/(2r)) D(x; sigma) - 1/(2r) D_prev, r = h_prev / h. The first step is first order (D_i = D(x; sigma)),
    and the step to sigma = 0 returns the denoised sample.
    """
    denoise, sigmas = bind_cond(denoise, cond), as_floats(sigmas)
    denoised_prev: torch.Tensor | None = None
    h_prev = 0.0
    for i, (sigma, sigma_next) in enumerate(pairwise(sigmas)):
        denoised = denoise(x, sigma)
        if callback is not None:
            callback(i, x, sigma, denoised)
        if sigma_next == 0:
            x = denoised
            continue
        h = math.log(sigma / sigma_next)
        if denoised_prev is None:
            denoised_d = denoised
        else:
            r = h_prev / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * denoised_prev
        x = (sigma_next / sigma) * x - math.expm1(-h) * denoised_d
        denoised_prev, h_prev = denoised, h
    return x
