"""Fixed-seed outputs pinned across refactors: generated images (DDPM, DDIM, Gamma noise, Heun, DPM++), PD-DDPM
ensembles (DDPM and DDIM steps) and the CAMUS metrics. The numbers were computed before the reverse-diffusion loop was
shared (echodiff 0.3.0); a change of any of them is a change of behaviour, not a refactor."""

from __future__ import annotations

import functools

import pytest
import torch
from echodiff.engines import camus_scores
from echodiff.inferers import PDDPMInferer
from echodiff.schedulers import get_noise_scheduler
from test_generation_models import build, fan_condition_map
from test_pddpm_inferer import _fixed_presegmentation, _mask, _tiny_unet

PINNED = {
    "sdm_gamma_ddpm": [555.276722997427, 313.402628492089],
    "sdm_gaussian_ddim": [561.3573749661446, 311.98111563223597],
    "edm_heun": [561.5208516418934, 312.19863726358096],
    "edm_dpmpp_2m": [551.0223651230335, 305.69475279969004],
    "pddpm_gamma_ddpm": [1363.8599079549313, 536.0408015917692],
    "pddpm_gaussian_ddim": [1276.145181208849, 470.46919001443484],
}
PINNED_METRICS = {"dice_lv_endo": 80.0, "dice_lv_epi": 100.0, "dice_la": 100.0, "dice_mean": 93.3333, "hd_lv_endo": 4.0}


def _summary(x: torch.Tensor) -> list[float]:
    x = x.double()
    return [float(x.sum()), float((x * torch.linspace(0, 1, x.numel(), dtype=torch.float64).reshape(x.shape)).sum())]


@functools.cache
def outputs() -> dict[str, list[float]]:
    cond = fan_condition_map(2)
    found = {}
    for name, model, noise, sampler, steps in (("sdm_gamma_ddpm", "sdm", "gamma", "ddpm", None),
                                               ("sdm_gaussian_ddim", "sdm", "gaussian", "ddim", 3),
                                               ("edm_heun", "edm", "gaussian", "heun", 2),
                                               ("edm_dpmpp_2m", "edm", "gaussian", "dpmpp_2m", 3)):  # fmt: skip
        generator = build(model, noise=noise).eval()
        with torch.no_grad():
            images, _ = generator.sample(cond, sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(1))
        found[name] = _summary(images)
    image = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    for name, noise, rule, steps, eta in (("pddpm_gamma_ddpm", "gamma", "ddpm", None, 0.0),
                                          ("pddpm_gaussian_ddim", "gaussian", "ddim", 3, 0.5)):  # fmt: skip
        scheduler = get_noise_scheduler(noise, "ddpm", num_train_timesteps=20, schedule="cosine")
        inferer = PDDPMInferer(scheduler, presegmentation=_fixed_presegmentation(_mask()), t_prime=6, ensemble=2,
                               step_rule=rule, steps=steps, eta=eta, seed=3)  # fmt: skip
        found[name] = _summary(inferer(image, _tiny_unet())["pred"])
    return found


@pytest.mark.parametrize("name", sorted(PINNED))
def test_fixed_seed_outputs_are_unchanged(name: str) -> None:
    assert outputs()[name] == pytest.approx(PINNED[name], rel=1e-5, abs=1e-6)


def test_camus_metrics_are_unchanged() -> None:
    label = _mask()
    pred = label.clone()
    pred[..., 6:10, 10:22] = 2  # part of the LV cavity called myocardium
    scores = camus_scores(pred[0], label[0])
    assert {k: round(v, 4) for k, v in scores.items()} == PINNED_METRICS

