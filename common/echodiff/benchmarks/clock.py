"""The one sampling clock. `clocked_sampling` gives the images/s of a generator for the generation benchmark
(`echodiff.benchmarks.generation`) and for the study's evaluation stage (`echodiff.study.stages`) alike, so the two
report the same number for the same generator, sampler, batch size and machine: the same sampling call
(`echodiff.generation.GeneratorFn`: no autograd, image i seeded with seed + i), one untimed warm-up call, CUDA
synchronised around every timed call. `NetworkClock` splits that time into network and sampler shares."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["NetworkClock", "SamplingRun", "clocked_sampling", "synchronize"]

# generate(condition maps, seeds[, views]) -> (images or None, NFE per image): the signature of
# echodiff.generation.GeneratorFn
Generate = Callable[..., tuple[Tensor | None, int]]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels (CUDA); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class SamplingRun:
    """What `clocked_sampling` measured: the images (on the CPU; None unless kept), NFE per image, the timed seconds
    and the number of images they produced."""

    images: Tensor | None
    nfe: int
    seconds: float
    n_images: int

    @property
    def images_per_s(self) -> float:
        return self.n_images / self.seconds if self.seconds > 0 else float("inf")


def clocked_sampling(
    generate: Generate,
    cond: Tensor,
    *,
    batch_size: int = 32,
    seed: int = 0,
    warmup: bool = True,
    keep_images: bool = True,
    after_warmup: Callable[[], Any] | None = None,
    device: torch.device | str | None = None,
    views: Sequence[str] | None = None,
) -> SamplingRun:
    """One image per map of `cond` (B, 1, H, W), `batch_size` maps per `generate` call, map i seeded with seed + i.

    With `warmup`, the first batch is sampled once untimed before the timed pass (first-call costs: lazy
    initialisation, allocator growth, oneDNN / cuDNN kernel choice), then `after_warmup()` runs (e.g. to reset peak
    memory counters). images/s = maps / timed seconds. `device`: where `generate` runs (default: `cond`'s), the one
    synchronised. `views` (one per map, e.g. "2CH"), when given, go to `generate` with their maps.
    """
    device = torch.device(device) if device is not None else cond.device

    def call(start: int) -> tuple[Tensor | None, int]:
        batch = cond[start : start + batch_size]
        seeds = list(range(seed + start, seed + start + len(batch)))
        if views is None:
            return generate(batch, seeds)
        return generate(batch, seeds, list(views[start : start + batch_size]))

    if warmup and len(cond):
        call(0)
    if after_warmup is not None:
        after_warmup()
    images, seconds, nfe = [], 0.0, 0
    for start in range(0, len(cond), batch_size):
        synchronize(device)
        began = time.perf_counter()
        generated, nfe = call(start)
        synchronize(device)
        seconds += time.perf_counter() - began
        if keep_images:
            images.append(generated)
    return SamplingRun(torch.cat(images) if keep_images and images else None, nfe, seconds, len(cond))


class NetworkClock:
    """Seconds spent inside `modules` and their calls, from forward pre/post hooks (CUDA synchronised at both ends)."""

    def __init__(self, modules: Sequence[nn.Module], device: torch.device) -> None:
        self.device, self.seconds, self.calls = device, 0.0, [0] * len(modules)
        self._start = 0.0
        self._handles = []
        for index, module in enumerate(modules):
            self._handles.append(module.register_forward_pre_hook(self._enter))
            self._handles.append(module.register_forward_hook(lambda *_, i=index: self._leave(i)))

    def reset(self) -> None:
        """Forget what was measured so far (e.g. a warm-up call)."""
        self.seconds, self.calls = 0.0, [0] * len(self.calls)

    def _enter(self, *_: Any) -> None:
        synchronize(self.device)
        self._start = time.perf_counter()

    def _leave(self, index: int) -> None:
        synchronize(self.device)
        self.seconds += time.perf_counter() - self._start
        self.calls[index] += 1

    def __enter__(self) -> NetworkClock:
        return self

    def __exit__(self, *_: Any) -> None:
        for handle in self._handles:
            handle.remove()
