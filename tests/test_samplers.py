"""echodiff.samplers: Euler, Heun, churn and DPM-Solver++(2M) checked against Gaussian data, where everything is exact.

For x0 ~ N(mu, s^2) per dimension, the ideal denoiser is D(x; sigma) = mu + s^2 / (s^2 + sigma^2) (x - mu) and the
probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma has the solution
x(sigma) = mu + (x_T - mu) sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_max^2).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from echodiff.errors import ConfigKeyError
from echodiff.samplers import ChurnSpec, dpmpp_2m, euler, heun, karras_sigmas, sample

MU = torch.tensor([0.5, -0.25, 1.0], dtype=torch.float64)
S = torch.tensor([0.5, 1.0, 0.25], dtype=torch.float64)
SIGMA_MAX = 80.0
N_SAMPLES = 20_000


def gaussian_denoiser(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The exact D(x; sigma) = E[x0 | x0 + sigma n = x] for x0 ~ N(MU, S^2)."""
    return MU + S**2 / (S**2 + sigma**2) * (x - MU)


def exact_ode_solution(x_T: torch.Tensor, sigma: float) -> torch.Tensor:
    return MU + (x_T - MU) * torch.sqrt(S**2 + sigma**2) / torch.sqrt(S**2 + SIGMA_MAX**2)


def fixed_start(n: int = 64) -> torch.Tensor:
    return SIGMA_MAX * torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def assert_data_moments(x: torch.Tensor, variance_rtol: float) -> None:
    """Mean within 5 standard errors plus the known prior mismatch |mu| s / sigma_max (x_T ~ N(0, sigma_max^2),
    not N(mu, s^2 + sigma_max^2)); variance within `variance_rtol` (5 standard errors are 5 %)."""
    mean_tol = 5 * S / math.sqrt(len(x)) + MU.abs() * S / SIGMA_MAX
    assert bool(((x.mean(0) - MU).abs() < mean_tol).all()), (x.mean(0), MU)
    torch.testing.assert_close(x.var(0), S**2, rtol=variance_rtol, atol=0)


def test_gaussian_ode_closed_form_solves_the_probability_flow_ode() -> None:
    x_T = fixed_start(4)
    for sigma in (0.1, 0.7, 5.0, 40.0):
        h = 1e-5 * sigma
        dx_dsigma = (exact_ode_solution(x_T, sigma + h) - exact_ode_solution(x_T, sigma - h)) / (2 * h)
        x = exact_ode_solution(x_T, sigma)
        torch.testing.assert_close(dx_dsigma, (x - gaussian_denoiser(x, sigma)) / sigma, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(exact_ode_solution(x_T, SIGMA_MAX), x_T)


@pytest.mark.parametrize(("sampler", "steps"), [("euler", 250), ("heun", 64), ("dpmpp_2m", 64)])
def test_deterministic_sampler_reproduces_data_mean_and_variance(sampler: str, steps: int) -> None:
    x, _ = sample(
        gaussian_denoiser, (N_SAMPLES, 3), sampler=sampler, steps=steps, sigma_max=SIGMA_MAX,
        generator=torch.Generator().manual_seed(1), dtype=torch.float64,
    )  # fmt: skip
    assert_data_moments(x, variance_rtol=0.06)


def test_stochastic_heun_with_paper_churn_reproduces_data_mean_and_variance() -> None:
    """S_noise = 1.003 slightly inflates the variance of the exact denoiser's samples (about 2 % here)."""
    x, nfe = sample(
        gaussian_denoiser, (N_SAMPLES, 3), sampler="heun", steps=128, churn=ChurnSpec.paper_defaults(),
        sigma_max=SIGMA_MAX, generator=torch.Generator().manual_seed(2), dtype=torch.float64,
    )  # fmt: skip
    assert nfe == 2 * 128 - 1
    assert_data_moments(x, variance_rtol=0.08)


def error_ratio_per_step_doubling(sampler: Any, steps: int) -> float:
    x_T = fixed_start()
    exact = exact_ode_solution(x_T, 0.0)
    coarse = (sampler(gaussian_denoiser, x_T, karras_sigmas(steps)) - exact).abs().max()
    fine = (sampler(gaussian_denoiser, x_T, karras_sigmas(2 * steps)) - exact).abs().max()
    return (coarse / fine).item()


def test_euler_error_halves_per_step_doubling() -> None:
    assert 1.8 < error_ratio_per_step_doubling(euler, 64) < 2.2


def test_heun_error_shrinks_fourfold_per_step_doubling() -> None:
    assert 3.5 < error_ratio_per_step_doubling(heun, 64) < 4.6


def test_dpmpp_2m_error_shrinks_fourfold_per_step_doubling() -> None:
    assert 3.5 < error_ratio_per_step_doubling(dpmpp_2m, 64) < 4.6


@pytest.mark.parametrize(("sampler", "expected_nfe"), [("euler", 7), ("heun", 13), ("dpmpp_2m", 7)])
def test_sample_counts_every_denoiser_call(sampler: str, expected_nfe: int) -> None:
    _, nfe = sample(gaussian_denoiser, (2, 3), sampler=sampler, steps=7, dtype=torch.float64)
    assert nfe == expected_nfe


def test_heun_second_evaluation_is_at_x_prime_and_t_next() -> None:
    """Karras Alg. 2, lines 8-10: d' = (x' - D(x'; t_next)) / t_next with x' = x_hat + (t_next - t_hat) d."""
    calls: list[tuple[torch.Tensor, float]] = []

    def recording_denoiser(x: torch.Tensor, sigma: float) -> torch.Tensor:
        calls.append((x.clone(), sigma))
        return 0.5 * x

    sigmas = karras_sigmas(3)
    churn = ChurnSpec(S_churn=1.0)  # gamma = 1/3, so t_hat != t and x_hat != x
    heun(recording_denoiser, fixed_start(2), sigmas, churn=churn, generator=torch.Generator().manual_seed(3))
    assert len(calls) == 5
    for i in range(2):
        (x_hat, sigma_hat), (x_prime, sigma_prime) = calls[2 * i], calls[2 * i + 1]
        sigma_next = sigmas[i + 1].item()
        assert sigma_hat == pytest.approx(sigmas[i].item() * (1 + 1 / 3))
        assert sigma_prime == sigma_next
        d = (x_hat - 0.5 * x_hat) / sigma_hat
        torch.testing.assert_close(x_prime, x_hat + (sigma_next - sigma_hat) * d)


def test_dpmpp_2m_last_step_returns_the_denoised_sample() -> None:
    denoised: list[torch.Tensor] = []
    x = dpmpp_2m(gaussian_denoiser, fixed_start(4), karras_sigmas(5), callback=lambda i, x, s, d: denoised.append(d))
    assert len(denoised) == 5
    torch.testing.assert_close(x, denoised[-1], rtol=0, atol=0)


def test_churn_gamma_is_capped_and_zero_outside_s_min_s_max() -> None:
    churn = ChurnSpec.paper_defaults()
    assert churn.gamma(1.0, n_steps=10) == pytest.approx(math.sqrt(2) - 1)
    assert churn.gamma(1.0, n_steps=200) == pytest.approx(40 / 200)
    assert churn.gamma(0.01, n_steps=200) == 0.0
    assert churn.gamma(150.0, n_steps=200) == 0.0


def test_churn_adds_noise_of_variance_sigma_hat_squared_minus_sigma_squared() -> None:
    churn, sigma = ChurnSpec(S_churn=40.0, S_noise=1.003), 2.0
    x = torch.zeros(200_000, dtype=torch.float64)
    x_hat, sigma_hat = churn.apply(x, sigma, 100, torch.Generator().manual_seed(4))
    assert sigma_hat == pytest.approx(sigma * 1.4)
    expected_std = math.sqrt(sigma_hat**2 - sigma**2) * 1.003
    assert x_hat.std().item() == pytest.approx(expected_std, rel=0.01)


def test_deterministic_samplers_draw_no_random_numbers() -> None:
    generator = torch.Generator().manual_seed(5)
    state = generator.get_state()
    heun(gaussian_denoiser, fixed_start(2), karras_sigmas(4), generator=generator)
    assert torch.equal(generator.get_state(), state)


def test_seeded_stochastic_sampling_is_reproducible() -> None:
    def run() -> torch.Tensor:
        x, _ = sample(
            gaussian_denoiser, (4, 3), steps=6, churn=ChurnSpec.paper_defaults(),
            generator=torch.Generator().manual_seed(6), dtype=torch.float64,
        )  # fmt: skip
        return x

    torch.testing.assert_close(run(), run(), rtol=0, atol=0)


@pytest.mark.parametrize("sampler", [euler, heun, dpmpp_2m])
def test_float32_sample_stays_float32_and_matches_float64(sampler: Any) -> None:
    x_T = fixed_start(8)

    def denoiser32(x: torch.Tensor, sigma: float) -> torch.Tensor:
        return gaussian_denoiser(x, sigma).to(x.dtype)

    x32 = sampler(denoiser32, x_T.float(), karras_sigmas(10))
    assert x32.dtype == torch.float32
    torch.testing.assert_close(x32.double(), sampler(gaussian_denoiser, x_T, karras_sigmas(10)), rtol=1e-4, atol=1e-4)


def test_cond_is_passed_to_the_denoiser_as_a_keyword() -> None:
    seen: list[Any] = []

    def conditional_denoiser(x: torch.Tensor, sigma: float, cond: Any) -> torch.Tensor:
        seen.append(cond)
        return gaussian_denoiser(x, sigma)

    _, nfe = sample(conditional_denoiser, (2, 3), sampler="heun", steps=3, cond="label map", dtype=torch.float64)
    assert seen == ["label map"] * nfe


def test_unknown_sampler_name_lists_the_known_names() -> None:
    with pytest.raises(ConfigKeyError, match="dpmpp_2m.*euler.*heun"):
        sample(gaussian_denoiser, (2, 3), sampler="ddim")


def test_churn_with_a_sampler_without_churn_is_rejected() -> None:
    with pytest.raises(ValueError, match="no stochastic churn.*euler.*heun"):
        sample(gaussian_denoiser, (2, 3), sampler="dpmpp_2m", churn=ChurnSpec.paper_defaults())
