"""A video network on still frames and on whole videos.

`FrameAsClipInferer`: each (C, H, W) frame is a clip of one frame, (C, T = 1, H, W). The distillation student (ConvLSTM,
(B, C, T, H, W) -> (B, out, T, H, W)) segments single CAMUS frames this way, as it was trained on them (a CAMUS frame is
a clip of one frame, `echodiff.distillation.sources`); the bundle's `inferer` key uses it so that MONAI Label's
`BundleInferTask`, which feeds (B, C, H, W) images, serves the student.

`ClipWindowInferer`: a video (B, C, T, H, W) in consecutive windows of the student's `clip_length` frames (MONAI's
`SlidingWindowInferer` over time, no overlap, the last window aligned to the end), each window started from a zero
recurrent state, as in training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer, SlidingWindowInferer

from echodiff.errors import ShapeMismatchError

__all__ = ["ClipWindowInferer", "FrameAsClipInferer"]


class FrameAsClipInferer(Inferer):
    """(B, C, H, W) frames -> `network` on (B, C, 1, H, W) -> (B, out, H, W)."""

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        if inputs.ndim != 4:
            raise ShapeMismatchError(
                f"FrameAsClipInferer input has shape {list(inputs.shape)}; expected (B, C, H, W) frames"
            )
        return network(inputs.unsqueeze(2), *args, **kwargs).squeeze(2)


class ClipWindowInferer(SlidingWindowInferer):
    """(B, C, T, H, W) videos of T >= `clip_length` frames -> `network` on consecutive windows of `clip_length` frames
    at the full frame size (module docstring); `windows_per_batch` defaults to about 64 frames per batch."""

    def __init__(self, clip_length: int, windows_per_batch: int | None = None) -> None:
        windows_per_batch = windows_per_batch or max(1, 64 // clip_length)
        super().__init__(roi_size=(int(clip_length), -1, -1), sw_batch_size=windows_per_batch, overlap=0.0,
                         mode="constant", progress=False)  # fmt: skip
        self.clip_length = int(clip_length)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        if inputs.ndim != 5:
            raise ShapeMismatchError(
                f"ClipWindowInferer input has shape {list(inputs.shape)}; expected (B, C, T, H, W) videos"
            )
        if inputs.shape[2] < self.clip_length:
            raise ShapeMismatchError(
                f"video of {inputs.shape[2]} frames is shorter than the student's window clip_length="
                f"{self.clip_length}; expected at least clip_length frames"
            )
        return super().__call__(inputs, network, *args, **kwargs)
