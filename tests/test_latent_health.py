"""Latent health of the Gamma-VAE (echodiff.generation.latent_health) and the study's refusal of a broken latent."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from monai.transforms import Compose

from echodiff.data import LoadResizedCAMUSd, SectorConditionMapd
from echodiff.data.camus import list_camus
from echodiff.errors import ConfigValueError
from echodiff.generation.latent_health import HEALTH_LIMITS, health_problems, latent_health
from echodiff.losses import GammaVAELoss
from echodiff.networks import GammaVAE
from echodiff.study import run_study
from echodiff.study import stages as study_stages
from echodiff.study.recipes import scale_settings


def _frames(dataset: Path, split: str, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    load = Compose([LoadResizedCAMUSd([size, size]), SectorConditionMapd("image", "label", "cond")])
    items = [load(item) for item in list_camus(dataset, split)]
    images = torch.stack([torch.as_tensor(i["image"]).float() for i in items])
    return images, torch.stack([(torch.as_tensor(i["cond"]) > 0).float() for i in items])


def _vae(**kwargs) -> GammaVAE:
    return GammaVAE(channels=(8, 16, 16), num_res_blocks=1, norm_num_groups=8, attention_levels=(False,) * 3, **kwargs)


def test_posterior_starts_at_the_prior_with_no_saturated_encoder_output() -> None:
    torch.manual_seed(0)
    images = torch.rand(4, 1, 32, 32)
    for beta in (1.0, 10.0):  # a zero output bias would start at k = 3.75 softplus(0, beta) = 0.26 (beta 10)
        torch.manual_seed(1)
        vae = _vae(softplus_beta=beta)
        k, r = vae.encode(images)
        assert k.median().item() == pytest.approx(3.75, rel=0.25) and r.median().item() == pytest.approx(10.8, rel=0.25)
        health = latent_health(vae, images, torch.ones_like(images))
        assert health["saturated_fraction"] < 0.05
    # beta 1: no output near saturation, so no rate near 0 either, whose mean k / r would explode (beta 10: a few do)
    assert health["channel_mean"][0] > 10
    assert 0.2 < latent_health(_vae(softplus_beta=1.0), images, torch.ones_like(images))["channel_mean"][0] < 0.7


def test_health_figures_measure_clipping_dead_channels_and_saturation(monkeypatch: pytest.MonkeyPatch) -> None:
    vae = _vae(latent_channels=2)
    images, sector = torch.rand(6, 1, 32, 32), torch.ones(6, 1, 32, 32)
    # channel 0 follows the image; channel 1 is the same 2.0 for every image: clipped by clamp(2 z - 1), no spread
    z = torch.stack([images[:, 0, ::4, ::4], torch.full((6, 8, 8), 2.0)], 1)
    monkeypatch.setattr(vae, "posterior", lambda pre: (z * 10.0, torch.full_like(z, 10.0)))
    vae.encoder = torch.nn.ConstantPad2d(0, 0.0)  # encoder outputs are the image: 0..1, none saturated ...
    monkeypatch.setattr(vae, "softplus_beta", -10.0)  # ... unless beta flips them: sigmoid(-10 x) < 1 % for x > 0.46
    health = latent_health(vae, images, sector)
    assert health["latent_clipped_fraction"] == pytest.approx(0.5)
    assert health["channel_spread"][1] == pytest.approx(0.0, abs=1e-6) and health["channel_spread"][0] > 0.2
    assert health["channel_mean"] == pytest.approx([float(z[:, 0].mean()), 2.0], rel=1e-5)
    assert health["saturated_fraction"] == pytest.approx(float((images > 0.4595).float().mean()), abs=0.01)
    assert math.isfinite(health["psnr"])
    problems = health_problems(health)
    assert [p.split()[0] for p in problems] == list(HEALTH_LIMITS)
    assert problems[0] == "latent_clipped_fraction 0.5 > 0.01"


def _train(vae: GammaVAE, loss: GammaVAELoss, images: torch.Tensor, sector: torch.Tensor, steps: int,
           batch: int = 4) -> None:  # fmt: skip
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    per_epoch = len(images) // batch
    for step in range(steps):
        idx = torch.randperm(len(images))[:batch]
        recon, z, k, r = vae(images[idx], sector[idx])
        total, _ = loss(images[idx], recon, z, k, r, vae.latent_mask(sector[idx]), epoch=step // per_epoch)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()


def test_tiny_gamma_vae_with_the_paper_losses_and_warm_up_stays_healthy(phantom_camus: Path) -> None:
    """The paper's loss weights and 5-epoch warm-up (latent term off, only the KL holds the latent), one latent
    channel, with the CPU recipe's encoder (softplus beta 1, posterior initialised at the prior) and bound term."""
    torch.manual_seed(0)
    images, sector = _frames(phantom_camus, "training")
    val_images, val_sector = _frames(phantom_camus, "validation")
    vae = _vae(latent_channels=1, softplus_beta=1.0)
    loss = GammaVAELoss(recon_weight=10.0, kl_weight=1e-3, latent_weight=1e-2, warmup_epochs=5, bound_weight=1.0)
    start = latent_health(vae, val_images, val_sector)
    _train(vae, loss, images, sector, steps=300)
    health = latent_health(vae, val_images, val_sector)
    assert health_problems(health) == [], health
    assert health["psnr"] > start["psnr"] + 3


def test_bound_term_penalises_posterior_means_above_the_prior_bulk() -> None:
    loss = GammaVAELoss(bound_weight=1.0)
    assert loss.bound == 1.0  # where clamp(2 z - 1, -1, 1) starts to clip
    x, mask = torch.rand(1, 1, 8, 8), torch.ones(1, 1, 2, 2)
    k = torch.full((1, 1, 2, 2), 3.75)
    args = dict(x=x, recon=x, z=torch.zeros(1, 1, 2, 2), latent_mask=mask, epoch=0)
    assert loss(concentration=k, rate=k / 0.5, **args)[1]["bound"] == 0.0
    assert loss(concentration=k, rate=k / 2.1, **args)[1]["bound"] == pytest.approx(1.1**2, rel=1e-4)


def test_study_refuses_latent_diffusion_on_a_broken_latent_at_every_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = {"psnr": 20.0, "latent_clipped_fraction": 0.3, "channel_spread": [0.0], "min_channel_spread": 0.0,
              "channel_mean": [1e6], "saturated_fraction": 0.0}  # fmt: skip

    def fake_training(ctx, folder, *args) -> dict:
        (folder / "model.pt").write_text("x")
        return {"model": str(folder / "model.pt"), "overrides": {}, "health": broken}

    def no_diffusion(*args) -> dict:
        raise AssertionError("latent diffusion ran on a broken latent")

    monkeypatch.setattr(study_stages, "train_downstream", fake_training)
    monkeypatch.setattr(study_stages, "train_autoencoder", fake_training)
    monkeypatch.setattr(study_stages, "train_diffusion", no_diffusion)
    for scale in ("tiny", "paper"):
        assert scale_settings(scale, "edm_l64")["model"] == "edm_l64"
        with pytest.raises(ConfigValueError, match=r"latent_clipped_fraction 0.3 > 0.01; min_channel_spread 0 < 0.02"):
            run_study(workdir=str(tmp_path / scale), scale=scale, model="edm_l64", budget_minutes=60, threads=1, say=lambda _: None)
    with pytest.raises(AssertionError, match="latent diffusion ran"):
        run_study(workdir=str(tmp_path / "tiny"), scale="tiny", model="edm_l64", budget_minutes=60,
                  allow_unhealthy_latent=True, threads=1, say=lambda _: None)  # fmt: skip


def test_autoencoder_step_clips_the_gradient_norm() -> None:
    from types import SimpleNamespace

    from echodiff.generation import AutoencoderTrainStep

    torch.manual_seed(0)
    vae = _vae(latent_channels=1, softplus_beta=1.0)
    seen = []

    class Optimizer(torch.optim.SGD):
        def step(self, closure=None):
            seen.append(float(torch.cat([p.grad.flatten() for p in vae.parameters() if p.grad is not None]).norm()))
            return super().step(closure)

    engine = SimpleNamespace(
        state=SimpleNamespace(device=torch.device("cpu"), epoch=1, output=None), network=vae, amp=False,
        optimizer=Optimizer(vae.parameters(), lr=0.0), optim_set_to_none=True, inferer=lambda x, net, s: net(x, s),
        loss_function=GammaVAELoss(recon_weight=1e4), fire_event=lambda event: None,
    )  # fmt: skip
    images = torch.rand(2, 1, 32, 32)
    batch = {"image": images, "cond": torch.ones_like(images)}
    AutoencoderTrainStep()(engine, batch)
    output = AutoencoderTrainStep(max_grad_norm=0.5)(engine, batch)
    assert seen[0] > 0.5 and seen[1] == pytest.approx(0.5, rel=1e-4) and output["grad_norm"] > 0.5
