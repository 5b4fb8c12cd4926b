"""Settings of the study's stages: bundle-config overrides per scale, and the budget shares.

Each entry is what the study passes to a bundle's own config (`python -m monai.bundle run ... --key value`), nothing
else: the same runs can be repeated by hand. Three scales:

- `tiny`: the built-in phantom (README's main command, the test suite): 32 px, few-channel networks, 1-3 epochs.
- `cpu`: a 2-core CPU at 64 px: EDM-L64 on the Gamma-VAE latent (docs/study/camus224_cpu_edm_l64), which samples about 6
  times faster than pixel-space EDM (docs/study/camus224_cpu) and, on held-out training patients, trains a better view
  classifier at the same generator minutes; see `docs/study/README.md` for the table of what was tried. `--model edm` runs the pixel recipe.
- `paper`: the paper's networks and 256 px (`--paper_scale true`, meant for a GPU: `--device cuda`).

Training stages run until their share of `--budget_minutes` is spent (`time_limit_minutes`) or `max_epochs`. Every
scale's generator takes the view (2CH / 4CH) beside the label map (`view_condition`).
"""

from __future__ import annotations

import copy

from echodiff.errors import ConfigKeyError
from echodiff.generation.models import GENERATOR_MODELS, LATENT_MODELS

__all__ = ["BUDGET_SHARES", "MIN_STAGE_MINUTES", "SCALES", "budget_shares", "scale_settings", "study_sampling"]

# fraction of --budget_minutes given to each training stage of a latent generator; the rest (about a quarter) covers
# data loading, synthesis, evaluation and the report, whose cost does not depend on the budget
BUDGET_SHARES = {
    "segmenter_real": 0.10,
    "classifier_real": 0.05,
    "autoencoder": 0.12,
    "diffusion": 0.36,
    "segmenter_synthetic": 0.10,
    "classifier_synthetic": 0.05,
}
MIN_STAGE_MINUTES = 0.25  # a training stage given less than this cannot finish one validated epoch on any data
# how each generator samples in the study (synthesis, label fidelity during training and in the evaluation): the EDM
# family with DPM-Solver++(2M) at 10 steps (recipe row 10); SDM with DDIM at 50 steps (Song et al. 2021), as the
# comparison synthesises its training set (its own 1000-step DDPM costs 20 times more)
DEFAULT_SAMPLING = ("dpmpp_2m", 10)
MODEL_SAMPLING = {"sdm": ("ddim", 50)}


def study_sampling(model: str) -> tuple[str, int]:
    """(sampler, steps) with which the study's generator `model` samples unless told otherwise."""
    return MODEL_SAMPLING.get(model, DEFAULT_SAMPLING)


def budget_shares(model: str) -> dict[str, float]:
    """`BUDGET_SHARES` for a latent model; a pixel-space model has no autoencoder stage and its diffusion stage gets
    the autoencoder's share too (the generator's minutes stay the same)."""
    if model in LATENT_MODELS:
        return dict(BUDGET_SHARES)
    shares = {k: v for k, v in BUDGET_SHARES.items() if k != "autoencoder"}
    shares["diffusion"] = BUDGET_SHARES["diffusion"] + BUDGET_SHARES["autoencoder"]
    return shares


_SEGMENTER_CPU = {"image_size": [64, 64], "filters": [16, 32, 64, 128], "batch_size": 16, "learning_rate": 1e-3,
                  "max_epochs": 40, "num_workers": 0}  # fmt: skip
_CLASSIFIER_CPU = {"image_size": [64, 64], "batch_size": 32, "max_epochs": 6, "num_workers": 0}
# Gamma-VAE at CPU scale (docs/study, recipe rows 12-17): 4 latent channels; softplus beta 1 instead of the paper's 10
# (with beta 10 the encoder's outputs fall where softplus passes no gradient and the latent dies); every channel tied
# to the downsampled image from the first step with weight 1 instead of 1e-2 and no warm-up, and posterior means held
# below 1 (the bound term): with the paper's weak tie a channel drifts above 1, where clamp(2 z - 1, -1, 1) clips it
_VAE_CPU = {"channels": [16, 32, 64], "num_res_blocks": 1, "norm_num_groups": 16, "latent_channels": 4,
            "attention_levels": [False, False, False], "softplus_beta": 1.0}  # fmt: skip
_VAE_LOSS_CPU = {"loss#warmup_epochs": 0, "loss#latent_weight": 1.0, "loss#bound_weight": 1.0}
_PIXEL_DIFFUSION_CPU = {"network_args": {"channels": [16, 32, 64], "attention_levels": [False, False, True],
                                         "num_head_channels": 32, "norm_num_groups": 16},
                        "batch_size": 16, "fidelity_interval": 10, "grid_interval": 20}  # fmt: skip
_LATENT_DIFFUSION_CPU = {"network_args": {}, "batch_size": 32, "fidelity_interval": 15, "grid_interval": 50}

SCALES: dict[str, dict] = {
    "tiny": {
        "image_size": 32,
        "model": "edm",
        "segmenter": {"image_size": [32, 32], "filters": [8, 16, 32], "batch_size": 8, "learning_rate": 3e-3,
                      "max_epochs": 25, "num_workers": 0},  # fmt: skip
        "classifier": {"image_size": [32, 32], "batch_size": 8, "max_epochs": 8, "num_workers": 0},
        "autoencoder": {"autoencoder_args": {"channels": [8, 16, 16], "num_res_blocks": 1, "norm_num_groups": 8,
                                             "latent_channels": 2, "attention_levels": [False, False, False],
                                             "softplus_beta": 1.0},
                        **_VAE_LOSS_CPU,
                        "batch_size": 8, "learning_rate": 1e-3, "max_epochs": 10, "num_workers": 0, "grid_interval": 100},
        "diffusion": {"network_args": {"channels": [16, 32], "attention_levels": [False, False], "num_res_blocks": 1,
                                       "num_head_channels": 16, "norm_num_groups": 8, "spade_intermediate_channels": 8},
                      "batch_size": 8, "learning_rate": 1e-3, "max_epochs": 20, "num_workers": 0, "ema_warmup_iters": 10,
                      "ema_momentum": 0.05, "fidelity_interval": 5, "fidelity_images": 4, "grid_interval": 100,
                      "view_condition": True},
        "fidelity_images": 8,
    },
    "cpu": {
        "image_size": 64,
        "model": "edm_l64",
        "segmenter": _SEGMENTER_CPU,
        "classifier": _CLASSIFIER_CPU,
        "autoencoder": {"autoencoder_args": _VAE_CPU, "batch_size": 16, "learning_rate": 1e-3, "max_epochs": 500,
                        "num_workers": 0, "grid_interval": 10, **_VAE_LOSS_CPU},  # fmt: skip
        "diffusion": {"learning_rate": 1e-3, "max_epochs": 2000, "num_workers": 0, "ema_momentum": 0.001,
                      "ema_warmup_iters": 500, "fidelity_images": 32, "view_condition": True},  # fmt: skip
        # pixel models (sdm, vp, ve, edm): one 3-level UNet 16-32-64 (attention at 16 x 16) on the 64 px image; latent
        # models: the default small UNet on the latent (16 x 16 for edm_l64, 32 x 32 for edm_l128)
        "diffusion_per_model": {
            **{model: _PIXEL_DIFFUSION_CPU for model in ("sdm", "vp", "ve", "edm")},
            **{model: _LATENT_DIFFUSION_CPU for model in LATENT_MODELS},
        },
        # edm_l128 (latent = image / 2): a 2-level Gamma-VAE with one latent channel, the paper's, so its latent
        # (1 x 32 x 32) holds as many values as edm_l64's (4 x 16 x 16)
        "autoencoder_per_model": {"edm_l128": {"autoencoder_args": {**_VAE_CPU, "channels": [16, 32],
                                                                    "attention_levels": [False, False],
                                                                    "latent_channels": 1}}},
        "fidelity_images": 200,
    },
    "paper": {
        "image_size": 256,
        "model": "edm_l64",
        "segmenter": {"image_size": [256, 256], "max_epochs": 100},
        "classifier": {"image_size": [224, 224], "max_epochs": 30},
        # the paper's Gamma-VAE, loss weights and 5-epoch warm-up, with the two guards measured at CPU scale: softplus
        # beta 1 (the encoder stays out of saturation) and posterior means bounded below 1 during the warm-up
        "autoencoder": {"paper_scale": True, "max_epochs": 100, "autoencoder_args": {"softplus_beta": 1.0},
                        "loss#bound_weight": 1.0},
        "diffusion": {"paper_scale": True, "max_epochs": 200, "ema_momentum": 0.0002, "ema_warmup_iters": 2000,
                      "view_condition": True},
        "fidelity_images": 200,
    },
}


def scale_settings(scale: str, model: str | None = None) -> dict:
    """A deep copy of `SCALES[scale]` for generator `model` (default: the scale's): its "diffusion" settings are the
    scale's `diffusion_per_model[model]` updated with the shared "diffusion" ones, its "autoencoder" settings updated
    with `autoencoder_per_model[model]`, and label fidelity during training sampled as `study_sampling(model)`."""
    if scale not in SCALES:
        raise ConfigKeyError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    settings = copy.deepcopy(SCALES[scale])
    if model is not None:
        if model not in GENERATOR_MODELS:
            raise ConfigKeyError(f"--model {model!r}; expected one of {', '.join(GENERATOR_MODELS)}")
        settings["model"] = model
    per_model = settings.pop("diffusion_per_model", {})
    settings["diffusion"] = {**per_model.get(settings["model"], {}), **settings["diffusion"]}
    settings["autoencoder"].update(settings.pop("autoencoder_per_model", {}).get(settings["model"], {}))
    sampler, steps = study_sampling(settings["model"])
    settings["diffusion"].setdefault("fidelity_sampler", sampler)
    settings["diffusion"].setdefault("fidelity_steps", steps)
    return settings
