"""The DDIM update (Song et al. 2021, Eq. 12 and 16) and (x0_hat, eps_hat) of a model output of any of MONAI's
prediction types, shared by the Gamma schedulers' steps and `ddim_step`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.networks.schedulers.ddpm import DDPMPredictionType

from echodiff.errors import ConfigKeyError


def original_and_noise(
    model_output: torch.Tensor, alpha_bar_t: torch.Tensor | float, x_t: torch.Tensor, prediction_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0_hat, eps_hat), unclipped, from a model output of `prediction_type` at a step with alpha_bar_t: the forward
    rule x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps (Ho et al. 2020, Eq. 4) solved for the one not predicted
    ("v_prediction": v = sqrt(ab_t) eps - sqrt(1 - ab_t) x_0, Salimans & Ho 2022)."""
    if prediction_type == DDPMPredictionType.EPSILON:
        eps = model_output
        return (x_t - (1 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t**0.5, eps
    if prediction_type == DDPMPredictionType.SAMPLE:
        x0 = model_output
        return x0, (x_t - alpha_bar_t**0.5 * x0) / (1 - alpha_bar_t) ** 0.5
    if prediction_type == DDPMPredictionType.V_PREDICTION:
        return (alpha_bar_t**0.5 * x_t - (1 - alpha_bar_t) ** 0.5 * model_output,
                alpha_bar_t**0.5 * model_output + (1 - alpha_bar_t) ** 0.5 * x_t)  # fmt: skip
    raise ConfigKeyError(f"unknown prediction_type {prediction_type!r}; expected epsilon, sample or v_prediction")


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
