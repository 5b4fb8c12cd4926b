"""PNG outputs of the generator bundle: sample grids (label overlay | generated), reconstruction grids (image |
reconstruction), per-image PNG + NIfTI files, and the ignite handlers that write them during training and inference.

A grid has one row per image and one column per view of it; each tile is the image size, written as 8-bit RGB.
The overlay tints the generated image where the condition map names a structure (LV cavity red, myocardium green,
left atrium blue), so the eye can check that the anatomy follows the map; outside-sector and tissue stay untinted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import decollate_batch
from monai.utils import convert_to_tensor
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import Dataset

from echodiff.data.camus import write_camus_nifti
from echodiff.networks import unwrap
from echodiff.io import atomic_write

__all__ = [
    "OVERLAY_COLOURS",
    "GeneratedImageWriter",
    "ReconstructionGridSaver",
    "SampleGridSaver",
    "image_grid",
    "label_overlay",
    "to_uint8",
    "write_png",
    "write_reconstruction_grid",
    "write_sample_grid",
]

OVERLAY_COLOURS = {1: (1.0, 0.2, 0.2), 3: (0.2, 0.85, 0.2), 4: (0.25, 0.5, 1.0)}  # LV cavity, myocardium, left atrium
OVERLAY_ALPHA = 0.35


def to_uint8(images: Tensor) -> Tensor:
    """round(255 x) of images in [0, 1] (clamped), as uint8 on the CPU."""
    return (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)


def _rgb(images: Tensor) -> Tensor:
    """(B, 3, H, W) float in [0, 1] from grey (B, 1, H, W) or RGB images."""
    images = images.detach().float().cpu().clamp(0, 1)
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def label_overlay(cond_map: Tensor, images: Tensor, alpha: float = OVERLAY_ALPHA) -> Tensor:
    """(B, 3, H, W) images tinted with `OVERLAY_COLOURS` where the (B, 1, H, W) condition map holds those classes."""
    rgb = _rgb(images)
    cond = convert_to_tensor(cond_map, track_meta=False).detach().cpu()
    for cls, colour in OVERLAY_COLOURS.items():
        tint = (1 - alpha) * rgb + alpha * torch.tensor(colour).view(1, 3, 1, 1)
        rgb = torch.where(cond == cls, tint, rgb)
    return rgb


def image_grid(columns: Sequence[Tensor]) -> np.ndarray:
    """uint8 (B H, n W, 3) array: row b holds image b of each of the n (B, 1 or 3, H, W) columns, left to right."""
    rows = torch.cat([_rgb(column) for column in columns], dim=3)
    return to_uint8(torch.cat(list(rows), dim=1)).permute(1, 2, 0).numpy()


def write_png(path: str | Path, array: np.ndarray) -> Path:
    """Write an (H, W) grey or (H, W, 3) RGB uint8 array as PNG, atomically; returns the path."""
    path = Path(path)
    atomic_write(path, lambda tmp: Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG"), ".png")
    return path


def write_sample_grid(path: str | Path, cond_map: Tensor, images: Tensor) -> Path:
    """PNG grid with rows (label overlay | generated) for generated images (B, 1, H, W) and their condition maps."""
    return write_png(path, image_grid([label_overlay(cond_map, images), images]))


def write_reconstruction_grid(path: str | Path, images: Tensor, reconstructions: Tensor) -> Path:
    """PNG grid with rows (image | reconstruction)."""
    return write_png(path, image_grid([images, reconstructions]))


class _EpochGridSaver:
    """Every `interval` trainer epochs and after the last one, a grid of the first `num_images` items of `dataset` to
    `<output_dir>/<prefix>_epoch=<N>.png`, drawn in eval mode with `network` (default: the trainer's); the items' views
    (`view_key`, None when absent) go with them."""

    prefix = "grid"

    def __init__(
        self,
        dataset: Dataset,
        output_dir: str | Path,
        num_images: int = 4,
        interval: int = 1,
        image_key: str = "image",
        cond_key: str = "cond",
        network: nn.Module | None = None,
        view_key: str = "view",
    ) -> None:
        self.dataset, self.output_dir, self.num_images, self.interval = dataset, Path(output_dir), num_images, interval
        self.image_key, self.cond_key, self.network, self.view_key = image_key, cond_key, network, view_key
        self._written_epoch = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)
        engine.add_event_handler(Events.COMPLETED, self._final)

    def _final(self, engine: Engine) -> None:
        """The last epoch's grid, also when `interval` exceeds max_epochs or a time limit ended the run early."""
        if engine.state.epoch and engine.state.epoch != self._written_epoch:
            self(engine)

    def __call__(self, engine: Engine) -> None:
        self._written_epoch = engine.state.epoch
        items = [self.dataset[i] for i in range(min(self.num_images, len(self.dataset)))]
        device = engine.state.device
        images, cond = (
            torch.stack([convert_to_tensor(item[key], track_meta=False) for item in items]).to(device)
            for key in (self.image_key, self.cond_key)
        )
        views = [item[self.view_key] for item in items] if all(self.view_key in item for item in items) else None
        network = unwrap(self.network if self.network is not None else engine.network)
        training = network.training
        network.eval()
        path = self.output_dir / f"{self.prefix}_epoch={engine.state.epoch}.png"
        with torch.no_grad():
            self.write(path, network, images.float(), cond, views)
        network.train(training)

    def write(self, path: Path, network: nn.Module, images: Tensor, cond: Tensor, views: list | None) -> None:
        raise NotImplementedError


class SampleGridSaver(_EpochGridSaver):
    """Trainer handler: rows (label overlay | generated) sampled by the generator from the first `num_images`
    condition maps of `dataset` and their views, with a fixed `seed` so that epochs compare; `sampler`/`steps`/`churn`
    as in `LabelToImageGenerator.sample` (None: the model's default)."""

    prefix = "samples"

    def __init__(
        self,
        dataset: Dataset,
        output_dir: str | Path,
        num_images: int = 4,
        interval: int = 1,
        sampler: str | None = None,
        steps: int | None = None,
        churn: Any = None,
        seed: int = 0,
        cond_key: str = "cond",
        network: nn.Module | None = None,
        view_key: str = "view",
    ) -> None:
        super().__init__(dataset, output_dir, num_images, interval, cond_key=cond_key, network=network,
                         view_key=view_key)  # fmt: skip
        self.sampler, self.steps, self.churn, self.seed = sampler, steps, churn, seed

    def write(self, path: Path, network: nn.Module, images: Tensor, cond: Tensor, views: list | None) -> None:
        random = torch.Generator(cond.device).manual_seed(self.seed)
        generated, _ = network.sample(cond, self.sampler, self.steps, self.churn, random, views=views)
        write_sample_grid(path, cond, generated)


class ReconstructionGridSaver(_EpochGridSaver):
    """Trainer handler: rows (image | Gamma-VAE reconstruction from the posterior mean) for the first `num_images`
    items of `dataset`."""

    prefix = "reconstructions"

    def write(self, path: Path, network: nn.Module, images: Tensor, cond: Tensor, views: list | None) -> None:
        write_reconstruction_grid(path, images, network(images, (cond > 0).float())[0])


class GeneratedImageWriter:
    """Evaluator handler: each generated "pred" to `<output_dir>/<name>.png` and `<name>.nii.gz` (uint8, CAMUS NIfTI
    orientation), `name` = `name_format` filled from the batch item (default "{patient}_{view}_{phase}"), and at the
    end `grid.png` with rows (label overlay | generated) for the first `grid_images` items; the batch's `cond_key`
    is the condition map (the bundle's input "image")."""

    def __init__(
        self,
        output_dir: str | Path,
        name_format: str = "{patient}_{view}_{phase}",
        grid_images: int = 8,
        cond_key: str = "image",
    ) -> None:
        self.output_dir, self.name_format, self.grid_images = Path(output_dir), name_format, grid_images
        self.cond_key = cond_key
        self.grid: list[tuple[Tensor, Tensor]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda _: self.grid.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.write_batch)
        engine.add_event_handler(Events.COMPLETED, self.write_grid)

    def write_batch(self, engine: Engine) -> None:
        batch, output = engine.state.batch, engine.state.output
        items = batch if isinstance(batch, list) else decollate_batch(batch)
        outputs = output if isinstance(output, list) else decollate_batch(output)
        for item, out in zip(items, outputs):
            name = self.name_format.format(**item)
            image = to_uint8(out["pred"])[0].numpy()
            write_png(self.output_dir / f"{name}.png", image)
            write_camus_nifti(self.output_dir / f"{name}.nii.gz", image)
            if len(self.grid) < self.grid_images:
                self.grid.append((convert_to_tensor(item[self.cond_key], track_meta=False).cpu(), out["pred"].cpu()))

    def write_grid(self, engine: Engine) -> None:
        if self.grid:
            cond, images = (torch.stack(column) for column in zip(*self.grid))
            write_sample_grid(self.output_dir / "grid.png", cond, images)
