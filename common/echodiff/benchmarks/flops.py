"""FLOPs and NFE of a label-to-image generator per image, counted from the code that runs: FLOPs with
`torch.utils.flop_counter.FlopCounterMode` (matrix products, convolutions and attention, 2 per multiply-add;
elementwise operations, norms and the samplers' own arithmetic count 0), NFE from `sample` with stubbed networks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from echodiff.data.conditioning import N_CONDITION_CLASSES
from echodiff.generation.generator import LabelToImageGenerator
from echodiff.networks import Preconditioner
from echodiff.samplers import ChurnSpec

__all__ = ["count_flops", "count_nfe", "network_and_decoder_flops", "network_of", "networks_stubbed"]


def network_of(generator: LabelToImageGenerator) -> nn.Module:
    """The UNet inside the denoiser: the preconditioner's F (EDM family) or the eps-network itself (sdm)."""
    return generator.denoiser.model if isinstance(generator.denoiser, Preconditioner) else generator.denoiser


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """FLOPs of one call of `fn` as counted by FlopCounterMode (2 per multiply-add)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*args, **kwargs)
    return counter.get_total_flops()


def network_and_decoder_flops(generator: LabelToImageGenerator) -> tuple[int, int]:
    """FLOPs of one network call (with a view label for a view-conditioned generator) and of decoding one image (0 in
    pixel space), for a batch of 1, on its device."""
    device = next(generator.parameters()).device
    grid = generator.image_size // generator.latent_factor
    x = torch.zeros(1, generator.channels, grid, grid, device=device)
    seg = torch.zeros(1, N_CONDITION_CLASSES, grid, grid, device=device)
    sector = torch.ones(1, 1, generator.image_size, generator.image_size, device=device)
    views = {"class_labels": torch.zeros(1, dtype=torch.long, device=device)} if generator.view_conditioned else {}
    network = count_flops(network_of(generator), x, torch.full((1,), 500.0, device=device), seg=seg, **views)
    return network, count_flops(generator.from_diffusion, x, sector)


@contextlib.contextmanager
def networks_stubbed(generator: LabelToImageGenerator) -> Iterator[None]:
    """Network and decoder return zeros of their output shape, so `sample` costs only the sampler's own work."""
    network = network_of(generator)
    network.forward = lambda x, *args, **kwargs: torch.zeros_like(x)
    decoder = None if generator.autoencoder is None else generator.autoencoder.decoder
    if decoder is not None:
        factor = generator.latent_factor
        decoder.forward = lambda z: z.new_zeros(z.shape[0], 1, *(s * factor for s in z.shape[2:]))
    try:
        yield
    finally:
        del network.forward
        if decoder is not None:
            del decoder.forward


def count_nfe(generator: LabelToImageGenerator, cond: torch.Tensor, sampler: str, steps: int | None,
              churn: ChurnSpec | None) -> int:
    """NFE of one `sample` call, taken from the sampling code itself with the networks stubbed out."""
    with networks_stubbed(generator):
        views = "2CH" if generator.view_conditioned else None
        return generator.sample(cond[:1], sampler=sampler, steps=steps, churn=churn, views=views)[1]
