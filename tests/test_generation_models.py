"""Tests for echodiff.generation.models: the six generators of Stojanovski et al. 2024, their sizes and config errors."""

from __future__ import annotations

import pytest
import torch
from echodiff.errors import ConfigKeyError, ConfigValueError
from echodiff.generation import (
    GENERATOR_MODELS,
    PAPER_SCALE_NETWORKS,
    autoencoder_kwargs,
    build_autoencoder,
    build_generator,
)
from echodiff.networks import EDMPrecond, GammaVAE, VEPrecond, VPPrecond
from echodiff.schedulers import GammaDDPMScheduler
from monai.networks.nets import SPADEDiffusionModelUNet
from monai.networks.schedulers import DDPMScheduler

SIZE = 32
N = 2  # sampling steps
TINY_T = 4  # sdm training timesteps in these tests


def fan_condition_map(batch: int = 2, size: int = SIZE) -> torch.Tensor:
    """(B, 1, H, W) condition map: a fan-shaped sector (class 2) with an LV cavity (1), myocardium ring (3) and left
    atrium (4); class 0 outside the fan."""
    rows, cols = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float() - size / 2 + 0.5, indexing="ij")
    fan = (torch.hypot(rows, cols) < 0.95 * size) & (torch.atan2(cols, rows).abs() < 0.6)
    ellipse = (rows - 0.45 * size) ** 2 / (0.25 * size) ** 2 + cols**2 / (0.12 * size) ** 2
    cond = torch.where(fan, 2, 0)
    cond[(ellipse >= 1) & (ellipse < 1.8)] = 3
    cond[ellipse < 1] = 1
    cond[((rows - 0.8 * size) ** 2 + cols**2 < (0.1 * size) ** 2) & fan] = 4
    return cond.expand(batch, 1, size, size).clone()


def build(model: str, **kwargs: object):
    torch.manual_seed(0)
    if model == "sdm":
        kwargs.setdefault("diffusion", {"num_train_timesteps": TINY_T})
    return build_generator(model, SIZE, **kwargs)


@pytest.mark.parametrize("model", GENERATOR_MODELS)
def test_every_model_samples_unit_range_images_zero_outside_the_sector_with_exact_nfe(model):
    generator = build(model)
    cond = fan_condition_map()
    steps = {"sdm": {"sampler": "ddim", "steps": N}}.get(model, {"sampler": "heun", "steps": N})
    images, nfe = generator.sample(cond, generator=torch.Generator().manual_seed(0), **steps)
    assert images.shape == (2, 1, SIZE, SIZE) and images.dtype == torch.float32
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    assert float(images[cond == 0].abs().max()) == 0
    assert float(images[cond > 0].std()) > 0
    assert nfe == (N if model == "sdm" else 2 * N - 1)  # DDIM: one call per step; Heun: 2 N - 1 (last step Euler)


@pytest.mark.parametrize(("sampler", "expected_nfe"), [("heun", 2 * N - 1), ("euler", N), ("dpmpp_2m", N)])
def test_edm_nfe_counts_denoiser_calls_per_sampler(sampler, expected_nfe):
    generator = build("edm")
    calls = []
    generator.denoiser.register_forward_hook(lambda *_: calls.append(1))
    _, nfe = generator.sample(fan_condition_map(), sampler=sampler, steps=N)
    assert nfe == len(calls) == expected_nfe


def test_sdm_ddpm_takes_every_scheduler_timestep_one_call_each():
    generator = build("sdm")
    seen = []
    _, nfe = generator.sample(fan_condition_map(), callback=lambda i, x, t, eps: seen.append(int(t)))
    assert nfe == TINY_T and seen == [3, 2, 1, 0]


@pytest.mark.parametrize(("model", "latent"), [("edm_l128", SIZE // 2), ("edm_l64", SIZE // 4), ("edm", SIZE)])
def test_denoiser_works_on_the_latent_grid_and_decoder_is_one_extra_call(model, latent):
    generator = build(model)
    shapes = []
    images, _ = generator.sample(fan_condition_map(1), steps=1, callback=lambda i, x, s, d: shapes.append(x.shape))
    assert shapes == [(1, 1, latent, latent)] and images.shape == (1, 1, SIZE, SIZE)
    assert generator.decoder_calls == (0 if model == "edm" else 1)
    assert generator.latent_scale == 1.0


def test_formulations_and_schedulers_match_the_model():
    assert isinstance(build("edm").denoiser, EDMPrecond) and isinstance(build("edm_l64").denoiser, EDMPrecond)
    assert isinstance(build("vp").denoiser, VPPrecond) and isinstance(build("ve").denoiser, VEPrecond)
    sdm = build_generator("sdm", SIZE)
    assert isinstance(sdm.denoiser, SPADEDiffusionModelUNet) and type(sdm.scheduler) is DDPMScheduler
    assert sdm.build_kwargs["diffusion"] == {"num_train_timesteps": 1000, "schedule": "cosine"}  # SDM: T 1000, cosine
    gamma = build("sdm", noise="gamma")
    assert isinstance(gamma.scheduler, GammaDDPMScheduler) and gamma.scheduler.num_train_timesteps == TINY_T
    assert build("edm").scheduler is None and build("edm").autoencoder is None
    assert isinstance(build("edm_l64").autoencoder, GammaVAE)


def test_latent_models_freeze_the_autoencoder_and_train_only_the_denoiser():
    generator = build("edm_l64")
    assert not any(p.requires_grad for p in generator.autoencoder.parameters())
    assert all(p.requires_grad for p in generator.denoiser.parameters())


def test_unknown_model_raises_config_key_error_listing_the_six_names():
    with pytest.raises(ConfigKeyError, match="unknown generator model 'ldm'; expected one of sdm, vp, ve, edm, edm_l128, "
                       "edm_l64"):  # fmt: skip
        build_generator("ldm", SIZE)


@pytest.mark.parametrize("model", ["vp", "ve", "edm", "edm_l128", "edm_l64"])
def test_gamma_noise_outside_the_ddpm_model_raises_config_value_error_naming_sdm(model):
    with pytest.raises(ConfigValueError, match=r"noise 'gamma' is defined for the DDPM-type model sdm only"):
        build_generator(model, SIZE, noise="gamma")


def test_unknown_noise_kind_raises_config_key_error():
    with pytest.raises(ConfigKeyError, match="unknown noise 'poisson'; expected one of gaussian, gamma"):
        build_generator("sdm", SIZE, noise="poisson")


def test_network_override_with_unknown_key_raises_config_key_error_naming_it():
    with pytest.raises(ConfigKeyError, match=r"network has unknown keys \['base_channels'\]"):
        build_generator("edm", SIZE, network={"base_channels": 8})
    with pytest.raises(ConfigKeyError, match=r"diffusion=\{'sigma_dta': 0.5\} does not fit EDM preconditioning"):
        build_generator("edm", SIZE, diffusion={"sigma_dta": 0.5})


def test_image_size_must_divide_by_latent_factor_and_unet_downsampling():
    with pytest.raises(ConfigValueError, match=r"image_size=36 for model 'edm_l64': expected a multiple of 16"):
        build_generator("edm_l64", 36)  # latent factor 4 x UNet 2**2
    with pytest.raises(ConfigValueError, match=r"image_size=30 for model 'edm': expected a multiple of 4"):
        build_generator("edm", 30)


def test_autoencoder_levels_must_give_the_latent_models_grid():
    assert len(autoencoder_kwargs("edm_l128")["channels"]) == 2 and len(autoencoder_kwargs("edm_l64")["channels"]) == 3
    with pytest.raises(ConfigValueError, match=r"3 levels \(latent = image / 4\); model 'edm_l128' needs 2 levels"):
        build_generator("edm_l128", SIZE, autoencoder={"channels": [16, 32, 32]})
    with pytest.raises(ConfigValueError, match="model 'sdm' works in pixel space and uses no autoencoder"):
        build_autoencoder("sdm")


def _attention_resolutions(network: dict, grid: int) -> list[int]:
    return [grid // 2**i for i, attention in enumerate(network["attention_levels"]) if attention]


def test_paper_scale_sizes_follow_the_paper():
    """The paper-scale sizes of echodiff.generation.models, at 256 x 256 images."""
    sdm = PAPER_SCALE_NETWORKS["sdm"]["network"]
    assert list(sdm["channels"]) == [256 * m for m in (1, 1, 2, 2, 4, 4)] and sdm["num_res_blocks"] == 2
    assert _attention_resolutions(sdm, 256) == [32, 16, 8] and sdm["num_head_channels"] == 64
    for model, grid, resolutions in [("edm", 256, [32]), ("edm_l128", 128, [32, 16]), ("edm_l64", 64, [32, 16, 8])]:
        network = PAPER_SCALE_NETWORKS[model]["network"]
        assert list(network["channels"]) == [192 * m for m in (1, 2, 3, 4)] and network["num_res_blocks"] == 3
        assert _attention_resolutions(network, grid) == resolutions
    for model in ("vp", "ve"):
        network = PAPER_SCALE_NETWORKS[model]["network"]
        assert list(network["channels"]) == [256, 256, 256] and network["num_res_blocks"] == 4
    assert list(PAPER_SCALE_NETWORKS["edm_l64"]["autoencoder"]["channels"]) == [64, 128, 192]
    assert list(PAPER_SCALE_NETWORKS["edm_l128"]["autoencoder"]["channels"]) == [64, 128]


@pytest.mark.parametrize("model", GENERATOR_MODELS)
def test_paper_scale_arguments_build_monai_networks(model):
    """Built on the meta device: checks MONAI accepts the arguments (head sizes, groups) without allocating them."""
    sizes = PAPER_SCALE_NETWORKS[model]
    with torch.device("meta"):
        unet = SPADEDiffusionModelUNet(spatial_dims=2, in_channels=1, out_channels=1, label_nc=5, **sizes["network"])
        vae = GammaVAE(**sizes["autoencoder"]) if "autoencoder" in sizes else None
    assert sum(p.numel() for p in unet.parameters()) > 5e7
    assert vae is None or vae.downsample_factor == {"edm_l128": 2, "edm_l64": 4}[model]
