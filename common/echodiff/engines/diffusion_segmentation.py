"""Training batches for the PD-DDPM mask diffusion model, for MONAI's SupervisedTrainer + DiffusionInferer("concat")."""

from __future__ import annotations

from typing import Any

import torch
from monai.networks.schedulers import Scheduler

from echodiff.inferers.pddpm import mask_to_x0
from echodiff.schedulers.sampling import SchedulerNoisePrepareBatch


class MaskDiffusionPrepareBatch(SchedulerNoisePrepareBatch):
    """(x_0, eps, (), {"noise", "timesteps", "condition", "mode": "concat"}) from a batch {"image", "label"}.

    x_0 = one_hot(label) * 2 - 1 is the diffused sample and the image its concat condition (Guo et al. 2022);
    t is uniform over the scheduler's T steps and the target is eps (Ho et al. 2020, Alg. 1), of the scheduler's
    noise kind, so a Gamma scheduler trains on Gamma noise (Nachmani et al. 2021).
    """

    def __init__(
        self, scheduler: Scheduler, num_classes: int = 4, image_key: str = "image", label_key: str = "label"
    ) -> None:
        super().__init__(scheduler, condition_name=image_key)
        self.num_classes, self.label_key = num_classes, label_key

    def sample_and_condition(
        self, batchdata: Any, device: str | torch.device | None, non_blocking: bool, **kwargs: Any
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        condition = batchdata[self.condition_name].to(device, non_blocking=non_blocking, **kwargs)
        x0 = mask_to_x0(batchdata[self.label_key].to(device, non_blocking=non_blocking, **kwargs), self.num_classes)
        return x0, {"condition": condition, "mode": "concat"}
