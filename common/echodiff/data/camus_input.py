"""CAMUS frames as network input: the one loading block of every bundle config (training, inference, evaluation).

A library transform rather than shared JSON, because a bundle exported alone carries its own configs only.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.transforms import MapTransform, Resized, ScaleIntensityRanged
from monai.utils import convert_to_tensor

from .camus import LoadCAMUSd, list_camus

__all__ = ["LoadResizedCAMUSd", "load_camus_images"]

CAMUS_INTENSITY_RANGE = (0.0, 255.0)  # the uint8 grey levels of the CAMUS releases


class LoadResizedCAMUSd(MapTransform):
    """`LoadCAMUSd`, then image intensities 0..255 scaled to [0, 1] (clipped) and the image resized to `spatial_size`
    (area), the label map to `label_spatial_size` (nearest; default `spatial_size`).

    Only `keys` are loaded and resized (e.g. "image" alone for inference); absent keys are skipped. The image keeps the
    source `spatial_shape` and `original_affine` of `LoadCAMUSd`, so a prediction can be restored to the source grid.
    A deterministic MapTransform, not a nested `Compose` (which MONAI treats as random): `CacheDataset` caches its
    output, and the random transforms after it draw the same seeds as after the three transforms written out.
    It is not an `InvertibleTransform`: `Invertd` cannot undo it; predictions go back to the source grid through
    `spatial_shape` / `original_affine` (e.g. `echodiff.engines.SegmentationSaver`, MONAI Label's `Restored`).
    """

    def __init__(
        self,
        spatial_size: Sequence[int] | int,
        keys: Sequence[Hashable] | Hashable = ("image", "label"),
        label_spatial_size: Sequence[int] | int | None = None,
        image_key: Hashable = "image",
        label_key: Hashable = "label",
    ) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.transforms: list[MapTransform] = [
            LoadCAMUSd(self.keys, allow_missing_keys=True, image_key=image_key, label_key=label_key)
        ]
        if image_key in self.keys:
            self.transforms += [
                ScaleIntensityRanged(image_key, *CAMUS_INTENSITY_RANGE, 0.0, 1.0, clip=True, allow_missing_keys=True),
                Resized(image_key, spatial_size, mode="area", allow_missing_keys=True),
            ]
        if label_key in self.keys:
            label_size = spatial_size if label_spatial_size is None else label_spatial_size
            self.transforms.append(Resized(label_key, label_size, mode="nearest", allow_missing_keys=True))

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for transform in self.transforms:
            d = transform(d)
        return d


def load_camus_images(dataset_dir: str | os.PathLike, split: str, spatial_size: Sequence[int]) -> torch.Tensor:
    """(N, 1, H, W) images in [0, 1] of every frame of `split`, loaded as the bundles load them
    (`LoadResizedCAMUSd`)."""
    load = LoadResizedCAMUSd(spatial_size, keys="image")
    items = list_camus(dataset_dir, split, require_label=False)
    return torch.stack([convert_to_tensor(load({"image": item["image"]})["image"], track_meta=False).float()
                        for item in items])  # fmt: skip
