"""Tests that pin formulas exactly, so a one-line change of a coefficient, a noise family or a timestep fails.

Each test compares the library with a plain re-derivation from the paper on tiny inputs with fixed seeds. The
mutations they are meant to catch are listed in `scripts/mutation_check.py`, which reruns them.
"""

from __future__ import annotations

import math

import pytest
import torch
from echodiff.inferers import PDDPMInferer
from echodiff.losses import GammaVAELoss
from echodiff.networks import GammaVAE
from echodiff.samplers import ChurnSpec
from echodiff.samplers.dpm_solver import dpmpp_2m
from echodiff.samplers.ode import euler
from echodiff.samplers.sigma_schedules import karras_sigmas
from echodiff.errors import ConfigKeyError
from echodiff.schedulers import GammaDDIMScheduler, GammaDDPMScheduler, ddim_step, get_noise_scheduler

SIGMA_DATA = 0.5


def gaussian_denoiser(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The exact denoiser E[x0 | x] for x0 ~ N(0, SIGMA_DATA^2): x SIGMA_DATA^2 / (SIGMA_DATA^2 + sigma^2)."""
    return x * SIGMA_DATA**2 / (SIGMA_DATA**2 + sigma**2)


def test_dpmpp_2m_matches_lu_et_al_alg2_step_by_step_on_a_non_uniform_grid() -> None:
    """Lu et al. 2022, Alg. 2 with alpha = 1, lambda = -log sigma, written out for scalars: the step-size ratio r must be
    h_{i-1} / h_i (the Karras grid makes consecutive h differ, so r = 1 or 1 / r change the result)."""
    sigmas = karras_sigmas(5, sigma_min=0.002, sigma_max=80.0).tolist()
    x0 = 80.0
    x, d_prev, h_prev = x0, None, None
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        d = gaussian_denoiser(torch.tensor(x, dtype=torch.float64), sigma).item()
        if sigma_next == 0:
            x = d
            break
        h = math.log(sigma) - math.log(sigma_next)
        d_used = d if d_prev is None else d + (d - d_prev) * h / (2 * h_prev)  # (1 + 1/2r) D - 1/2r D_prev, r = h_prev/h
        x = sigma_next / sigma * x + (1 - math.exp(-h)) * d_used
        d_prev, h_prev = d, h
    got = dpmpp_2m(gaussian_denoiser, torch.tensor([x0], dtype=torch.float64), sigmas)
    assert got.item() == pytest.approx(x, rel=1e-12)
    steps = [math.log(a / b) for a, b in zip(sigmas[:-2], sigmas[1:-1], strict=True)]
    assert min(abs(h1 / h0 - 1) for h0, h1 in zip(steps, steps[1:])) > 0.05  # r != 1 on this grid


def test_euler_with_churn_steps_from_sigma_hat_with_s_noise() -> None:
    """Karras et al. 2022, Alg. 2 (first order): x_hat = x + sqrt(sigma_hat^2 - sigma^2) S_noise n, then
    x_next = x_hat + (sigma_next - sigma_hat) (x_hat - D(x_hat; sigma_hat)) / sigma_hat."""
    churn = ChurnSpec(S_churn=1.0, S_min=0.0, S_max=100.0, S_noise=1.003)
    sigmas = [2.0, 1.0]  # one step, gamma = min(S_churn / N, sqrt 2 - 1) = sqrt 2 - 1
    x = torch.full((4,), 1.5, dtype=torch.float64)
    got = euler(gaussian_denoiser, x.clone(), sigmas, churn=churn, generator=torch.Generator().manual_seed(0))
    n = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma_hat = 2.0 * math.sqrt(2)
    x_hat = x + math.sqrt(sigma_hat**2 - 4.0) * 1.003 * n
    expected = x_hat + (1.0 - sigma_hat) * (x_hat - gaussian_denoiser(x_hat, sigma_hat)) / sigma_hat
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def _gamma_scheduler(kind: type) -> GammaDDPMScheduler | GammaDDIMScheduler:
    # theta_0 = 1 keeps k_bar small, so Gamma noise is visibly skewed (skewness 2 / sqrt(k_bar_t))
    return kind(num_train_timesteps=20, schedule="linear_beta", theta_0=1.0, clip_sample=False)


def test_ddim_step_with_eta_draws_the_schedulers_gamma_noise_at_t_prev() -> None:
    """Song et al. 2021, Eq. 12 and 16 on the Gamma scheduler: sigma = eta sqrt((1 - ab') / (1 - ab) (1 - ab / ab')),
    x' = sqrt(ab') x0_hat + sqrt(1 - ab' - sigma^2) eps + sigma z, z the standardised Gamma noise at t'."""
    scheduler = _gamma_scheduler(GammaDDPMScheduler)
    t, t_prev, eta = 15, 9, 0.7
    x_t = torch.linspace(-1, 1, 64, dtype=torch.float64).reshape(1, 1, 8, 8)
    eps = torch.linspace(0.5, -0.5, 64, dtype=torch.float64).reshape(1, 1, 8, 8)
    got = ddim_step(scheduler, eps, t, t_prev, x_t, eta=eta, generator=torch.Generator().manual_seed(1))
    ab, ab_prev = float(scheduler.alphas_cumprod[t]), float(scheduler.alphas_cumprod[t_prev])
    x0 = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
    z = scheduler.sample_noise(x_t, t_prev, torch.Generator().manual_seed(1))
    expected = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev - sigma**2) * eps + sigma * z
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_gamma_ddim_scheduler_step_with_eta_uses_c1_c2_and_gamma_noise_at_t_prev() -> None:
    scheduler = _gamma_scheduler(GammaDDIMScheduler)
    scheduler.set_timesteps(5)
    t = int(scheduler.timesteps[1])
    t_prev = scheduler.previous_timestep(t)
    x_t = torch.linspace(-1, 1, 64, dtype=torch.float64).reshape(1, 1, 8, 8)
    eps = torch.linspace(0.5, -0.5, 64, dtype=torch.float64).reshape(1, 1, 8, 8)
    got, _ = scheduler.step(eps, t, x_t, eta=0.7, generator=torch.Generator().manual_seed(2))
    ab, ab_prev = float(scheduler.alphas_cumprod[t]), float(scheduler.alphas_cumprod[t_prev])
    x0 = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    c1 = 0.7 * math.sqrt((1 - ab / ab_prev) * (1 - ab_prev) / (1 - ab))
    z = scheduler.sample_noise(x_t, t_prev, torch.Generator().manual_seed(2))
    expected = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev - c1**2) * eps + c1 * z
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def _skewness(values: torch.Tensor) -> float:
    centred = values.double().flatten() - values.double().mean()
    return float((centred**3).mean() / centred.pow(2).mean() ** 1.5)


def test_pddpm_start_noise_is_the_schedulers_skewed_gamma_noise() -> None:
    """x_T' = sqrt(ab_T') x_pre + sqrt(1 - ab_T') eps with eps the Gamma scheduler's noise at T' - 1: its skewness is
    2 / sqrt(k_bar) (Gaussian noise would give 0; mean and variance alone cannot tell them apart)."""
    scheduler = _gamma_scheduler(GammaDDPMScheduler)
    t_prime, ensemble, size = 6, 64, 16
    x_pre = torch.zeros(1, 4, size, size)

    def presegment(inputs: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.zeros(inputs.shape[0], size, size, dtype=torch.long), 4).permute(0, 3, 1, 2).float()

    inferer = PDDPMInferer(scheduler, presegmentation=presegment, t_prime=t_prime, ensemble=ensemble)
    x_start = inferer.start(torch.rand(1, 1, size, size), torch.Generator().manual_seed(3))
    ab = float(scheduler.alphas_cumprod[t_prime - 1])
    x_pre = (presegment(x_pre) * 2 - 1).repeat(ensemble, 1, 1, 1)
    eps = (x_start - math.sqrt(ab) * x_pre) / math.sqrt(1 - ab)
    expected = 2 / math.sqrt(float(scheduler.k_bar[t_prime - 1]))
    assert expected > 0.5
    assert _skewness(eps) == pytest.approx(expected, rel=0.15)
    assert float(eps.mean()) == pytest.approx(0, abs=0.02) and float(eps.std()) == pytest.approx(1, rel=0.03)


def test_gamma_vae_diffusion_mapping_round_trips_the_posterior_mean() -> None:
    """encode_for_diffusion = clamp(2 z - 1, -1, 1); decode_from_diffusion decodes its inverse (latent + 1) / 2, so a
    latent inside [0, 1] reaches the decoder unchanged (Stojanovski et al. 2024, Gamma-VAE section)."""
    torch.manual_seed(0)
    vae = GammaVAE(channels=(8, 8), num_res_blocks=1, norm_num_groups=4, attention_levels=(False, False)).eval()
    image = torch.rand(2, 1, 16, 16) * 0.8 + 0.1
    sector = torch.ones_like(image)
    seen = []
    decode = vae.decode
    vae.decode = lambda z: seen.append(z) or decode(z)
    with torch.no_grad():
        z = vae.posterior_mean(*vae.encode(image))
        latent = vae.encode_for_diffusion(image, sector)
        torch.testing.assert_close(latent, (2 * z - 1).clamp(-1, 1))
        inside = torch.full_like(latent, 0.3)  # z = 0.65
        vae.decode_from_diffusion(inside, sector)
    torch.testing.assert_close(seen[-1], torch.full_like(latent, 0.65))


def test_gamma_vae_loss_weights_are_the_papers() -> None:
    """recon 10 MSE + 1e-3 KL (+ after the warm-up 1e-2 latent MSE); Stojanovski et al. 2024."""
    loss = GammaVAELoss()
    x = torch.zeros(1, 1, 8, 8)
    recon = torch.full_like(x, 0.5)  # MSE 0.25
    k = torch.full((1, 1, 2, 2), 3.75)
    r = torch.full((1, 1, 2, 2), 10.8)  # posterior = prior: KL 0
    z = torch.full((1, 1, 2, 2), 0.3)  # latent MSE against the zero image: 0.09
    mask = torch.ones(1, 1, 2, 2)
    _, early = loss(x, recon, z, k, r, mask, epoch=0)
    _, late = loss(x, recon, z, k, r, mask, epoch=5)
    assert early["recon"] == pytest.approx(2.5) and early["kl"] == pytest.approx(0, abs=1e-9) and early["latent"] == 0
    assert late["latent"] == pytest.approx(1e-2 * 0.09)
    k2 = torch.full_like(k, 2.0)
    _, off_prior = loss(x, recon, z, k2, r, mask, epoch=0)
    from torch.distributions import Gamma, kl_divergence

    kl = kl_divergence(Gamma(torch.tensor(3.75), torch.tensor(10.8)), Gamma(torch.tensor(2.0), torch.tensor(10.8)))
    assert off_prior["kl"] == pytest.approx(1e-3 * float(kl), rel=1e-6)


@pytest.mark.parametrize("kind", ["gaussian", "gamma"])
def test_ddim_step_of_an_x0_model_equals_that_of_the_matching_eps_model(kind) -> None:
    """A "sample" (x_0) prediction and the eps it implies, eps = (x_t - sqrt(ab_t) x_0) / sqrt(1 - ab_t) (Ho et al.
    2020, Eq. 4), give the same DDIM step (Song et al. 2021, Eq. 12)."""
    epsilon = get_noise_scheduler(kind, "ddpm", num_train_timesteps=100, schedule="cosine")
    sample = get_noise_scheduler(kind, "ddpm", num_train_timesteps=100, schedule="cosine", prediction_type="sample")
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 4, 8, 8, generator=generator) * 1.8 - 0.9
    eps = torch.randn(2, 4, 8, 8, generator=generator)
    t, t_prev = 60, 20
    ab = float(epsilon.alphas_cumprod[t])
    x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
    assert torch.allclose(ddim_step(sample, x0, t, t_prev, x_t), ddim_step(epsilon, eps, t, t_prev, x_t), atol=1e-5)
    ab_prev = float(epsilon.alphas_cumprod[t_prev])
    expected = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps  # eta = 0: x_0 and eps carried to t_prev
    assert torch.allclose(ddim_step(sample, x0, t, t_prev, x_t), expected, atol=1e-5)


def test_cosine_schedule_at_T_1000_is_nichol_and_dhariwal_eq_17() -> None:
    """alpha_bar_t = f(t) / f(0), f(t) = cos^2((t / T + s) / (1 + s) pi / 2), s = 0.008 (Nichol & Dhariwal 2021,
    Eq. 17), the schedule of Guo et al. 2022; paper step t is MONAI index t - 1."""
    scheduler = get_noise_scheduler("gaussian", "ddpm", num_train_timesteps=1000, schedule="cosine")

    def f(t: int) -> float:
        return math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2

    for t in (1, 50, 300, 500, 900):
        assert float(scheduler.alphas_cumprod[t - 1]) == pytest.approx(f(t) / f(0), rel=1e-4)
    with pytest.raises(ConfigKeyError, match=r"unknown noise schedule 'cosin'; expected one of"):
        get_noise_scheduler("gaussian", "ddpm", schedule="cosin")
