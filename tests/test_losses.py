"""Tests for echodiff.losses: the Gamma-VAE objective and the EDM/VP/VE denoising losses."""

from __future__ import annotations

import math

import pytest
import torch
from echodiff.errors import ShapeMismatchError
from echodiff.losses import EDMLoss, GammaVAELoss, VELoss, VPLoss
from echodiff.networks import vp_sigma
from torch import Tensor
from torch.distributions import Gamma, kl_divergence


def vae_outputs(seed: int = 0) -> dict[str, Tensor]:
    """Plausible Gamma-VAE outputs for a (2, 1, 16, 16) image with a 4x4 latent."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 1, 16, 16, generator=generator)
    concentration = 1 + 5 * torch.rand(2, 1, 4, 4, generator=generator)
    rate = 5 + 10 * torch.rand(2, 1, 4, 4, generator=generator)
    return dict(
        x=x,
        recon=torch.rand(2, 1, 16, 16, generator=generator),
        z=concentration / rate,
        concentration=concentration,
        rate=rate,
        latent_mask=torch.ones(2, 1, 4, 4),
    )


def test_kl_is_prior_to_posterior_and_matches_monte_carlo() -> None:
    """KL(p || q) = E_{z ~ p}[log p(z) - log q(z)] with p the Gamma(3.75, 10.8) prior and q the posterior."""
    loss = GammaVAELoss()
    concentration = torch.tensor([0.8, 2.0, 3.75, 6.0], dtype=torch.float64)
    rate = torch.tensor([3.0, 20.0, 10.8, 12.0], dtype=torch.float64)
    prior = Gamma(torch.tensor(3.75, dtype=torch.float64), torch.tensor(10.8, dtype=torch.float64))
    posterior = Gamma(concentration, rate)
    z = prior.sample(torch.Size([400_000]))
    monte_carlo = (prior.log_prob(z)[:, None] - posterior.log_prob(z[:, None])).mean(dim=0)
    closed_form = loss.kl_prior_posterior(concentration, rate)
    torch.testing.assert_close(closed_form, monte_carlo, atol=0.01, rtol=0.02)
    assert float(closed_form[2]) == pytest.approx(0.0, abs=1e-12)  # posterior equal to the prior
    reverse = kl_divergence(posterior, prior)
    assert ((closed_form - reverse).abs()[[0, 1, 3]] > 0.05).all()  # the MC estimate picks out this direction


def test_kl_term_is_mean_over_latent_sector() -> None:
    outputs = vae_outputs()
    mask = torch.zeros(2, 1, 4, 4)
    mask[..., :2, :] = 1
    outputs["latent_mask"] = mask
    loss = GammaVAELoss()
    _, terms = loss(**outputs)
    kl = loss.kl_prior_posterior(outputs["concentration"], outputs["rate"])
    assert terms["kl"] == pytest.approx(1e-3 * float(kl[..., :2, :].mean()), rel=1e-5)


def test_perfect_reconstruction_has_zero_recon_term() -> None:
    outputs = vae_outputs()
    outputs["recon"] = outputs["x"].clone()
    _, terms = GammaVAELoss()(**outputs)
    assert terms["recon"] == 0.0
    assert terms["kl"] > 0


def test_warmup_switches_on_perceptual_and_latent_terms_from_warmup_epoch() -> None:
    calls = []

    def perceptual(recon: Tensor, x: Tensor) -> Tensor:
        calls.append(recon.shape)
        return (recon - x).abs().mean()

    outputs = vae_outputs()
    loss = GammaVAELoss(perceptual=perceptual, warmup_epochs=5)
    total, terms = loss(**outputs, epoch=4)
    assert terms["perceptual"] == 0.0 and terms["latent"] == 0.0 and not calls
    assert float(total) == pytest.approx(terms["recon"] + terms["kl"])

    loss.set_epoch(5)
    total, terms = loss(**outputs)
    assert calls == [outputs["x"].shape]
    assert terms["perceptual"] == pytest.approx(1e-3 * float((outputs["recon"] - outputs["x"]).abs().mean()))
    x_latent = torch.nn.functional.avg_pool2d(outputs["x"], 4)  # area interpolation by an integer factor
    assert terms["latent"] == pytest.approx(1e-2 * float(((outputs["z"] - x_latent) ** 2).mean()), rel=1e-5)
    assert float(total) == pytest.approx(sum(terms[k] for k in ("recon", "kl", "perceptual", "latent")), rel=1e-6)
    assert terms["total"] == pytest.approx(float(total))


def test_perceptual_term_is_left_out_when_no_network_is_given() -> None:
    _, terms = GammaVAELoss()(**vae_outputs(), epoch=10)
    assert terms["perceptual"] == 0.0 and terms["latent"] > 0


def test_latent_term_ties_every_latent_channel_to_the_image() -> None:
    outputs = vae_outputs()
    _, single = GammaVAELoss()(**outputs, epoch=5)
    for key in ("z", "concentration", "rate"):
        outputs[key] = outputs[key].repeat(1, 2, 1, 1)
    _, same = GammaVAELoss()(**outputs, epoch=5)
    assert same["latent"] == pytest.approx(single["latent"])
    outputs["z"] = torch.cat([outputs["z"][:, :1], outputs["z"][:, :1] + 5.0], dim=1)  # a channel far from the image
    _, drifted = GammaVAELoss()(**outputs, epoch=5)
    assert drifted["latent"] > 10 * single["latent"]


def test_latent_of_another_batch_size_raises_shape_mismatch() -> None:
    outputs = vae_outputs()
    for key in ("z", "concentration", "rate"):
        outputs[key] = outputs[key][:1]
    outputs["latent_mask"] = outputs["latent_mask"][:1]
    with pytest.raises(ShapeMismatchError, match="latent z has shape"):
        GammaVAELoss()(**outputs, epoch=5)


def test_edm_loss_of_exact_gaussian_denoiser_is_one_per_element() -> None:
    """For y ~ N(0, sd^2) the ideal denoiser is D(x, s) = x sd^2 / (s^2 + sd^2); its error variance is
    s^2 sd^2 / (s^2 + sd^2) = 1 / lambda(s), so the EDM-weighted loss has expectation 1 at every sigma."""
    sigma_data = 0.5
    generator = torch.Generator().manual_seed(0)
    images = sigma_data * torch.randn(8192, 1, 4, 4, generator=generator)

    def gaussian_denoiser(x: Tensor, sigma: Tensor, cond: Tensor | None) -> Tensor:
        sigma = sigma.reshape(-1, 1, 1, 1)
        return x * sigma_data**2 / (sigma**2 + sigma_data**2)

    loss = EDMLoss(sigma_data=sigma_data)(gaussian_denoiser, images, generator=generator)
    assert float(loss) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("loss_fn", [VPLoss(), VELoss()], ids=["vp", "ve"])
def test_vp_and_ve_losses_weight_noise_by_inverse_sigma_squared(loss_fn: VPLoss | VELoss) -> None:
    """The identity denoiser leaves error sigma n, which lambda = 1 / sigma^2 turns into n^2 with mean 1."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4096, 1, 4, 4, generator=generator)
    loss = loss_fn(lambda x, sigma, cond: x, images, generator=generator)
    assert float(loss) == pytest.approx(1.0, abs=0.05)


def test_training_sigmas_follow_table_1_distributions() -> None:
    generator = torch.Generator().manual_seed(0)
    edm = EDMLoss().sample_sigma(100_000, torch.device("cpu"), generator).log()
    assert float(edm.mean()) == pytest.approx(-1.2, abs=0.02) and float(edm.std()) == pytest.approx(1.2, abs=0.02)

    ve = VELoss().sample_sigma(100_000, torch.device("cpu"), generator)
    assert ve.min() >= 0.02 and ve.max() <= 100
    assert float(ve.log().mean()) == pytest.approx(0.5 * (math.log(0.02) + math.log(100)), abs=0.03)

    vp = VPLoss().sample_sigma(100_000, torch.device("cpu"), generator)
    assert vp.min() >= float(vp_sigma(1e-5)) * 0.999 and vp.max() <= float(vp_sigma(1.0)) * 1.001


def test_denoising_loss_passes_condition_and_is_reproducible_with_generator() -> None:
    seen = []

    def denoiser(x: Tensor, sigma: Tensor, cond: Tensor | None) -> Tensor:
        seen.append((sigma.shape, cond))
        return torch.zeros_like(x)

    images = torch.rand(3, 1, 4, 4)
    cond = torch.ones(3, 5, 4, 4)
    first = EDMLoss()(denoiser, images, cond, generator=torch.Generator().manual_seed(7))
    second = EDMLoss()(denoiser, images, cond, generator=torch.Generator().manual_seed(7))
    assert float(first) == float(second)
    assert seen[0][0] == (3,) and seen[0][1] is cond
