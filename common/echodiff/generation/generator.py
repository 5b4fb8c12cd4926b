"""Label-to-image generator (Stojanovski et al. 2024): condition map (0..4) -> echo image in [0, 1].

Diffusion space: pixels x = 2 image - 1 in [-1, 1], or the Gamma-VAE latent `encode_for_diffusion(image, sector) *
latent_scale` (posterior mean mapped to clamp(2 z - 1, -1, 1), Stojanovski et al. 2024, Gamma-VAE section). `latent_scale` = 1.0 is the
paper's fixed mapping (a standardising 1 / std is not used: EDM's sigma_data = 0.5 already matches a [-1, 1] latent);
it is a config value stored in the generator checkpoint. Generated images are zero outside the sector (class 0).

The view: a generator built with `view_condition` takes the apical view of each map (2CH / 4CH, by name or class of
`echodiff.data.VIEW_CLASSES`) as `views`, passed to its UNet as MONAI's `class_labels`; without a view it refuses to
run. A view-free generator (e.g. an older checkpoint) ignores the views it is given and logs that once.

Saving and loading: `echodiff.generation.checkpoints`; the MONAI inferer: `echodiff.generation.inferer`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.networks.schedulers import Scheduler
from monai.networks.utils import one_hot
from monai.utils import convert_to_tensor
from torch import Tensor, nn

from echodiff.data.conditioning import N_CONDITION_CLASSES, checked_condition_map
from echodiff.data.views import VIEW_CLASSES, view_indices
from echodiff.errors import ConfigKeyError, ConfigValueError, CorruptFileError, ShapeMismatchError
from echodiff.generation.checkpoint_files import checkpoint_safe, load_state, read_autoencoder_checkpoint
from echodiff.losses import EDMLoss, VELoss, VPLoss
from echodiff.losses.edm_loss import DenoisingLoss
from echodiff.networks import EDMPrecond, GammaVAE, Preconditioner, VEPrecond, VPPrecond
from echodiff.rng import Generators
from echodiff.samplers import ChurnSpec
from echodiff.samplers import sample as sample_ode
from echodiff.schedulers.sampling import STEP_RULES, reverse_diffusion, reverse_grid, scheduler_noise, scheduler_prior

__all__ = ["LabelToImageGenerator", "with_denoiser"]

EDM_SIGMA_MIN, EDM_SIGMA_MAX = 0.002, 80.0  # Karras et al. 2022 sampling range, clipped to each preconditioner's own
PAPER_STEPS = 5  # Heun steps N of the paper's headline EDM-L64 result (NFE = 2 N - 1 = 9)
Views = str | int | Sequence[str | int] | Tensor  # one view per map (or one for all): "2CH" / "4CH" or 0 / 1

logger = logging.getLogger(__name__)

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
        self._reported_unused_views = False
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
        found, expected = checkpoint_safe(checkpoint["build_kwargs"], "build_kwargs"), self.build_kwargs["autoencoder"]
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

    @property
    def view_conditioned(self) -> bool:
        """Whether the denoiser's UNet takes the view as a class label (built with `view_condition`)."""
        unet = self.denoiser.model if isinstance(self.denoiser, Preconditioner) else self.denoiser
        return getattr(unet, "num_class_embeds", None) is not None

    def class_labels(self, views: Views | None, batch_size: int, device: torch.device) -> Tensor | None:
        """(B,) view classes for the UNet, or None for a view-free generator (whose given views are ignored, logged
        once). One view serves the whole batch; a view-conditioned generator without views raises ConfigValueError."""
        if not self.view_conditioned:
            if views is not None and not self._reported_unused_views:
                logger.warning(f"generator {self.model!r} was trained without the view (no view_condition): the views "
                               "given are unused")  # fmt: skip
                self._reported_unused_views = True
            return None
        if views is None:
            raise ConfigValueError(
                f"generator {self.model!r} is conditioned on the view: pass views, one per map "
                f"({' or '.join(VIEW_CLASSES.values())}, or their classes {' / '.join(map(str, VIEW_CLASSES))})"
            )
        labels = view_indices(views, "views")
        if labels.numel() == 1:
            labels = labels.expand(batch_size)
        if labels.numel() != batch_size:
            raise ShapeMismatchError(f"{labels.numel()} views for {batch_size} condition maps; expected one per map "
                                     "or one for all")  # fmt: skip
        return labels.to(device)

    def _conditioned(self, class_labels: Tensor | None) -> nn.Module | Callable[..., Tensor]:
        """The denoiser, with the view classes bound as its `class_labels` when given."""
        return self.denoiser if class_labels is None else partial(self.denoiser, class_labels=class_labels)

    def condition(self, cond_map: Tensor) -> Tensor:
        """One-hot (B, 5, H, W) float32 of a (B, 1, H, W) condition map with classes 0..4 at `image_size` (values checked
        by `sample`, for maps made by hand; training maps come from `SectorConditionMapd` on checked labels)."""
        cond = convert_to_tensor(cond_map, track_meta=False)
        if cond.ndim != 4 or cond.shape[1] != 1:
            raise ShapeMismatchError(f"condition map has shape {tuple(cond.shape)}; expected (B, 1, H, W)")
        size = tuple(cond.shape[-2:])
        if size != (self.image_size, self.image_size):
            raise ShapeMismatchError(
                f"condition map is {size[0]} x {size[1]}; generator {self.model!r} makes {self.image_size} x "
                f"{self.image_size} images: resize the map (nearest) to {self.image_size} x {self.image_size}"
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

    def training_loss(
        self, images: Tensor, cond_map: Tensor, generator: torch.Generator | None = None, *, views: Views | None = None
    ) -> Tensor:
        """Denoising loss of one batch: EDM/VP/VE loss (Karras et al. 2022, Eq. 2) in pixel or latent space, or for
        sdm ||eps - eps_theta(x_t, t, seg)||^2 with t ~ U{0..T-1} and Gaussian or Gamma eps (Ho et al. 2020, Alg. 1;
        Nachmani et al. 2021); `views` as in `sample`."""
        cond, sector = self.denoiser_condition(cond_map)
        class_labels = self.class_labels(views, cond.shape[0], cond.device)
        images = convert_to_tensor(images, track_meta=False, dtype=torch.float32)
        if images.shape != sector.shape:
            raise ShapeMismatchError(
                f"images have shape {tuple(images.shape)}; expected the condition map's {tuple(sector.shape)}"
            )
        x0 = self.to_diffusion(images, sector)
        if self.loss is not None:
            return self.loss(self._conditioned(class_labels), x0, cond, generator)
        timesteps = torch.randint(
            self.scheduler.num_train_timesteps, (x0.shape[0],), generator=generator, device=x0.device
        )
        eps = scheduler_noise(self.scheduler, x0, timesteps, generator)
        x_t = self.scheduler.add_noise(x0, eps, timesteps)
        return F.mse_loss(self._conditioned(class_labels)(x_t, timesteps, seg=cond).float(), eps)

    def forward(self, images: Tensor, cond_map: Tensor, views: Views | None = None) -> Tensor:
        """`training_loss` (the module call, so DDP synchronises gradients)."""
        return self.training_loss(images, cond_map, views=views)

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
        views: Views | None = None,
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
        sampled alone. A map with values outside 0..4 raises `LabelValueError` naming them. `views`: the view of
        each map ("2CH" / "4CH" or 0 / 1; one for all maps), required by a view-conditioned generator.
        """
        if steps is not None and (int(steps) != steps or steps < 1):
            raise ConfigValueError(f"steps={steps!r}; expected a whole number of sampling steps >= 1")
        cond, sector = self.denoiser_condition(checked_condition_map(cond_map))
        denoise = self._conditioned(self.class_labels(views, cond.shape[0], cond.device))
        shape = (cond.shape[0], self.channels, *cond.shape[-2:])
        if noise is not None and (self.loss is None or tuple(noise.shape) != shape):
            raise ConfigValueError(
                f"noise of shape {tuple(noise.shape)}: start noise applies to the EDM-family models with shape {shape}"
            )
        if self.loss is None:
            x, nfe = self._sample_ddpm(denoise, cond, shape, sampler or "ddpm", steps, churn, generator, callback)
        else:
            x, nfe = sample_ode(
                denoise, shape if noise is None else noise.to(cond.device), sampler=sampler or "heun", steps=steps or PAPER_STEPS, schedule="karras",
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
        denoise: Callable[..., Tensor],
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
        if sampler not in STEP_RULES:
            raise ConfigKeyError(
                f"sampler {sampler!r} does not apply to the DDPM-type model {self.model!r}; expected one of "
                f"{', '.join(STEP_RULES)}"
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
        grid = reverse_grid(num_train_timesteps, sampler, steps)
        x = scheduler_prior(self.scheduler, torch.empty(shape, device=cond.device), generator)
        x = reverse_diffusion(self.scheduler, x, lambda x_t, timesteps: denoise(x_t, timesteps, seg=cond), grid,
                              sampler, 0.0, generator, callback)  # fmt: skip
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
