"""Video wrapper of frame networks: a 2D network applied to every frame of a (B, C, T, H, W) clip, so frame-wise
students and 2D teachers take the same clips as the ConvLSTM student (time as the first spatial axis)."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["FrameWise"]


class FrameWise(nn.Module):
    """`network` (B, C, H, W) -> (B, K, H, W), applied frame by frame: (B, C, T, H, W) -> (B, K, T, H, W)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: Tensor) -> Tensor:
        batch, frames = x.shape[0], x.shape[2]
        flat = self.network(x.transpose(1, 2).flatten(0, 1))
        return flat.unflatten(0, (batch, frames)).transpose(1, 2)
