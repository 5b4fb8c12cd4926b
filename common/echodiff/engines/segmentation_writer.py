"""Evaluator handler: each prediction saved at its source image's resolution, as CAMUS-oriented NIfTI (label map and,
when present, uncertainty map) and a PNG overlay, named after the source file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from ignite.engine import Engine, Events
from PIL import Image

from echodiff.data.camus import read_camus_array, write_camus_nifti
from echodiff.engines.segmentation_report import label_map_at, map_at
from echodiff.io import atomic_write

LABEL_COLOURS = {1: (230, 60, 60), 2: (60, 200, 90), 3: (70, 130, 250)}  # LV cavity, myocardium, left atrium


def write_float_nifti(path: str | os.PathLike, array_hw: np.ndarray, spacing: tuple[float, float]) -> Path:
    """An (H, W) float map written in the orientation of `write_camus_nifti` (nibabel (W, H); zooms column, row)."""
    affine = np.diag([float(spacing[1]), float(spacing[0]), 1.0, 1.0])
    image = nib.Nifti1Image(np.ascontiguousarray(np.asarray(array_hw, dtype=np.float32).T), affine)
    return atomic_write(path, lambda tmp: nib.save(image, tmp), suffix=".nii.gz")


def overlay_png(image_hw: np.ndarray, labels_hw: np.ndarray, uncertainty_hw: np.ndarray | None = None,
                alpha: float = 0.4) -> Image.Image:
    """RGB picture: the grey image with the labels blended in (LV cavity red, myocardium green, LA blue) and, when
    given, the uncertainty map beside it (black to yellow, scaled to its own maximum)."""
    grey = image_hw.astype(np.float64)
    grey = (grey - grey.min()) / max(np.ptp(grey), 1e-8) * 255
    panel = np.repeat(grey[..., None], 3, axis=2)
    for label, colour in LABEL_COLOURS.items():
        mask = labels_hw == label
        panel[mask] = (1 - alpha) * panel[mask] + alpha * np.asarray(colour, dtype=np.float64)
    if uncertainty_hw is not None:
        scaled = uncertainty_hw / max(float(uncertainty_hw.max()), 1e-8)
        heat = np.stack([np.clip(2 * scaled, 0, 1), np.clip(2 * scaled - 1, 0, 1), np.zeros_like(scaled)], axis=2)
        panel = np.concatenate([panel, 255 * heat], axis=1)
    return Image.fromarray(np.round(panel).astype(np.uint8))


def _stem(source: str) -> str:
    name = Path(source).name
    for suffix in (".nii.gz", ".nii", ".mhd", ".mha"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


class SegmentationSaver:
    """Writes `<output_dir>/<source stem>_pred.nii.gz` (uint8 labels 0..3), `_uncertainty.nii.gz` (float32, when the
    output has `uncertainty_key`) and `_overlay.png` for every image, resized (labels nearest, uncertainty bilinear) to
    the source image read again from `source_key`, with its pixel spacing."""

    def __init__(
        self,
        output_dir: str,
        pred_key: str = "pred",
        uncertainty_key: str = "uncertainty",
        source_key: str = "source",
        overlay: bool = True,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.pred_key, self.uncertainty_key, self.source_key = pred_key, uncertainty_key, source_key
        self.overlay = overlay
        self.logger = logging.getLogger(self.__class__.__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._save)

    def _save(self, engine: Engine) -> None:
        for item, batch_item in zip(engine.state.output, engine.state.batch):
            source = str(batch_item[self.source_key])
            image, spacing = read_camus_array(source)
            labels = label_map_at(item[self.pred_key], image.shape)[0].numpy().astype(np.uint8)
            stem = self.output_dir / _stem(source)
            write_camus_nifti(f"{stem}_pred.nii.gz", labels, spacing)
            uncertainty = None
            if self.uncertainty_key in item:
                uncertainty = map_at(torch.as_tensor(item[self.uncertainty_key]), image.shape)[0].numpy()
                write_float_nifti(f"{stem}_uncertainty.nii.gz", uncertainty, spacing)
            if self.overlay:
                png = overlay_png(image, labels, uncertainty)
                atomic_write(f"{stem}_overlay.png", lambda tmp, png=png: png.save(tmp, format="PNG"), suffix=".png")
            self.logger.debug("saved %s predictions to %s", source, self.output_dir)
