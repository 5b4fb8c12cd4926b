"""A video network on still frames: each (C, H, W) frame is a clip of one frame, (C, T = 1, H, W).

The distillation student (ConvLSTM, (B, C, T, H, W) -> (B, out, T, H, W)) segments single CAMUS frames this way, as
it was trained on them (a CAMUS frame is a clip of one frame, `echodiff.distillation.sources`); the bundle's
`inferer` key uses it so that MONAI Label's `BundleInferTask`, which feeds (B, C, H, W) images, serves the student.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer

from echodiff.errors import ShapeMismatchError

__all__ = ["FrameAsClipInferer"]


class FrameAsClipInferer(Inferer):
    """(B, C, H, W) frames -> `network` on (B, C, 1, H, W) -> (B, out, H, W)."""

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        if inputs.ndim != 4:
            raise ShapeMismatchError(
                f"FrameAsClipInferer input has shape {list(inputs.shape)}; expected (B, C, H, W) frames"
            )
        return network(inputs.unsqueeze(2), *args, **kwargs).squeeze(2)
