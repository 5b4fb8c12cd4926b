"""The six label-to-image generators compared by Stojanovski et al. 2024 (their Table 1), built from MONAI parts.

| model      | space            | formulation (training / sampling)                         | denoiser grid |
|------------|------------------|-----------------------------------------------------------|---------------|
| `sdm`      | pixels           | DDPM eps-prediction, T = 1000 cosine; DDPM or DDIM steps  | image         |
| `vp`       | pixels           | VP preconditioning + VPLoss (Karras et al. 2022, Table 1) | image         |
| `ve`       | pixels           | VE preconditioning + VELoss                               | image         |
| `edm`      | pixels           | EDM preconditioning + EDMLoss; Heun / Euler / DPM++ 2M    | image         |
| `edm_l128` | Gamma-VAE latent | EDM; 2 VAE levels: latent = image / 2 (128 at 256 px)     | image / 2     |
| `edm_l64`  | Gamma-VAE latent | EDM; 3 VAE levels: latent = image / 4 (64 at 256 px)      | image / 4     |

Every denoiser is MONAI's `SPADEDiffusionModelUNet` (label map through SPADE in the decoder blocks); vp/ve/edm* wrap it in
`echodiff.networks` preconditioning. With `view_condition` the UNet also takes the apical view (2CH / 4CH, the classes of
`echodiff.data.VIEW_CLASSES`) as MONAI's class embedding (`num_class_embeds`, added to the time embedding). Gamma noise (Nachmani et al. 2021) exists for DDPM-type models only: `sdm`.

Paper-scale sizes (`PAPER_SCALE_NETWORKS`, at the paper's 256 x 256 images) and what differs from the paper:
- SDM (ADM-style UNet): base 256, multipliers (1, 1, 2, 2, 4, 4), 2 blocks, attention at 32/16/8 with 64-channel heads.
  The paper learns the variance (2 output channels, hybrid loss); here the variance is fixed (the scheduler's
  `variance_type`: MONAI's "fixed_small" for Gaussian, the Gamma paper's "fixed_large" for Gamma noise), 1 output channel,
  plain eps MSE.
- EDM / EDM-L128 / EDM-L64 (ADM as in EDM's DhariwalUNet): base 192, multipliers (1, 2, 3, 4), 3 blocks, attention at
  resolutions 32/16/8 (so at different levels on the 256, 128 and 64 grids), 64-channel heads.
- VP / VE (DDPM++ / NCSN++, EDM's SongUNet): base 128, multipliers (2, 2, 2), 4 blocks, one attention head. Their
  "attention at 16" refers to 32 px CIFAR; at 256 px no level of this 3-level UNet is 16 x 16, so only MONAI's
  middle-block attention (at 64 x 64) remains.
- Gamma-VAE: channels 64 * i per level, 2 residual blocks, attention at the deepest level, 1 latent channel.
- All UNets are MONAI's: residual blocks add the time embedding (no ADM scale-shift norm), resblock up/downsampling, no
  dropout, no FIR resampling / skip rescaling / Fourier features of NCSN++, and noise levels enter as MONAI timesteps
  through the affine maps of `echodiff.networks.preconditioning`. No EMA of the weights is kept.
At other image sizes the paper-scale attention stays at the same levels (depths), not at the same resolutions.

Without `paper_scale` the defaults are small CPU-friendly networks (`DEFAULT_NETWORKS`); `network` / `autoencoder` dicts
override single arguments of either.
"""

from __future__ import annotations

import inspect

from monai.networks.nets import SPADEDiffusionModelUNet
from torch import nn

from echodiff.data.conditioning import N_CONDITION_CLASSES
from echodiff.data.views import VIEW_CLASSES
from echodiff.errors import ConfigKeyError, ConfigValueError, as_flag
from echodiff.generation.checkpoint_files import checkpoint_safe
from echodiff.generation.generator import LabelToImageGenerator
from echodiff.networks import GammaVAE, build_precond
from echodiff.schedulers import NOISE_SCHEDULERS, get_noise_scheduler

__all__ = [
    "DEFAULT_NETWORKS",
    "GENERATOR_MODELS",
    "LATENT_MODELS",
    "NOISE_KINDS",
    "PAPER_SCALE_NETWORKS",
    "autoencoder_kwargs",
    "build_autoencoder",
    "build_generator",
    "checked_model",
]

GENERATOR_MODELS = ("sdm", "vp", "ve", "edm", "edm_l128", "edm_l64")
LATENT_MODELS = {"edm_l128": 2, "edm_l64": 4}  # downsampling factor of the Gamma-VAE latent
PRECONDITIONING = {"vp": "vp", "ve": "ve", "edm": "edm", "edm_l128": "edm", "edm_l64": "edm"}
NOISE_KINDS = tuple(NOISE_SCHEDULERS)
GAMMA_NOISE_MODELS = ("sdm",)
SDM_SCHEDULER = {"num_train_timesteps": 1000, "schedule": "cosine"}  # SDM: T = 1000, cosine schedule

_ADM = dict(channels=(192, 384, 576, 768), num_res_blocks=3, num_head_channels=64, norm_num_groups=32,
            resblock_updown=True, spade_intermediate_channels=128)  # fmt: skip
_SONG = dict(channels=(256, 256, 256), num_res_blocks=4, attention_levels=(False, False, False), num_head_channels=256,
             norm_num_groups=32, resblock_updown=True, spade_intermediate_channels=128)  # fmt: skip
_PAPER_VAE = dict(num_res_blocks=2, norm_num_groups=32, latent_channels=1)

PAPER_SCALE_NETWORKS: dict[str, dict] = {
    "sdm": {"network": dict(
        channels=(256, 256, 512, 512, 1024, 1024), num_res_blocks=2,
        attention_levels=(False, False, False, True, True, True), num_head_channels=64, norm_num_groups=32,
        resblock_updown=True, spade_intermediate_channels=128,
    )},  # fmt: skip
    "vp": {"network": _SONG},
    "ve": {"network": _SONG},
    "edm": {"network": {**_ADM, "attention_levels": (False, False, False, True)}},  # grid 256: attention at 32
    "edm_l128": {
        "network": {**_ADM, "attention_levels": (False, False, True, True)},  # grid 128: attention at 32, 16
        "autoencoder": {**_PAPER_VAE, "channels": (64, 128)},
    },
    "edm_l64": {
        "network": {**_ADM, "attention_levels": (False, True, True, True)},  # grid 64: attention at 32, 16, 8
        "autoencoder": {**_PAPER_VAE, "channels": (64, 128, 192)},
    },
}

_SMALL_UNET = dict(channels=(32, 64, 64), attention_levels=(False, False, True), num_res_blocks=1,
                   num_head_channels=32, norm_num_groups=16, spade_intermediate_channels=32)  # fmt: skip
_SMALL_VAE = dict(num_res_blocks=1, norm_num_groups=16, latent_channels=1)

DEFAULT_NETWORKS: dict[str, dict] = {
    **{model: {"network": _SMALL_UNET} for model in ("sdm", "vp", "ve", "edm")},
    "edm_l128": {"network": _SMALL_UNET, "autoencoder": {**_SMALL_VAE, "channels": (32, 64)}},
    "edm_l64": {"network": _SMALL_UNET, "autoencoder": {**_SMALL_VAE, "channels": (32, 64, 64)}},
}

_UNET_FIXED = ("self", "spatial_dims", "in_channels", "out_channels", "label_nc", "num_class_embeds")
_VAE_FIXED = ("self", "spatial_dims", "in_channels")


def checked_model(model: str) -> str:
    """`model` when it is one of `GENERATOR_MODELS`, else a `ConfigKeyError` listing them."""
    if model not in GENERATOR_MODELS:
        raise ConfigKeyError(f"unknown generator model {model!r}; expected one of {', '.join(GENERATOR_MODELS)}")
    return model


def _merged(base: dict, overrides: dict | None, target: type[nn.Module], fixed: tuple[str, ...], what: str) -> dict:
    """`base` updated with `overrides`, refusing keys that `target` does not take (or that the generator sets)."""
    overrides = dict(overrides or {})
    allowed = [name for name in inspect.signature(target.__init__).parameters if name not in fixed]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ConfigKeyError(f"{what} has unknown keys {unknown}; expected keys of {target.__name__}: {allowed}")
    return checkpoint_safe({**base, **overrides}, what)


def autoencoder_kwargs(model: str, autoencoder: dict | None = None, paper_scale: bool = False) -> dict:
    """GammaVAE arguments for the latent model `model`: paper-scale or small defaults updated with `autoencoder`.

    The number of levels sets the latent grid (edm_l128: 2 levels, image / 2; edm_l64: 3 levels, image / 4).
    """
    if checked_model(model) not in LATENT_MODELS:
        raise ConfigValueError(
            f"model {model!r} works in pixel space and uses no autoencoder; the Gamma-VAE serves the latent models "
            f"{', '.join(LATENT_MODELS)}"
        )
    base = (PAPER_SCALE_NETWORKS if as_flag(paper_scale, "paper_scale") else DEFAULT_NETWORKS)[model]["autoencoder"]
    kwargs = _merged(base, autoencoder, GammaVAE, _VAE_FIXED, "autoencoder")
    levels, factor = len(kwargs["channels"]), LATENT_MODELS[model]
    if 2 ** (levels - 1) != factor:
        raise ConfigValueError(
            f"autoencoder channels={tuple(kwargs['channels'])} make a Gamma-VAE with {levels} levels (latent = image / "
            f"{2 ** (levels - 1)}); model {model!r} needs {factor.bit_length()} levels (latent = image / {factor})"
        )
    return kwargs


def build_autoencoder(model: str, autoencoder: dict | None = None, paper_scale: bool = False) -> GammaVAE:
    """The Gamma-VAE of latent model `model` (Stojanovski et al. 2024), arguments from `autoencoder_kwargs`."""
    return GammaVAE(**autoencoder_kwargs(model, autoencoder, paper_scale))


def _check_grid(model: str, image_size: int, factor: int, network: dict) -> None:
    """The denoiser's grid (image / factor) must halve cleanly at each of its len(channels) - 1 downsamplings."""
    divisor = factor * 2 ** (len(network["channels"]) - 1)
    if not isinstance(image_size, int) or image_size < divisor or image_size % divisor:
        raise ConfigValueError(
            f"image_size={image_size!r} for model {model!r}: expected a multiple of {divisor} (latent factor {factor} "
            f"x 2**(len(channels) - 1) UNet downsamplings, channels={tuple(network['channels'])})"
        )


def build_generator(
    model: str,
    image_size: int,
    noise: str = "gaussian",
    network: dict | None = None,
    autoencoder: dict | None = None,
    paper_scale: bool = False,
    diffusion: dict | None = None,
    latent_scale: float = 1.0,
    loss: dict | None = None,
    view_condition: bool = False,
) -> LabelToImageGenerator:
    """One of `GENERATOR_MODELS`, untrained, making `image_size` x `image_size` images from condition maps.

    Args:
        model: "sdm", "vp", "ve", "edm", "edm_l128" or "edm_l64" (see the module table).
        image_size: image height = width in pixels.
        noise: "gaussian", or "gamma" (Nachmani et al. 2021) for the DDPM-type model "sdm" only.
        network: SPADEDiffusionModelUNet arguments overriding the defaults (or the paper's sizes with `paper_scale`).
        autoencoder: GammaVAE arguments overriding the defaults (latent models; pixel models ignore it).
        paper_scale: start from `PAPER_SCALE_NETWORKS` instead of the small `DEFAULT_NETWORKS`.
        diffusion: formulation arguments: the noise scheduler's for "sdm" (default T = 1000, "cosine"; e.g.
            {"num_train_timesteps": 4} for a tiny test), the preconditioner's for the others (e.g. {"sigma_data": 0.5}).
        latent_scale: multiplies the Gamma-VAE's diffusion latent clamp(2 z - 1, -1, 1) (Stojanovski et al. 2024);
            1.0 keeps the paper's fixed mapping. Stored in the generator checkpoint.
        loss: arguments of the training loss of the EDM family, e.g. {"P_mean": -0.4, "P_std": 1.2} for EDM's
            log-normal noise-level distribution (Karras et al. 2022, Table 1; default P_mean -1.2); empty for sdm.
        view_condition: the denoiser also takes the view (2CH / 4CH) of each map as a class label, so `sample` and
            `training_loss` need `views`; recorded in the checkpoint (a checkpoint without it is a view-free model).

    The Gamma-VAE of a latent model is untrained: load stage 1's weights with `load_autoencoder_weights`.
    """
    checked_model(model)
    if noise not in NOISE_KINDS:
        raise ConfigKeyError(f"unknown noise {noise!r}; expected one of {', '.join(NOISE_KINDS)}")
    if noise != "gaussian" and model not in GAMMA_NOISE_MODELS:
        raise ConfigValueError(
            f"noise {noise!r} is defined for the DDPM-type model {', '.join(GAMMA_NOISE_MODELS)} only (Gamma DDPM/DDIM, "
            f"Nachmani et al. 2021); {', '.join(m for m in GENERATOR_MODELS if m not in GAMMA_NOISE_MODELS)} train and "
            "sample with Gaussian noise N(0, sigma^2 I)"
        )
    paper_scale = as_flag(paper_scale, "paper_scale")
    sizes = PAPER_SCALE_NETWORKS if paper_scale else DEFAULT_NETWORKS
    network_kwargs = _merged(sizes[model]["network"], network, SPADEDiffusionModelUNet, _UNET_FIXED, "network")
    factor = LATENT_MODELS.get(model, 1)
    _check_grid(model, image_size, factor, network_kwargs)

    vae_kwargs = autoencoder_kwargs(model, autoencoder, paper_scale) if model in LATENT_MODELS else None
    vae = GammaVAE(**vae_kwargs) if vae_kwargs is not None else None
    channels = vae.latent_channels if vae is not None else 1
    view_condition = as_flag(view_condition, "view_condition")
    unet = SPADEDiffusionModelUNet(
        spatial_dims=2, in_channels=channels, out_channels=channels, label_nc=N_CONDITION_CLASSES,
        num_class_embeds=len(VIEW_CLASSES) if view_condition else None, **network_kwargs,
    )
    scheduler = None
    diffusion_kwargs = checkpoint_safe({**(SDM_SCHEDULER if model == "sdm" else {}), **(diffusion or {})}, "diffusion")
    try:
        if model == "sdm":
            scheduler = get_noise_scheduler(noise, "ddpm", **diffusion_kwargs)
            denoiser: nn.Module = unet
        else:
            denoiser = build_precond(PRECONDITIONING[model], unet, **diffusion_kwargs)
    except TypeError as err:
        what = "the DDPM noise scheduler" if model == "sdm" else f"{PRECONDITIONING[model].upper()} preconditioning"
        raise ConfigKeyError(f"diffusion={diffusion_kwargs} does not fit {what} of model {model!r}: {err}") from err
    loss_kwargs = checkpoint_safe(dict(loss or {}), "loss")
    build_kwargs = dict(
        model=model, image_size=image_size, noise=noise, network=network_kwargs, autoencoder=vae_kwargs,
        diffusion=diffusion_kwargs, **({"loss": loss_kwargs} if loss_kwargs else {}),
        **({"view_condition": True} if view_condition else {}),
    )  # fmt: skip
    return LabelToImageGenerator(
        model, image_size, denoiser, noise=noise, scheduler=scheduler, autoencoder=vae,
        latent_scale=float(latent_scale), build_kwargs=build_kwargs, loss=loss_kwargs,
    )  # fmt: skip

