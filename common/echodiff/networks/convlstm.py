"""The EchoDFKD video student: a ConvLSTM encoder-decoder (Petit et al. 2024, "EchoDFKD", student architecture).

Encoder: `k_blocks` blocks with base_filters * 2^i channels (block i), each of `n_layers` ConvLSTM layers (3 x 3
convolutions over [x_t, h_{t-1}], Shi et al. 2015) followed by batch normalisation; 2 x 2 max-pooling between blocks.
Decoder: k_blocks - 1 stages of (x2 upsampling, 3 x 3 convolution, batch normalisation, ReLU) back to base_filters
channels, without skip connections; a 1 x 1 convolution gives one logit per pixel and frame. With one input channel:
k = n = 3 has 611,185 parameters, k = n = 1 has 5,701 (the paper's table).

Tensors are channel-first with time as the first spatial axis, (B, C, T, H, W), as MONAI treats 3D data; H and W must
be divisible by 2^(k_blocks - 1). The ConvLSTM runs forward in time, so frame t's output depends on frames <= t only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from echodiff.errors import ShapeMismatchError
from echodiff.networks.framewise import FrameWise

__all__ = ["ConvLSTM", "ConvLSTMSegmenter"]


class ConvLSTM(nn.Module):
    """One ConvLSTM layer (Shi et al. 2015, without peepholes) over (B, C, T, H, W) -> hidden states (B, H_c, T, H, W).

    gates = conv3x3([x_t, h_{t-1}]) -> i, f, o, g; c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g);
    h_t = sigmoid(o) tanh(c_t); h_0 = c_0 = 0.
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        batch, _, frames, height, width = x.shape
        hc = self.hidden_channels
        h = x.new_zeros(batch, hc, height, width)
        c = torch.zeros_like(h)
        outputs = []
        for t in range(frames):
            gates = self.gates(torch.cat([x[:, :, t], h], dim=1))
            i, f, o, g = gates[:, :hc], gates[:, hc : 2 * hc], gates[:, 2 * hc : 3 * hc], gates[:, 3 * hc :]
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, dim=2)


class ConvLSTMSegmenter(nn.Module):
    """ConvLSTM encoder-decoder student (module docstring); logits (B, out_channels, T, H, W)."""

    def __init__(
        self, k_blocks: int = 3, n_layers: int = 3, in_channels: int = 1, out_channels: int = 1, base_filters: int = 12
    ) -> None:
        super().__init__()
        if k_blocks < 1 or n_layers < 1:
            raise ValueError(f"k_blocks={k_blocks} and n_layers={n_layers} must both be at least 1")
        self.k_blocks = k_blocks
        widths = [base_filters * 2**i for i in range(k_blocks)]
        stages, previous = [], in_channels
        for i, width in enumerate(widths):
            layers: list[nn.Module] = [FrameWise(nn.MaxPool2d(2))] if i else []
            for _ in range(n_layers):
                layers += [ConvLSTM(previous, width), nn.BatchNorm3d(width)]
                previous = width
            stages.append(nn.Sequential(*layers))
        self.encoder = nn.Sequential(*stages)
        self.decoder = nn.Sequential(*(
            FrameWise(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(wide, narrow, 3, padding=1),
                                    nn.BatchNorm2d(narrow), nn.ReLU(inplace=True)))
            for wide, narrow in zip(widths[::-1], widths[-2::-1])
        ))  # fmt: skip
        self.head = FrameWise(nn.Conv2d(widths[0], out_channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        factor = 1 << (self.k_blocks - 1)
        if x.ndim != 5 or x.shape[-1] % factor != 0 or x.shape[-2] % factor != 0:
            raise ShapeMismatchError(
                f"ConvLSTM student input has shape {list(x.shape)}; expected (B, C, T, H, W) with H and W divisible by "
                f"{factor} = 2**(k_blocks - 1)"
            )
        return self.head(self.decoder(self.encoder(x)))
