"""The DDIM update (Song et al. 2021, Eq. 12 and 16), shared by `GammaDDIMScheduler.step` and `ddim_step`."""

from __future__ import annotations

from collections.abc import Callable

import torch


def ddim_update(
    x0: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_prev: float, eta: float,
    noise: Callable[[], torch.Tensor],
) -> torch.Tensor:  # fmt: skip
    """x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z, with
    sigma = eta sqrt((1 - ab_prev) / (1 - ab_t) (1 - ab_t / ab_prev)) (Eq. 16); `noise()` draws z (of the scheduler's
    kind: Gaussian, or the Gamma noise of Nachmani et al. 2021, at the timestep the step lands on) only when sigma > 0.
    """
    alpha_bar_t, alpha_bar_prev = float(alpha_bar_t), float(alpha_bar_prev)
    sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)) ** 0.5
    x_prev = alpha_bar_prev**0.5 * x0 + max(1 - alpha_bar_prev - sigma**2, 0.0) ** 0.5 * eps
    if sigma > 0:
        x_prev = x_prev + sigma * noise()
    return x_prev
