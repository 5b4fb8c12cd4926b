"""A PD-DDPM mask denoiser that starts as its pre-segmentation (Guo et al. 2022, with a refining parametrisation)."""

from __future__ import annotations

from typing import Any

import torch
from monai.networks.nets import DiffusionModelUNet

from echodiff.errors import ConfigValueError, ShapeMismatchError

__all__ = ["PresegmentationResidualUNet"]


class PresegmentationResidualUNet(DiffusionModelUNet):
    """MONAI's DiffusionModelUNet over cat([x_t, image, x_pre]) predicting x_0 = x_pre + F(x_t, image, x_pre, t).

    x_pre = softmax(segmenter logits) * 2 - 1 is the pre-segmentation on the mask's [-1, 1] scale (its last
    `out_channels` input channels); the scheduler predicts "sample" (x_0). Guo et al. 2022 diffuse the mask with a
    plain eps-predicting network conditioned on the image alone, which must learn to segment from scratch (45 mean
    Dice on CAMUS at CPU scale, against 90 for the segmenter), so started at T' it can only blur a good
    pre-segmentation. The pre-segmentation network itself (DynUNet or AttentionUnet) has no timestep input and another
    architecture, so its weights cannot initialise this network. Instead its output is an input and the anchor of the
    prediction: DiffusionModelUNet's last convolution is zero-initialised, so before training the denoiser returns
    x_pre at every t (sampling from T' then ends at the pre-segmentation) and training learns only the corrections.
    The anchor is in x_0, not eps: eps = (x_t - sqrt(ab_t) x_0) / sqrt(1 - ab_t) would amplify a pre-segmentation
    error by sqrt(ab_t / (1 - ab_t)) (over 100 near t = 0 on the cosine schedule), where x_t alone already shows
    the mask.

    Args:
        in_channels: mask channels + image channels + mask channels (CAMUS: 4 + 1 + 4).
        out_channels: mask channels C; the last C input channels are x_pre.
        other arguments: those of `monai.networks.nets.DiffusionModelUNet`.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        if in_channels <= 2 * out_channels:
            raise ConfigValueError(
                f"in_channels={in_channels}; expected mask ({out_channels}) + image (>= 1) + pre-segmentation "
                f"({out_channels}) channels, more than {2 * out_channels}."
            )
        super().__init__(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kwargs)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """x_0 prediction (B, C, H, W) from x = cat([x_t, image, x_pre]) (B, in_channels, H, W) at `timesteps`."""
        if x.shape[1] != self.in_channels:
            raise ShapeMismatchError(
                f"denoiser input has {x.shape[1]} channels; expected {self.in_channels} = x_t, image and the "
                f"pre-segmentation concatenated (condition_on_presegmentation in the inferer and the training batch)."
            )
        return x[:, -self.out_channels :] + super().forward(x, timesteps, *args, **kwargs)
