"""Noise schedulers chosen by name: MONAI's Gaussian DDPM/DDIM and their Gamma-noise versions (Nachmani et al. 2021)."""

from __future__ import annotations

from typing import Any

from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, Scheduler
from monai.networks.schedulers.scheduler import NoiseSchedules

from echodiff.errors import ConfigKeyError
from echodiff.schedulers.gamma import (
    GammaDDIMScheduler,
    GammaDDPMScheduler,
    GammaNoiseMixin,
    sample_gamma,
)
from echodiff.schedulers.sampling import (
    ddim_step,
    ddim_timesteps,
    scheduler_noise,
    scheduler_prior,
    scheduler_step,
)

NOISE_SCHEDULERS: dict[str, dict[str, type[Scheduler]]] = {
    "gaussian": {"ddpm": DDPMScheduler, "ddim": DDIMScheduler},
    "gamma": {"ddpm": GammaDDPMScheduler, "ddim": GammaDDIMScheduler},
}

__all__ = [
    "NOISE_SCHEDULERS",
    "GammaDDIMScheduler",
    "GammaDDPMScheduler",
    "GammaNoiseMixin",
    "ddim_step",
    "ddim_timesteps",
    "get_noise_scheduler",
    "sample_gamma",
    "scheduler_noise",
    "scheduler_prior",
    "scheduler_step",
]


def get_noise_scheduler(kind: str = "gaussian", type: str = "ddpm", **kwargs: Any) -> Scheduler:  # noqa: A002
    """The scheduler NOISE_SCHEDULERS[kind][type] built with `kwargs` (e.g. kind="gamma", type="ddim", eta=0.0;
    schedule="cosine", Nichol & Dhariwal 2021, the one of Guo et al. 2022)."""
    if kind not in NOISE_SCHEDULERS:
        raise ConfigKeyError(f"unknown noise kind {kind!r}; expected one of {sorted(NOISE_SCHEDULERS)}")
    if type not in NOISE_SCHEDULERS[kind]:
        raise ConfigKeyError(f"unknown scheduler type {type!r}; expected one of {sorted(NOISE_SCHEDULERS[kind])}")
    if "schedule" in kwargs and kwargs["schedule"] not in NoiseSchedules.names:
        raise ConfigKeyError(
            f"unknown noise schedule {kwargs['schedule']!r}; expected one of {list(NoiseSchedules.names)}"
        )
    return NOISE_SCHEDULERS[kind][type](**kwargs)
