"""echodiff.schedulers: Gamma-noise DDPM/DDIM (Nachmani et al. 2021) as MONAI schedulers, and the by-name factory."""

from __future__ import annotations

import math

import pytest
import torch
from echodiff.engines import SchedulerNoisePrepareBatch
from echodiff.errors import ConfigKeyError
from echodiff.schedulers import (
    GammaDDIMScheduler,
    GammaDDPMScheduler,
    GammaNoiseMixin,
    get_noise_scheduler,
)
from monai.inferers import DiffusionInferer
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

N = 100_000


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def skewness(x: torch.Tensor) -> float:
    centred = x - x.mean()
    return ((centred**3).mean() / centred.var() ** 1.5).item()


def known_x0(shape: tuple[int, ...] = (3, 1, 4, 4)) -> torch.Tensor:
    return torch.rand(shape, generator=seeded(0), dtype=torch.float64) * 1.8 - 0.9


def exact_noise_oracle(scheduler: GammaNoiseMixin, x0: torch.Tensor):
    """eps(x_t, t) = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t), the true noise of a known x0."""

    def model(x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        alpha_bar_t = scheduler.alphas_cumprod.double()[timesteps.long()]
        return (x - alpha_bar_t.sqrt() * x0) / (1 - alpha_bar_t).sqrt()

    return model


def test_alpha_bar_matches_monai_schedulers_to_float32_rounding() -> None:
    for gamma, gaussian in [(GammaDDPMScheduler(), DDPMScheduler()), (GammaDDIMScheduler(), DDIMScheduler())]:
        assert gamma.alphas_cumprod.dtype == torch.float64
        torch.testing.assert_close(gamma.alphas_cumprod.float(), gaussian.alphas_cumprod)
        torch.testing.assert_close(gamma.betas, gaussian.betas, rtol=0, atol=0)


def test_gamma_parameters_follow_the_paper_and_give_variance_one_minus_alpha_bar() -> None:
    scheduler = GammaDDPMScheduler(theta_0=0.001)
    betas = scheduler.betas.double()
    alpha_bar = torch.cumprod(1 - betas, 0)
    t = 123  # MONAI index: the paper's sums run over i <= t
    k_bar_t = sum(betas[i].item() / (alpha_bar[i].item() * 0.001**2) for i in range(t + 1))
    assert scheduler.k_bar[t].item() == pytest.approx(k_bar_t, rel=1e-12)
    assert scheduler.theta[t].item() == pytest.approx(math.sqrt(alpha_bar[t].item()) * 0.001, rel=1e-12)
    torch.testing.assert_close(scheduler.k_bar * scheduler.theta**2, 1 - alpha_bar, rtol=1e-10, atol=0)


@pytest.mark.parametrize("t", [0, 10, 500, 999])
def test_added_noise_has_mean_zero_and_variance_one_minus_alpha_bar(t: int) -> None:
    scheduler = GammaDDPMScheduler()
    x0 = torch.zeros(N, dtype=torch.float64)
    eps = scheduler.sample_noise(x0, t, seeded(t))
    noise = scheduler.add_noise(x0, eps, torch.tensor(t))  # x_t - sqrt(alpha_bar_t) x0 with x0 = 0
    variance = 1 - scheduler.alphas_cumprod[t].item()
    assert abs(noise.mean().item()) < 5 * math.sqrt(variance / N)
    assert noise.var().item() == pytest.approx(variance, rel=5 * math.sqrt(2 / N) * 1.1)


def test_gamma_noise_is_skewed_at_small_t_and_near_gaussian_at_large_t() -> None:
    """Standardised Gamma(k_bar_t) has skewness 2 / sqrt(k_bar_t): 0.2 at t = 0 (theta_0 = 0.001), ~0 at t = T - 1."""
    scheduler = GammaDDPMScheduler()
    small_t = skewness(scheduler.sample_noise((N,), 0, seeded(1), dtype=torch.float64))
    assert small_t == pytest.approx(2 / math.sqrt(scheduler.k_bar[0].item()), abs=5 * math.sqrt(6 / N))
    assert small_t > 0.15
    assert abs(skewness(scheduler.sample_noise((N,), 999, seeded(2), dtype=torch.float64))) < 5 * math.sqrt(6 / N)


def test_prior_is_centred_gamma_of_the_last_step() -> None:
    scheduler = GammaDDPMScheduler()
    x_T = scheduler.sample_prior((N,), seeded(3), dtype=torch.float64)
    assert abs(x_T.mean().item()) < 5 / math.sqrt(N)
    assert x_T.var().item() == pytest.approx(1 - scheduler.alphas_cumprod[-1].item(), rel=0.025)


def test_ddim_eta0_with_the_true_noise_returns_x0_in_one_jump() -> None:
    scheduler = GammaDDIMScheduler()
    scheduler.set_timesteps(1)
    x0, t = known_x0(), torch.tensor(700)
    eps = scheduler.sample_noise(x0, t, seeded(4))
    prev_sample, pred_original_sample = scheduler.step(eps, t, scheduler.add_noise(x0, eps, t))
    torch.testing.assert_close(pred_original_sample, x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(prev_sample, x0, rtol=0, atol=1e-12)


def test_ddim_step_lands_on_the_next_listed_timestep() -> None:
    scheduler = GammaDDIMScheduler()
    scheduler.set_timesteps(50)  # 999, 979, 958, ...: not a fixed stride of T // 50 = 20
    x0, t, t_next = known_x0(), scheduler.timesteps[1], scheduler.timesteps[2]
    eps = scheduler.sample_noise(x0, t, seeded(5))
    prev_sample, _ = scheduler.step(eps, t, scheduler.add_noise(x0, eps, t))
    torch.testing.assert_close(prev_sample, scheduler.add_noise(x0, eps, t_next))


def test_ddim_eta1_step_keeps_the_marginal_variance() -> None:
    """x_{t'} = c2 eps + c1 z with independent unit eps, z: variance c1^2 + c2^2 = 1 - alpha_bar_{t'}."""
    scheduler = GammaDDIMScheduler(eta=1.0, clip_sample=False)
    scheduler.set_timesteps(10)
    t = scheduler.timesteps[4]
    x0 = torch.zeros(N, 1, dtype=torch.float64)
    eps = scheduler.sample_noise(x0, t, seeded(6))
    prev_sample, _ = scheduler.step(eps, t, scheduler.add_noise(x0, eps, t), generator=seeded(7))
    expected = 1 - scheduler.alphas_cumprod[scheduler.previous_timestep(t)].item()
    assert prev_sample.var().item() == pytest.approx(expected, rel=0.03)


def test_ddpm_step_predicts_x0_from_the_true_noise() -> None:
    scheduler = GammaDDPMScheduler()
    x0, t = known_x0(), torch.tensor(350)
    eps = scheduler.sample_noise(x0, t, seeded(8))
    _, pred_original_sample = scheduler.step(eps, t, scheduler.add_noise(x0, eps, t), seeded(9))
    torch.testing.assert_close(pred_original_sample, x0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("variance_type", ["fixed_large", "fixed_small"])
def test_ddpm_step_adds_gamma_noise_of_step_t_minus_1(variance_type: str) -> None:
    """x_{t-1} - mu = sigma_t z, z ~ standardised Gamma(k_bar_{t-1}) (skewness 2/sqrt(k_bar_{t-1})); sigma_t^2 = beta_t
    (the paper, "fixed_large") or the posterior variance (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
    ("fixed_small")."""
    scheduler = GammaDDPMScheduler(variance_type=variance_type)
    x0, t = torch.full((N, 1), 0.3, dtype=torch.float64), 1
    eps = scheduler.sample_noise(x0, t, seeded(10))
    x_t = scheduler.add_noise(x0, eps, torch.tensor(t))
    prev_sample, _ = scheduler.step(eps, t, x_t, seeded(11))
    ab, ab_prev = scheduler.alphas_cumprod[t].item(), scheduler.alphas_cumprod[t - 1].item()
    beta = scheduler.betas[t].item()
    mu = (math.sqrt(ab_prev) * beta * x0 + math.sqrt(1 - beta) * (1 - ab_prev) * x_t) / (1 - ab)
    variance = beta if variance_type == "fixed_large" else (1 - ab_prev) / (1 - ab) * beta
    residual = (prev_sample - mu) / math.sqrt(variance)
    assert abs(residual.mean().item()) < 5 / math.sqrt(N)
    assert residual.var().item() == pytest.approx(1.0, rel=0.025)
    assert skewness(residual) == pytest.approx(2 / math.sqrt(scheduler.k_bar[t - 1].item()), abs=0.04)


@pytest.mark.parametrize("scheduler", [GammaDDPMScheduler(), GammaDDIMScheduler(eta=1.0)], ids=["ddpm", "ddim"])
def test_monai_inferer_loop_with_the_exact_noise_oracle_ends_at_x0(scheduler: GammaNoiseMixin) -> None:
    scheduler.set_timesteps(20)
    x0 = known_x0()
    torch.manual_seed(12)
    x_T = scheduler.sample_prior(x0)
    sample = DiffusionInferer(scheduler).sample(x_T, exact_noise_oracle(scheduler, x0), verbose=False)
    torch.testing.assert_close(sample, x0, rtol=0, atol=1e-8)


def test_seeded_noise_and_steps_reproduce_and_leave_the_global_rng_alone() -> None:
    scheduler = GammaDDPMScheduler()
    x0 = known_x0()
    state = torch.get_rng_state()
    first = scheduler.sample_noise(x0, torch.tensor([5, 50, 500]), seeded(13))
    assert torch.equal(first, scheduler.sample_noise(x0, torch.tensor([5, 50, 500]), seeded(13)))
    assert not torch.equal(first, scheduler.sample_noise(x0, torch.tensor([5, 50, 500]), seeded(14)))
    assert torch.equal(scheduler.step(x0, 10, x0, seeded(15))[0], scheduler.step(x0, 10, x0, seeded(15))[0])
    assert torch.equal(torch.get_rng_state(), state)


def test_prepare_batch_draws_noise_for_each_item_s_own_timestep() -> None:
    """With theta_0 = 1 the standardised Gamma(k_bar_t) has k_bar_t < 1, so nearly all mass sits at its lower bound
    -sqrt(k_bar_t): each item's minimum pins down the timestep its noise was drawn for."""
    scheduler = GammaDDPMScheduler(num_train_timesteps=10, theta_0=1.0)
    images = torch.zeros(16, 1, 32, 32, dtype=torch.float64)
    torch.manual_seed(16)
    inputs, target, args, kwargs = SchedulerNoisePrepareBatch(scheduler)({"image": images})
    noise, timesteps = kwargs["noise"], kwargs["timesteps"]
    assert torch.equal(inputs, images) and args == () and torch.equal(target, noise) and timesteps.shape == (16,)
    assert len(timesteps.unique()) > 1
    lower_bound = -scheduler.k_bar[timesteps].sqrt()
    torch.testing.assert_close(noise.amin(dim=(1, 2, 3)), lower_bound, rtol=1e-6, atol=0)


def test_factory_builds_schedulers_by_name() -> None:
    assert type(get_noise_scheduler("gaussian", "ddim")) is DDIMScheduler
    scheduler = get_noise_scheduler("gamma", "ddim", num_train_timesteps=100, theta_0=0.01, eta=0.5)
    assert isinstance(scheduler, GammaDDIMScheduler) and scheduler.eta == 0.5 and scheduler.num_train_timesteps == 100


def test_factory_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(ConfigKeyError, match="gamma.*gaussian"):
        get_noise_scheduler("poisson", "ddpm")
    with pytest.raises(ConfigKeyError, match="ddim.*ddpm"):
        get_noise_scheduler("gamma", "pndm")


def test_prepare_batch_with_a_gaussian_scheduler_draws_standard_normal_noise_and_passes_the_condition() -> None:
    images = torch.zeros(8, 1, 32, 32)
    condition = torch.ones(8, 2, 32, 32)
    torch.manual_seed(17)
    inputs, target, _, kwargs = SchedulerNoisePrepareBatch(DDPMScheduler(num_train_timesteps=10), "cond")(
        {"image": images, "cond": condition}
    )
    noise = kwargs["noise"]
    assert torch.equal(target, noise) and torch.equal(kwargs["condition"], condition)
    assert abs(noise.mean().item()) < 0.05 and abs(noise.std().item() - 1) < 0.05
    assert abs(float(((noise - noise.mean()) ** 3).mean() / noise.std() ** 3)) < 0.1  # symmetric, unlike Gamma noise
