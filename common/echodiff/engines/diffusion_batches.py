"""Training batches of the DDPM-type diffusion models for MONAI's SupervisedTrainer + DiffusionInferer: noise of the
scheduler's kind drawn for each item's own timestep, the target of the scheduler's prediction type, and the PD-DDPM
mask diffusion batch (optionally conditioned on the pre-segmentation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from monai.engines import DiffusionPrepareBatch, default_prepare_batch
from monai.networks.schedulers import Scheduler
from monai.networks.schedulers.ddpm import DDPMPredictionType

from echodiff.data.masks import logits_to_x0, mask_to_x0
from echodiff.errors import ConfigKeyError
from echodiff.schedulers.sampling import scheduler_noise

__all__ = ["MaskDiffusionPrepareBatch", "SchedulerNoisePrepareBatch"]


class SchedulerNoisePrepareBatch(DiffusionPrepareBatch):
    """MONAI's DiffusionPrepareBatch with the training noise of the scheduler's kind (`scheduler_noise`): standardised
    Gamma noise for the Gamma schedulers (Nachmani et al. 2021, training target eps), N(0, I) otherwise.

    Gamma noise depends on the timestep, but MONAI's `__call__` draws the noise before the timesteps, so `__call__` here
    draws the timesteps first (`get_timesteps`, uniform over 0..T-1 as in MONAI) and then the noise for exactly those
    timesteps; the inferer receives both as `noise` / `timesteps`. Subclasses change what is diffused and what
    conditions it through `sample_and_condition`.
    """

    def __init__(self, scheduler: Scheduler, condition_name: str | None = None) -> None:
        super().__init__(num_train_timesteps=scheduler.num_train_timesteps, condition_name=condition_name)
        self.scheduler = scheduler

    def get_noise(self, images: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Noise of the scheduler's kind for each image at its own timestep."""
        return scheduler_noise(self.scheduler, images, timesteps)

    def get_target(self, images: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """What the network learns to predict, by the scheduler's `prediction_type`: eps (Ho et al. 2020, Alg. 1),
        x_0 ("sample") or v (Salimans & Ho 2022)."""
        prediction_type = self.scheduler.prediction_type
        if prediction_type == DDPMPredictionType.EPSILON:
            return noise
        if prediction_type == DDPMPredictionType.SAMPLE:
            return images
        if prediction_type == DDPMPredictionType.V_PREDICTION:
            return self.scheduler.get_velocity(images, noise, timesteps)
        raise ConfigKeyError(f"unknown prediction_type {prediction_type!r}; expected epsilon, sample or v_prediction")

    def sample_and_condition(
        self, batchdata: Any, device: str | torch.device | None, non_blocking: bool, **kwargs: Any
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The diffused sample x_0 (the batch's images) and the inferer's conditioning keyword arguments."""
        images, _ = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
        if self.condition_name is None or not isinstance(batchdata, Mapping):
            return images, {}
        return images, {"condition": batchdata[self.condition_name].to(device, non_blocking=non_blocking, **kwargs)}

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple, dict]:
        x0, condition = self.sample_and_condition(batchdata, device, non_blocking, **kwargs)
        timesteps = self.get_timesteps(x0)
        noise = self.get_noise(x0, timesteps)
        return x0, self.get_target(x0, noise, timesteps), (), {"noise": noise, "timesteps": timesteps, **condition}


class MaskDiffusionPrepareBatch(SchedulerNoisePrepareBatch):
    """(x_0, target, (), {"noise", "timesteps", "condition", "mode": "concat"}) from a batch {"image", "label"}.

    x_0 = one_hot(label) * 2 - 1 is the diffused sample and the image its concat condition (Guo et al. 2022);
    t is uniform over the scheduler's T steps and the target is eps (Ho et al. 2020, Alg. 1; x_0 for a "sample"
    scheduler), of the scheduler's noise kind, so a Gamma scheduler trains on Gamma noise (Nachmani et al. 2021).
    With `presegmentation` (the trained segmenter, frozen) the condition is cat([image, x_pre]), x_pre =
    `logits_to_x0(presegmentation(image))`, the input of `echodiff.networks.PresegmentationResidualUNet`.
    """

    def __init__(
        self, scheduler: Scheduler, num_classes: int = 4, image_key: str = "image", label_key: str = "label",
        presegmentation: torch.nn.Module | None = None,
    ) -> None:  # fmt: skip
        super().__init__(scheduler, condition_name=image_key)
        self.num_classes, self.label_key = num_classes, label_key
        self.presegmentation = presegmentation.eval().requires_grad_(False) if presegmentation is not None else None

    def sample_and_condition(
        self, batchdata: Any, device: str | torch.device | None, non_blocking: bool, **kwargs: Any
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        condition = batchdata[self.condition_name].to(device, non_blocking=non_blocking, **kwargs)
        x0 = mask_to_x0(batchdata[self.label_key].to(device, non_blocking=non_blocking, **kwargs), self.num_classes)
        if self.presegmentation is not None:
            with torch.no_grad():
                condition = torch.cat([condition, logits_to_x0(self.presegmentation(condition))], dim=1)
        return x0, {"condition": condition, "mode": "concat"}
