"""Random draws for batched sampling with one generator per image.

Samplers and schedulers take `generator` as None (the global RNG), one `torch.Generator` for the whole batch, or a
sequence with one generator per item of the batch. With a sequence, item b's numbers come from generator b alone and
are drawn exactly as for a batch of one with that generator, so a batch of images equals the same images sampled one
at a time (up to the floating-point rounding of batched network calls): dataset synthesis batches stochastic samplers
and keeps every file reproducible from its own seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from echodiff.errors import ShapeMismatchError

Generators = torch.Generator | Sequence[torch.Generator] | None


def is_per_sample(generator: Generators) -> bool:
    """Whether `generator` is a sequence with one generator per batch item."""
    return generator is not None and not isinstance(generator, torch.Generator)


def per_sample(
    draw: Callable[[int, torch.Generator], torch.Tensor], generator: Sequence[torch.Generator], batch: int
) -> torch.Tensor:
    """Concatenate `draw(b, generator[b])` (each a batch of one) over the batch items b."""
    if len(generator) != batch:
        raise ShapeMismatchError(f"{len(generator)} generators for a batch of {batch}; expected one per batch item.")
    return torch.cat([draw(b, g) for b, g in enumerate(generator)])


def randn(
    shape: Sequence[int], generator: Generators = None, dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """N(0, I) of `shape` from `generator` (None, one generator, or one per item of the leading dimension)."""
    shape = tuple(shape)
    if not is_per_sample(generator):
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)
    return per_sample(lambda _, g: torch.randn((1, *shape[1:]), generator=g, dtype=dtype, device=device),
                      generator, shape[0])
