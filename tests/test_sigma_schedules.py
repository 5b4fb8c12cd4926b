"""echodiff.samplers.sigma_schedules: Karras Eq. 5 and the VP / VE schedules of Karras et al. 2022, Table 1."""

from __future__ import annotations

import math

import pytest
import torch
from echodiff.errors import ConfigKeyError
from echodiff.samplers import SIGMA_SCHEDULES, get_sigmas, karras_sigmas, ve_sigmas, vp_sigmas


@pytest.mark.parametrize("name", sorted(SIGMA_SCHEDULES))
@pytest.mark.parametrize("n", [1, 2, 5, 18])
def test_schedule_is_float64_length_n_plus_one_strictly_decreasing_to_zero(name: str, n: int) -> None:
    sigmas = get_sigmas(name, n)
    assert sigmas.dtype == torch.float64 and sigmas.shape == (n + 1,)
    assert sigmas[-1] == 0
    assert bool((sigmas[1:] < sigmas[:-1]).all())


def test_karras_endpoints_are_sigma_max_and_sigma_min() -> None:
    sigmas = karras_sigmas(10, sigma_min=0.01, sigma_max=50.0, rho=5.0)
    assert sigmas[0].item() == pytest.approx(50.0, rel=1e-12)
    assert sigmas[-2].item() == pytest.approx(0.01, rel=1e-12)


def test_karras_matches_eq5_at_an_interior_step() -> None:
    n, i, sigma_min, sigma_max, rho = 7, 3, 0.002, 80.0, 7.0
    expected = (sigma_max ** (1 / rho) + i / (n - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    assert karras_sigmas(n)[i].item() == pytest.approx(expected, rel=1e-12)


def test_vp_matches_table1_sigma_of_t() -> None:
    beta_d, beta_min, eps_s, n = 19.9, 0.1, 1e-3, 5
    sigmas = vp_sigmas(n)
    for i in range(n):
        t = 1 + i / (n - 1) * (eps_s - 1)
        assert sigmas[i].item() == pytest.approx(math.sqrt(math.exp(0.5 * beta_d * t**2 + beta_min * t) - 1), rel=1e-12)


def test_ve_is_geometric_from_sigma_max_to_sigma_min() -> None:
    sigmas = ve_sigmas(5, sigma_min=0.02, sigma_max=100.0)
    assert sigmas[0].item() == pytest.approx(100.0, rel=1e-12)
    assert sigmas[-2].item() == pytest.approx(0.02, rel=1e-12)
    ratios = sigmas[1:-1] / sigmas[:-2]
    torch.testing.assert_close(ratios, torch.full_like(ratios, (0.02 / 100.0) ** 0.25))


def test_unknown_schedule_name_lists_the_known_names() -> None:
    with pytest.raises(ConfigKeyError, match="karras.*ve.*vp"):
        get_sigmas("cosine", 10)


def test_zero_steps_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 1 step"):
        karras_sigmas(0)
