"""MONAI inferer that samples a label-to-image generator (`echodiff.generation.LabelToImageGenerator`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.inferers import Inferer
from torch import Tensor, nn

from echodiff.samplers import ChurnSpec

__all__ = ["GeneratorInferer"]


class GeneratorInferer(Inferer):
    """MONAI Inferer for SupervisedEvaluator: `inferer(cond_map, generator, views=...)` -> generated images (B, 1, H,
    W); `views` (one per map, as in `LabelToImageGenerator.sample`) comes from the batch through the evaluator's
    `prepare_batch` (MONAI's `PrepareBatchExtraInput({"views": "generated_view"})` in inference.json).

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

    def __call__(  # type: ignore[override]
        self, inputs: Tensor, network: nn.Module, *args: Any, views: Sequence[str] | Tensor | None = None, **kwargs: Any
    ) -> Tensor:
        if self.random is None or self.random.device != inputs.device:
            self.random = torch.Generator(inputs.device).manual_seed(self.seed)
        images, self.nfe = network.sample(
            inputs, sampler=self.sampler, steps=self.steps, churn=self.churn, generator=self.random, views=views
        )
        return images
