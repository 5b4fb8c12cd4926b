"""Label-to-image generator (Stojanovski et al. 2024): condition map (0..4) -> echo image in [0, 1], plus checkpoints.

Diffusion space: pixels x = 2 image - 1 in [-1, 1], or the Gamma-VAE latent `encode_for_diffusion(image, sector) *
latent_scale` (posterior mean mapped to clamp(2 z - 1, -1, 1), Stojanovski et al. 2024, Gamma-VAE section). `latent_scale` = 1.0 is the
paper's fixed mapping (a standardising 1 / std is not used: EDM's sigma_data = 0.5 already matches a [-1, 1] latent);
it is a config value stored in the generator checkpoint. Generated images are zero outside the sector (class 0).

Checkpoints hold tensors and plain numbers, strings, lists and dicts only, so `torch.load(weights_only=True)` reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import Inferer
from monai.networks.schedulers import Scheduler
from monai.networks.utils import one_hot
from monai.utils import convert_to_tensor
from torch import Tensor, nn

from echodiff.data.conditioning import N_CONDITION_CLASSES
from echodiff.errors import (
    ConfigKeyError,
    ConfigValueError,
    CorruptFileError,
    EchoDataError,
    LabelValueError,
    ShapeMismatchError,
)
from echodiff.io import atomic_write, read_torch_file
from echodiff.losses import EDMLoss, VELoss, VPLoss
from echodiff.losses.edm_loss import DenoisingLoss
from echodiff.networks import EDMPrecond, GammaVAE, Preconditioner, VEPrecond, VPPrecond
from echodiff.rng import Generators
from echodiff.samplers import ChurnSpec
from echodiff.samplers import sample as sample_ode
from echodiff.schedulers.sampling import (
    ddim_step,
    ddim_timesteps,
    scheduler_noise,
    scheduler_prior,
    scheduler_step,
)

__all__ = [
    "CONDITION_CLASSES",
    "GeneratorCheckpoint",
    "GeneratorInferer",
    "LabelToImageGenerator",
    "load_autoencoder",
    "load_generator",
    "save_autoencoder",
    "save_generator",
    "with_denoiser",
]

CONDITION_CLASSES = ("outside sector", "LV cavity", "in-sector tissue", "myocardium", "left atrium")
DDPM_SAMPLERS = ("ddpm", "ddim")
EDM_SIGMA_MIN, EDM_SIGMA_MAX = 0.002, 80.0  # Karras et al. 2022 sampling range, clipped to each preconditioner's own
PAPER_STEPS = 5  # Heun steps N of the paper's headline EDM-L64 result (NFE = 2 N - 1 = 9)

GENERATOR_FORMAT = "echodiff.generator"
AUTOENCODER_FORMAT = "echodiff.gamma_vae"
_CHECKPOINT_KEYS = {
    GENERATOR_FORMAT: ("model", "image_size", "noise", "latent_scale", "build_kwargs", "state_dict"),
    AUTOENCODER_FORMAT: ("build_kwargs", "state_dict"),
}
_CHECKPOINT_NAMES = {GENERATOR_FORMAT: "generator", AUTOENCODER_FORMAT: "Gamma-VAE autoencoder"}
_CHECKPOINT_HINTS = {
    GENERATOR_FORMAT: "train one with configs/train_diffusion.json (it writes models/generator_<model>.pt) or point "
    "generator_path at one",
    AUTOENCODER_FORMAT: "train it first with configs/train_autoencoder.json (it writes models/autoencoder.pt) or point "
    "autoencoder_path at one",
}
_LOSSES: dict[type[Preconditioner], Callable[..., DenoisingLoss]] = {
    EDMPrecond: lambda p, **kw: EDMLoss(sigma_data=p.sigma_data, **kw),
    VPPrecond: lambda p, **kw: VPLoss(beta_d=p.beta_d, beta_min=p.beta_min, epsilon_t=p.epsilon_t, **kw),
    VEPrecond: lambda p, **kw: VELoss(sigma_min=p.sigma_min, sigma_max=p.sigma_max, **kw),
}


class LabelToImageGenerator(nn.Module):
    """One of the six generators of Stojanovski et al. 2024: `sample` draws images, `training_loss` trains the denoiser.

    Built by `echodiff.generation.build_generator`. `denoiser` is a preconditioner D(x, sigma, cond) around a MONAI
    SPADEDiffusionModelUNet (vp, ve, edm*), or the UNet eps_theta(x_t, t, seg) itself with its DDPM `scheduler` (sdm).
    `autoencoder` (latent models only) is the frozen Gamma-VAE. `forward` is `training_loss`, so a
    DistributedDataParallel wrapper synchronises the denoiser's gradients.
    """

    def __init__(
        self,
        model: str,
        image_size: int,
        denoiser: nn.Module,
        noise: str = "gaussian",
        scheduler: Scheduler | None = None,
        autoencoder: GammaVAE | None = None,
        latent_scale: float = 1.0,
        build_kwargs: dict | None = None,
        loss: dict | None = None,
    ) -> None:
        super().__init__()
        if (scheduler is None) != isinstance(denoiser, Preconditioner):
            raise ConfigValueError(
                f"model {model!r}: expected either a Preconditioner denoiser without scheduler (EDM family) or a "
                "bare UNet with its DDPM scheduler (sdm)"
            )
        self.model, self.image_size, self.noise = model, image_size, noise
        self.denoiser, self.scheduler, self.autoencoder = denoiser, scheduler, autoencoder
        if autoencoder is not None:
            autoencoder.requires_grad_(False)
        self.latent_scale = float(latent_scale)
        self.build_kwargs = build_kwargs or {}
        if loss and scheduler is not None:
            raise ConfigValueError(f"loss={loss} sets the noise-level distribution of the EDM-family losses; model "
                                   f"{model!r} trains with the DDPM eps loss: leave it empty")  # fmt: skip
        try:
            self.loss = _LOSSES[type(denoiser)](denoiser, **(loss or {})) if scheduler is None else None
        except TypeError as err:
            raise ConfigKeyError(f"loss={loss} does not fit the loss of model {model!r}: {err}") from err

    def load_autoencoder_weights(self, path: str | Path) -> None:
        """Load the trained Gamma-VAE of a `save_autoencoder` file (stage 1) into this latent model's autoencoder.

        The file's GammaVAE arguments must equal those this generator was built with (CorruptFileError naming the
        differing keys otherwise); MissingFileError when the file is absent.
        """
        if self.autoencoder is None:
            raise ConfigValueError(
                f"autoencoder weights {path} given for the pixel-space model {self.model!r}; only "
                "edm_l128 and edm_l64 use an autoencoder"
            )
        checkpoint = read_autoencoder_checkpoint(path)
        found, expected = plain(checkpoint["build_kwargs"], "build_kwargs"), self.build_kwargs["autoencoder"]
        if found != expected:
            differ = sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))
            raise CorruptFileError(
                f"autoencoder checkpoint {path} holds a Gamma-VAE whose {differ} are "
                f"{[found.get(k) for k in differ]}; generator {self.model!r} was built with "
                f"{[expected.get(k) for k in differ]}"
            )
        load_state(self.autoencoder, checkpoint["state_dict"], path, "Gamma-VAE")

    @property
    def latent_factor(self) -> int:
        """Image size over the denoiser's grid size: the Gamma-VAE downsampling factor, 1 in pixel space."""
        return 1 if self.autoencoder is None else self.autoencoder.downsample_factor

    @property
    def channels(self) -> int:
        """Channels the denoiser diffuses: 1 image channel or the Gamma-VAE's latent channels."""
        return 1 if self.autoencoder is None else self.autoencoder.latent_channels

    @property
    def decoder_calls(self) -> int:
        """Autoencoder calls per `sample` beyond its `nfe`: one decode for latent models, none in pixel space."""
        return 0 if self.autoencoder is None else 1

    def condition(self, cond_map: Tensor) -> Tensor:
        """One-hot (B, 5, H, W) float32 of a (B, 1, H, W) condition map with classes 0..4 at `image_size`."""
        cond = convert_to_tensor(cond_map, track_meta=False)
        if cond.ndim != 4 or cond.shape[1] != 1:
            raise ShapeMismatchError(f"condition map has shape {tuple(cond.shape)}; expected (B, 1, H, W)")
        size = tuple(cond.shape[-2:])
        if size != (self.image_size, self.image_size):
            raise ShapeMismatchError(
                f"condition map is {size[0]} x {size[1]}; generator {self.model!r} makes {self.image_size} x "
                f"{self.image_size} images: resize the map (nearest) to {self.image_size} x {self.image_size}"
            )
        values = torch.unique(cond)
        if ((values < 0) | (values >= N_CONDITION_CLASSES) | (values != values.round())).any():
            shown = ", ".join(f"{v:g}" for v in values.tolist())
            names = ", ".join(f"{i} {name}" for i, name in enumerate(CONDITION_CLASSES))
            raise LabelValueError(
                f"condition map has values {{{shown}}}; expected condition classes 0..{N_CONDITION_CLASSES - 1} "
                f"({names})"
            )
        return one_hot(cond.round().long(), N_CONDITION_CLASSES, dtype=torch.float32, dim=1)

    def denoiser_condition(self, cond_map: Tensor) -> tuple[Tensor, Tensor]:
        """(one-hot map on the denoiser's grid (nearest), full-resolution sector mask (B, 1, H, W) = class > 0)."""
        cond = self.condition(cond_map)
        sector = 1 - cond[:, :1]
        if self.latent_factor > 1:
            cond = F.interpolate(cond, size=(self.image_size // self.latent_factor,) * 2, mode="nearest")
        return cond, sector

    def to_diffusion(self, images: Tensor, sector: Tensor) -> Tensor:
        """Diffusion-space sample of images in [0, 1]: 2 x - 1, or the Gamma-VAE posterior-mean latent * latent_scale."""
        if self.autoencoder is None:
            return images * 2 - 1
        with torch.no_grad():
            return self.autoencoder.encode_for_diffusion(images, sector) * self.latent_scale

    def from_diffusion(self, x: Tensor, sector: Tensor) -> Tensor:
        """Images in [0, 1], zero outside the sector: (x + 1) / 2, or `decode_from_diffusion(x / latent_scale)`."""
        if self.autoencoder is None:
            return ((x + 1) / 2).clamp(0, 1) * sector
        return self.autoencoder.decode_from_diffusion(x / self.latent_scale, sector)

    def training_loss(self, images: Tensor, cond_map: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Denoising loss of one batch: EDM/VP/VE loss (Karras et al. 2022, Eq. 2) in pixel or latent space, or for
        sdm ||eps - eps_theta(x_t, t, seg)||^2 with t ~ U{0..T-1} and Gaussian or Gamma eps (Ho et al. 2020, Alg. 1;
        Nachmani et al. 2021)."""
        cond, sector = self.denoiser_condition(cond_map)
        images = convert_to_tensor(images, track_meta=False, dtype=torch.float32)
        if images.shape != sector.shape:
            raise ShapeMismatchError(
                f"images have shape {tuple(images.shape)}; expected the condition map's {tuple(sector.shape)}"
            )
        x0 = self.to_diffusion(images, sector)
        if self.loss is not None:
            return self.loss(self.denoiser, x0, cond, generator)
        timesteps = torch.randint(
            self.scheduler.num_train_timesteps, (x0.shape[0],), generator=generator, device=x0.device
        )
        eps = scheduler_noise(self.scheduler, x0, timesteps, generator)
        x_t = self.scheduler.add_noise(x0, eps, timesteps)
        return F.mse_loss(self.denoiser(x_t, timesteps, seg=cond).float(), eps)

    def forward(self, images: Tensor, cond_map: Tensor) -> Tensor:
        """`training_loss` (the module call, so DDP synchronises gradients)."""
        return self.training_loss(images, cond_map)

    @torch.no_grad()
    def sample(
        self,
        cond_map: Tensor,
        sampler: str | None = None,
        steps: int | None = None,
        churn: ChurnSpec | None = None,
        generator: Generators = None,
        callback: Callable[[int, Tensor, float, Tensor], None] | None = None,
        noise: Tensor | None = None,
    ) -> tuple[Tensor, int]:
        """Images (B, 1, H, W) in [0, 1], zero outside the sector, and the NFE (denoiser calls).

        EDM family: `sampler` "heun" (default, NFE 2 N - 1), "euler" or "dpmpp_2m" (NFE N) over N = `steps` (default 5)
        Karras sigmas (Eq. 5) in [max(0.002, sigma_min), min(80, sigma_max)] of the preconditioner, `churn` optional
        (Alg. 2). sdm: "ddpm" (default: every one of the T scheduler steps) or "ddim" (eta 0, `steps` of them); NFE =
        steps. Latent models decode once more (`decoder_calls`, not in the NFE). `callback(i, x, noise_level,
        prediction)` sees each step's input and the network's denoised sample (EDM family) or eps (sdm).
        `noise` (EDM family): the unit start noise n of x_0 = sigma_max n, shaped like the diffusion variable
        (`diffusion_shape`), instead of drawing it from `generator`; with churn None it is the only randomness, so a
        caller can seed every image on its own and still sample the batch in one pass. `generator` may also be one
        generator per image (`echodiff.rng`): every image then draws all its noise from its own generator, as if
        sampled alone.
        """
        if steps is not None and (int(steps) != steps or steps < 1):
            raise ConfigValueError(f"steps={steps!r}; expected a whole number of sampling steps >= 1")
        cond, sector = self.denoiser_condition(cond_map)
        shape = (cond.shape[0], self.channels, *cond.shape[-2:])
        if noise is not None and (self.loss is None or tuple(noise.shape) != shape):
            raise ConfigValueError(
                f"noise of shape {tuple(noise.shape)}: start noise applies to the EDM-family models with shape {shape}"
            )
        if self.loss is None:
            x, nfe = self._sample_ddpm(cond, shape, sampler or "ddpm", steps, churn, generator, callback)
        else:
            x, nfe = sample_ode(
                self.denoiser, shape if noise is None else noise.to(cond.device), sampler=sampler or "heun", steps=steps or PAPER_STEPS, schedule="karras",
                churn=churn, generator=generator, cond=cond, callback=callback, device=cond.device,
                sigma_min=max(EDM_SIGMA_MIN, self.denoiser.sigma_min),
                sigma_max=min(EDM_SIGMA_MAX, self.denoiser.sigma_max),
            )  # fmt: skip
        return self.from_diffusion(x, sector), nfe

    def diffusion_shape(self, cond_map: Tensor) -> tuple[int, ...]:
        """Shape of the variable the sampler integrates for `cond_map`: the image, or the latent of edm_l*."""
        height, width = cond_map.shape[-2:]
        return (cond_map.shape[0], self.channels, height // self.latent_factor, width // self.latent_factor)

    def _sample_ddpm(
        self,
        cond: Tensor,
        shape: tuple[int, ...],
        sampler: str,
        steps: int | None,
        churn: ChurnSpec | None,
        generator: Generators,
        callback: Callable[[int, Tensor, float, Tensor], None] | None,
    ) -> tuple[Tensor, int]:
        """Reverse DDPM (Ho et al. 2020, Alg. 2) through the scheduler's `step`, or DDIM (Song et al. 2021, Eq. 12)
        on `ddim_timesteps`; Gamma schedulers start from their Gamma prior and draw Gamma noise."""
        if sampler not in DDPM_SAMPLERS:
            raise ConfigKeyError(
                f"sampler {sampler!r} does not apply to the DDPM-type model {self.model!r}; expected one of "
                f"{', '.join(DDPM_SAMPLERS)}"
            )
        if churn is not None:
            raise ConfigValueError(
                f"churn={churn} applies to the EDM-family samplers (vp, ve, edm, edm_l128, edm_l64); {self.model!r} "
                "samples with DDPM/DDIM steps: pass churn=None"
            )
        num_train_timesteps = self.scheduler.num_train_timesteps
        steps = num_train_timesteps if steps is None else int(steps)
        if sampler == "ddpm" and steps != num_train_timesteps:
            raise ConfigValueError(
                f"steps={steps} with sampler 'ddpm': DDPM takes every one of the T={num_train_timesteps} steps (steps="
                f"None or {num_train_timesteps}); use sampler 'ddim' for fewer steps"
            )
        if steps > num_train_timesteps:
            raise ConfigValueError(f"steps={steps}; expected 1..T={num_train_timesteps} DDIM steps")
        grid = list(range(num_train_timesteps - 1, -1, -1)) if sampler == "ddpm" else ddim_timesteps(
            num_train_timesteps, steps
        )  # fmt: skip
        x = scheduler_prior(self.scheduler, torch.empty(shape, device=cond.device), generator)
        for i, (t, t_prev) in enumerate(zip(grid, [*grid[1:], -1])):
            timesteps = torch.full((shape[0],), t, dtype=torch.long, device=cond.device)
            eps = self.denoiser(x, timesteps, seg=cond).float()
            if callback is not None:
                callback(i, x, float(t), eps)
            if sampler == "ddpm":
                x = scheduler_step(self.scheduler, eps, t, x, generator).float()  # Gamma steps compute in float64
            else:
                x = ddim_step(self.scheduler, eps, t, t_prev, x, 0.0, generator)
        return x, len(grid)


def with_denoiser(generator: LabelToImageGenerator, denoiser: nn.Module) -> LabelToImageGenerator:
    """A generator identical to `generator` but sampling with `denoiser` (same architecture, e.g. an exponential
    moving average of its weights, Karras et al. 2022 section 5); the autoencoder and scheduler are shared, not
    copied, so weights loaded into them later are seen by both."""
    if type(denoiser) is not type(generator.denoiser):
        raise ConfigValueError(
            f"denoiser is a {type(denoiser).__name__}; generator {generator.model!r} samples with a "
            f"{type(generator.denoiser).__name__}"
        )
    return LabelToImageGenerator(
        generator.model, generator.image_size, denoiser, noise=generator.noise, scheduler=generator.scheduler,
        autoencoder=generator.autoencoder, latent_scale=generator.latent_scale, build_kwargs=generator.build_kwargs,
        loss=generator.build_kwargs.get("loss"),
    )  # fmt: skip


class GeneratorInferer(Inferer):
    """MONAI Inferer for SupervisedEvaluator: `inferer(cond_map, generator)` -> generated images (B, 1, H, W).

    One torch.Generator seeded with `seed` serves all batches in order, so a rerun with the same seed, batch size and
    data order gives the same images. `nfe` holds the network calls of the last batch.
    """

    def __init__(
        self, sampler: str | None = None, steps: int | None = None, churn: ChurnSpec | None = None, seed: int = 0
    ) -> None:
        super().__init__()
        self.sampler, self.steps, self.churn, self.seed = sampler, steps, churn, seed
        self.random: torch.Generator | None = None
        self.nfe = 0

    def __call__(self, inputs: Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> Tensor:  # type: ignore[override]
        if self.random is None or self.random.device != inputs.device:
            self.random = torch.Generator(inputs.device).manual_seed(self.seed)
        images, self.nfe = network.sample(
            inputs, sampler=self.sampler, steps=self.steps, churn=self.churn, generator=self.random
        )
        return images


class GeneratorCheckpoint(nn.Module):
    """The generator in a `save_generator` file, loaded at its first use: bundle configs are instantiated (property
    checks, workflow initialisation) before training has written the file. `sample` forwards to the generator."""

    def __init__(
        self, path: str | Path, map_location: str | torch.device = "cpu", autoencoder_path: str | Path | None = None
    ) -> None:
        super().__init__()
        self.path, self.map_location, self.autoencoder_path = path, map_location, autoencoder_path
        self._generator: LabelToImageGenerator | None = None

    @property
    def generator(self) -> LabelToImageGenerator:
        """The loaded generator (`load_generator`, in eval mode)."""
        if self._generator is None:
            self._generator = load_generator(self.path, self.map_location, self.autoencoder_path).eval()
        return self._generator

    def sample(self, cond_map: Tensor, **kwargs: Any) -> tuple[Tensor, int]:
        """`LabelToImageGenerator.sample` of the loaded generator."""
        return self.generator.sample(cond_map, **kwargs)


def plain(value: Any, what: str) -> Any:
    """`value` as checkpoint-safe data: tensors (moved to CPU), str, int, float, bool, None, lists and str-keyed dicts
    (tuples become lists); anything else raises ConfigValueError naming `what`."""
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v, what) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: plain(v, what) for k, v in value.items()}
    raise ConfigValueError(
        f"{what} holds {value!r} ({type(value).__name__}); checkpoints store only tensors, numbers, strings, lists and "
        "str-keyed dicts"
    )


def _write_checkpoint(path: str | Path, checkpoint: dict, extra: dict | None) -> Path:
    clash = sorted(set(extra or {}) & set(checkpoint))
    if clash:
        raise ConfigValueError(f"extra keys {clash} are reserved checkpoint fields; rename them")
    checkpoint.update(plain(dict(extra or {}), "extra"))
    path = Path(path)
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp), suffix=".pt")
    return path


def save_generator(path: str | Path, generator: LabelToImageGenerator, extra: dict | None = None) -> Path:
    """Write the generator atomically: {"format", "model", "image_size", "noise", "latent_scale", "build_kwargs",
    "state_dict", **extra} (state_dict includes the Gamma-VAE of latent models); returns the path."""
    checkpoint = {
        "format": GENERATOR_FORMAT,
        "model": generator.model,
        "image_size": int(generator.image_size),
        "noise": generator.noise,
        "latent_scale": float(generator.latent_scale),
        "build_kwargs": plain(generator.build_kwargs, "build_kwargs"),
        "state_dict": plain(dict(generator.state_dict()), "state_dict"),
    }
    return _write_checkpoint(path, checkpoint, extra)


def save_autoencoder(
    path: str | Path, autoencoder: GammaVAE, build_kwargs: dict, extra: dict | None = None
) -> Path:
    """Write a Gamma-VAE atomically: {"format", "build_kwargs" (its GammaVAE arguments), "state_dict", **extra}."""
    checkpoint = {
        "format": AUTOENCODER_FORMAT,
        "build_kwargs": plain(build_kwargs, "build_kwargs"),
        "state_dict": plain(dict(autoencoder.state_dict()), "state_dict"),
    }
    return _write_checkpoint(path, checkpoint, extra)


def _read_checkpoint(path: str | Path, expected: str, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint dict at `path` after checking it is a file of format `expected` with all its fields."""
    path, name = Path(path), _CHECKPOINT_NAMES[expected]
    checkpoint = read_torch_file(path, f"{name} checkpoint", _CHECKPOINT_HINTS[expected], map_location)
    found = checkpoint.get("format") if isinstance(checkpoint, dict) else None
    if found != expected:
        if found in _CHECKPOINT_NAMES:
            holds = f"format {found!r} (a {_CHECKPOINT_NAMES[found]} checkpoint)"
        elif isinstance(checkpoint, dict):
            holds = f"a dict with keys {sorted(map(str, checkpoint))[:8]}"
        else:
            holds = f"a {type(checkpoint).__name__}"
        raise CorruptFileError(f"{path} is not a {name} checkpoint: it holds {holds}; expected format {expected!r}")
    missing = [key for key in _CHECKPOINT_KEYS[expected] if key not in checkpoint]
    if missing:
        raise CorruptFileError(f"{name} checkpoint {path} lacks the fields {missing}")
    return checkpoint


def read_autoencoder_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The dict of a `save_autoencoder` file ({"build_kwargs", "state_dict", ...}), checked."""
    return _read_checkpoint(path, AUTOENCODER_FORMAT, map_location)


def load_state(module: nn.Module, state_dict: dict[str, Tensor], path: str | Path, what: str) -> None:
    """`module.load_state_dict(state_dict)`, or CorruptFileError naming `path` and the keys and shapes that differ."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    resized = [
        f"{k} {tuple(state_dict[k].shape)} instead of {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state_dict))
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or resized:
        parts = [
            f"{label} ({len(items)}): {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}"
            for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shapes", resized))
            if items
        ]
        raise CorruptFileError(
            f"{path}: its state_dict does not match the {what} its build_kwargs describe; {'; '.join(parts)}"
        )
    module.load_state_dict(state_dict)


def load_autoencoder(path: str | Path, map_location: str | torch.device = "cpu") -> GammaVAE:
    """The Gamma-VAE of a `save_autoencoder` file, on `map_location`."""
    checkpoint = read_autoencoder_checkpoint(path, map_location)
    try:
        autoencoder = GammaVAE(**checkpoint["build_kwargs"])
    except (TypeError, ValueError) as err:
        raise CorruptFileError(
            f"autoencoder checkpoint {path} records GammaVAE arguments {checkpoint['build_kwargs']} that build no "
            f"Gamma-VAE ({err})"
        ) from err
    load_state(autoencoder, checkpoint["state_dict"], path, "Gamma-VAE")
    return autoencoder.to(map_location)


def load_generator(
    path: str | Path, map_location: str | torch.device = "cpu", autoencoder_path: str | Path | None = None
) -> LabelToImageGenerator:
    """The generator of a `save_generator` file, on `map_location`.

    `autoencoder_path` (latent models only): a `save_autoencoder` file whose weights replace the stored Gamma-VAE's
    (`LabelToImageGenerator.load_autoencoder_weights`).
    """
    from echodiff.generation.models import (
        build_generator,  # models builds on this module
    )

    checkpoint = _read_checkpoint(path, GENERATOR_FORMAT, map_location)
    try:
        generator = build_generator(**checkpoint["build_kwargs"], latent_scale=checkpoint["latent_scale"])
    except (EchoDataError, TypeError) as err:
        raise CorruptFileError(
            f"generator checkpoint {path} records build_kwargs that build no generator ({type(err).__name__}: {err})"
        ) from err
    load_state(generator, checkpoint["state_dict"], path, f"{generator.model!r} generator")
    if autoencoder_path is not None:
        generator.load_autoencoder_weights(autoencoder_path)
    return generator.to(map_location)
