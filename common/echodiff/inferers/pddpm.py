"""PD-DDPM sampling (Guo et al. 2022, "Accelerating Diffusion Models via Pre-segmentation Diffusion Sampling").

A conditional DDPM over masks, x_0 = one_hot(mask) * 2 - 1, predicts eps from cat([x_t, image]) along channels: the
order of MONAI's `DiffusionInferer` in "concat" mode, so a model trained with it samples here. Sampling starts from the
pre-segmentation forward-noised to T' (Guo et al. 2022; docs/methods.md section 2), x_T' = sqrt(alpha_bar_T') x_pre +
sqrt(1 - alpha_bar_T') eps, runs the reverse steps T' -> 0 and averages an ensemble. t_prime = T starts from pure
noise instead: plain DDPM (Ho et al. 2020, Alg. 2), the baseline. With `condition_on_presegmentation` the network also
sees the soft pre-segmentation at every step (`echodiff.networks.PresegmentationResidualUNet`).

Index convention: the paper's step t = 1..T is MONAI's timestep t - 1 (`alphas_cumprod[t - 1]` = alpha_bar_t), so x_T'
uses `alphas_cumprod[t_prime - 1]` and the T' reverse steps visit the timesteps t_prime - 1, ..., 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.networks.schedulers import Scheduler
from monai.networks.utils import one_hot

from echodiff.data.masks import logits_to_x0, mask_to_x0, x0_to_probabilities
from echodiff.errors import ConfigKeyError, ConfigValueError, MissingFileError, ShapeMismatchError
from echodiff.schedulers.sampling import STEP_RULES, reverse_diffusion, reverse_grid, scheduler_noise, scheduler_prior

UNCERTAINTIES = ("variance", "entropy")


def ensemble_uncertainty(probabilities: torch.Tensor, kind: str = "variance") -> torch.Tensor:
    """Per-pixel uncertainty (B, 1, H, W) of an ensemble of class scores (N, B, C, H, W) (Guo et al. 2022).

    "variance": the per-pixel ensemble variance of the scores summed over classes (the trace of their covariance);
    "entropy": the entropy of the members' argmax votes divided by log C (1: votes spread evenly over all classes).
    Both are 0 for a single sample and wherever all samples agree.
    """
    if kind == "variance":
        return probabilities.var(dim=0, unbiased=False).sum(dim=1, keepdim=True)
    if kind == "entropy":
        num_classes = probabilities.shape[2]
        votes = one_hot(probabilities.argmax(dim=2, keepdim=True), num_classes, dtype=probabilities.dtype, dim=2)
        return torch.special.entr(votes.mean(dim=0)).sum(dim=1, keepdim=True) / math.log(num_classes)
    raise ConfigKeyError(f"unknown uncertainty {kind!r}; expected one of {', '.join(UNCERTAINTIES)}")


def load_presegmentation(network: torch.nn.Module, checkpoint: str | Path) -> torch.nn.Module:
    """Load a segmenter checkpoint (a state dict, or MONAI's CheckpointSaver file {"model": state dict}) on CPU."""
    path = Path(checkpoint)
    if not path.is_file():
        raise MissingFileError(
            f"pre-segmentation checkpoint {path} does not exist; train the segmenter first (configs/train.json writes "
            f"models/model.pt) or point presegmentation_checkpoint at its weights."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    network.load_state_dict(state.get("model", state))
    return network


class PDDPMInferer(Inferer):
    """PD-DDPM segmentation in one call, `inferer(image, network)` (Guo et al. 2022; docs/methods.md section 2).

    pre-segmentation x_pre -> x_T' = `scheduler.add_noise(x_pre, eps, T' - 1)` (so Gamma noise works) -> reverse
    steps T' -> 0 with the image concatenated at every step ("ddpm": every timestep through `scheduler.step`;
    "ddim": `steps` DDIM steps) -> `ensemble` samples. Returns {"pred": ensemble mean of the class scores
    (B, C, H, W), "uncertainty": (B, 1, H, W)}; the label map is the argmax of "pred" over classes. A dict, because
    MONAI's evaluators and MONAI Label's bundle app both keep a dict output under "pred" and decollate it, and the
    bundle's postprocessing moves "uncertainty" up a level and keeps "pred". t_prime = T draws pure noise: plain DDPM,
    no pre-segmentation needed (unless the network is conditioned on it).

    Args:
        scheduler: the noise scheduler the diffusion model was trained with (T = its `num_train_timesteps`).
        presegmentation: network or callable, image (B, image_channels, H, W) -> class logits (B, num_classes, H, W);
            its argmax is the pre-segmentation. Required when t_prime < T or `condition_on_presegmentation`.
        presegmentation_checkpoint: weights loaded into `presegmentation` on CPU at the first pre-segmentation (like
            MONAI's CheckpointLoader, at run time, so building the inferer needs no trained model).
        t_prime: T', the step the reverse process starts from, 1..T.
        ensemble: N, samples averaged per image.
        step_rule: "ddpm" (all t_prime steps) or "ddim" (`steps` steps, `eta` noise; Song et al. 2021).
        steps: number of DDIM steps, 1..t_prime (default t_prime); DDPM takes every step (None or t_prime).
        num_classes: mask channels C (CAMUS: 4).
        image_channels: channels of the input image.
        size_divisible: H and W must be multiples of this (the networks' total downsampling).
        uncertainty: "variance" or "entropy", see `ensemble_uncertainty`.
        condition_on_presegmentation: the network input is cat([x_t, image, x_pre]) with x_pre = `logits_to_x0` of
            the pre-segmentation's logits (computed once per call), for a network trained on that condition
            (`MaskDiffusionPrepareBatch(presegmentation=...)`); False: cat([x_t, image]) (Guo et al. 2022).
        progress: show a tqdm bar over the reverse steps.
        seed: when given, every call without a `generator` draws its noise from a fresh `torch.Generator` seeded with
            it, so the same image always gets the same label map (e.g. when MONAI Label serves the bundle); None: the
            global RNG (`monai.utils.set_determinism` makes whole runs reproducible).
    """

    def __init__(
        self,
        scheduler: Scheduler,
        presegmentation: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor] | None = None,
        presegmentation_checkpoint: str | Path | None = None,
        t_prime: int = 300,
        ensemble: int = 5,
        step_rule: str = "ddpm",
        steps: int | None = None,
        eta: float = 0.0,
        num_classes: int = 4,
        image_channels: int = 1,
        size_divisible: int = 1,
        uncertainty: str = "variance",
        condition_on_presegmentation: bool = False,
        progress: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        num_train_timesteps = scheduler.num_train_timesteps
        if step_rule not in STEP_RULES:
            raise ConfigKeyError(f"unknown step_rule {step_rule!r}; expected one of {', '.join(STEP_RULES)}")
        if uncertainty not in UNCERTAINTIES:
            raise ConfigKeyError(f"unknown uncertainty {uncertainty!r}; expected one of {', '.join(UNCERTAINTIES)}")
        if not 1 <= t_prime <= num_train_timesteps:
            raise ConfigValueError(
                f"t_prime={t_prime} is outside 1..T={num_train_timesteps}: PD-DDPM starts at one of the scheduler's "
                f"T={num_train_timesteps} training steps (t_prime=T is plain DDPM from pure noise)."
            )
        if int(ensemble) != ensemble or ensemble < 1:
            raise ConfigValueError(f"ensemble={ensemble}; expected a whole number of samples >= 1.")
        if step_rule == "ddpm" and steps not in (None, t_prime):
            raise ConfigValueError(
                f"steps={steps} with step_rule='ddpm': DDPM takes every step from t_prime={t_prime} to 1 (steps=None "
                f"or {t_prime}); use step_rule='ddim' for fewer steps."
            )
        steps = t_prime if steps is None else steps
        if not 1 <= steps <= t_prime:
            raise ConfigValueError(f"steps={steps}; expected 1..t_prime={t_prime} DDIM steps.")
        if presegmentation_checkpoint is not None and not isinstance(presegmentation, torch.nn.Module):
            raise ConfigValueError(
                f"presegmentation_checkpoint={presegmentation_checkpoint} given without a presegmentation network."
            )
        if presegmentation is None and t_prime < num_train_timesteps:
            raise ConfigValueError(
                f"t_prime={t_prime} < T={num_train_timesteps} starts from a pre-segmentation: pass `presegmentation` "
                f"(the trained segmenter), or set t_prime={num_train_timesteps} for plain DDPM from pure noise."
            )
        if presegmentation is None and condition_on_presegmentation:
            raise ConfigValueError(
                "condition_on_presegmentation=True conditions every step on the pre-segmentation: pass "
                "`presegmentation` (the segmenter the network was trained with)."
            )
        self.scheduler, self.presegmentation = scheduler, presegmentation
        self.presegmentation_checkpoint = presegmentation_checkpoint
        self.num_train_timesteps, self.t_prime, self.ensemble = num_train_timesteps, t_prime, int(ensemble)
        self.step_rule, self.steps, self.eta = step_rule, steps, eta
        self.num_classes, self.image_channels, self.size_divisible = num_classes, image_channels, size_divisible
        self.uncertainty, self.progress, self.seed = uncertainty, progress, seed
        self.condition_on_presegmentation = bool(condition_on_presegmentation)

    def check_image(self, inputs: torch.Tensor) -> None:
        """Refuse images that are not (B, image_channels, H, W) with H, W multiples of `size_divisible`."""
        if inputs.ndim != 4 or inputs.shape[1] != self.image_channels or any(
            s % self.size_divisible for s in inputs.shape[2:]
        ):
            raise ShapeMismatchError(
                f"PD-DDPM input image has shape {tuple(inputs.shape)}; expected (B, {self.image_channels}, H, W) "
                f"with H and W divisible by {self.size_divisible} (the networks' total downsampling)."
            )

    def presegment(self, inputs: torch.Tensor) -> torch.Tensor:
        """The pre-segmentation's class logits (B, C, H, W); loads the checkpoint on first use."""
        if self.presegmentation_checkpoint is not None:
            load_presegmentation(self.presegmentation, self.presegmentation_checkpoint)
            self.presegmentation_checkpoint = None
        if isinstance(self.presegmentation, torch.nn.Module):
            self.presegmentation.to(inputs.device).eval()
        scores = self.presegmentation(inputs)
        expected = (inputs.shape[0], self.num_classes, *inputs.shape[2:])
        if tuple(scores.shape) != expected:
            raise ShapeMismatchError(f"pre-segmentation output has shape {tuple(scores.shape)}; expected {expected}.")
        return scores.to(inputs.device)

    def start(
        self, inputs: torch.Tensor, generator: torch.Generator | None = None, scores: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x_T' of every ensemble member, (ensemble * B, C, H, W), member-major: x_T' = sqrt(alpha_bar_T') x_pre +
        sqrt(1 - alpha_bar_T') eps with x_pre = one_hot(argmax scores) * 2 - 1 (Guo et al. 2022), or pure noise when
        t_prime = T. `scores`: the pre-segmentation's logits when already computed."""
        shape = (self.ensemble * inputs.shape[0], self.num_classes, *inputs.shape[2:])
        if self.t_prime == self.num_train_timesteps:
            return scheduler_prior(self.scheduler, torch.empty(shape, device=inputs.device), generator)
        scores = self.presegment(inputs) if scores is None else scores
        x_pre = mask_to_x0(scores.argmax(dim=1, keepdim=True), self.num_classes).to(inputs.device)
        x_pre = x_pre.repeat(self.ensemble, 1, 1, 1)
        timesteps = torch.full((shape[0],), self.t_prime - 1, dtype=torch.long, device=inputs.device)
        return self.scheduler.add_noise(x_pre, scheduler_noise(self.scheduler, x_pre, timesteps, generator), timesteps)

    def reverse_steps(self) -> list[tuple[int, int]]:
        """(t, t_prev) MONAI timesteps of the reverse process, from t_prime - 1 to 0 (t_prev = -1 after the last)."""
        return reverse_grid(self.t_prime, self.step_rule, self.steps)

    @torch.no_grad()
    def sample(
        self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The ensemble's final samples x_0, (ensemble, B, C, H, W) (in [-1, 1] when the scheduler clips)."""
        inputs = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
        self.check_image(inputs)
        scores = self.presegment(inputs) if self.condition_on_presegmentation else None
        x = self.start(inputs, generator, scores)
        condition = inputs if scores is None else torch.cat([inputs, logits_to_x0(scores)], dim=1)
        condition = condition.repeat(self.ensemble, 1, 1, 1).to(x.dtype)
        x = reverse_diffusion(
            self.scheduler, x, lambda x_t, timesteps: network(torch.cat([x_t, condition], dim=1), timesteps=timesteps),
            self.reverse_steps(), self.step_rule, self.eta, generator, progress="PD-DDPM" if self.progress else None,
        )  # fmt: skip
        return x.reshape(self.ensemble, inputs.shape[0], *x.shape[1:])

    def __call__(  # type: ignore[override]
        self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """{"pred": mean class scores (B, C, H, W), "uncertainty": (B, 1, H, W)} of images (B, image_channels, H, W)."""
        if generator is None and self.seed is not None:
            generator = torch.Generator(inputs.device).manual_seed(self.seed)
        probabilities = x0_to_probabilities(self.sample(inputs, network, generator))
        return {"pred": probabilities.mean(dim=0), "uncertainty": ensemble_uncertainty(probabilities, self.uncertainty)}
