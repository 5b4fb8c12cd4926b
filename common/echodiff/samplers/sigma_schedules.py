"""Noise-level (sigma) schedules of Karras et al. 2022, Table 1; each ends with sigma_N = 0."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from echodiff.errors import ConfigKeyError


def _ramp(n: int) -> torch.Tensor:
    """i / (N - 1) for i = 0..N-1 in float64 (a single 0 when N = 1)."""
    if n < 1:
        raise ValueError(f"a sigma schedule needs at least 1 step, got n={n}")
    return torch.linspace(0.0, 1.0, n, dtype=torch.float64)


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022, Eq. 5: sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
    then sigma_N = 0."""
    max_inv_rho, min_inv_rho = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return _append_zero((max_inv_rho + _ramp(n) * (min_inv_rho - max_inv_rho)) ** rho)


def vp_sigma(t: Tensor | float, beta_d: float = 19.9, beta_min: float = 0.1) -> Tensor:
    """VP noise level sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1) (Karras et al. 2022, Table 1)."""
    t = torch.as_tensor(t)
    return torch.expm1(0.5 * beta_d * t**2 + beta_min * t).sqrt()


def vp_sigma_inv(sigma: Tensor | float, beta_d: float = 19.9, beta_min: float = 0.1) -> Tensor:
    """Inverse of ``vp_sigma``: t = (sqrt(beta_min^2 + 2 beta_d ln(1 + sigma^2)) - beta_min) / beta_d."""
    sigma = torch.as_tensor(sigma)
    return ((beta_min**2 + 2 * beta_d * torch.log1p(sigma**2)).sqrt() - beta_min) / beta_d


def vp_sigmas(n: int, beta_d: float = 19.9, beta_min: float = 0.1, eps_s: float = 1e-3) -> torch.Tensor:
    """Karras et al. 2022, Table 1 (VP): t_i = 1 + i/(N-1) (eps_s - 1), sigma_i = `vp_sigma(t_i)`."""
    return _append_zero(vp_sigma(1 + _ramp(n) * (eps_s - 1), beta_d, beta_min))


def ve_sigmas(n: int, sigma_min: float = 0.02, sigma_max: float = 100.0) -> torch.Tensor:
    """Karras et al. 2022, Table 1 (VE): t_i = sigma_max^2 (sigma_min^2/sigma_max^2)^(i/(N-1)), sigma(t) = sqrt(t)."""
    t = sigma_max**2 * torch.exp(_ramp(n) * math.log(sigma_min**2 / sigma_max**2))
    return _append_zero(t.sqrt())


SIGMA_SCHEDULES: dict[str, Callable[..., torch.Tensor]] = {"karras": karras_sigmas, "vp": vp_sigmas, "ve": ve_sigmas}


def get_sigmas(name: str, n: int, **kwargs: float) -> torch.Tensor:
    """The float64 schedule `name` (a key of SIGMA_SCHEDULES) with n steps: n + 1 sigmas ending in 0."""
    if name not in SIGMA_SCHEDULES:
        raise ConfigKeyError(f"unknown sigma schedule {name!r}; expected one of {sorted(SIGMA_SCHEDULES)}")
    return SIGMA_SCHEDULES[name](n, **kwargs)
