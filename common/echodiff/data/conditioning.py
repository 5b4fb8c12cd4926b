"""Sector-aware conditioning map for the label-map-guided generator (docs/methods.md section 1).

Classes: 0 outside the ultrasound sector, 1 LV cavity, 2 in-sector tissue (CAMUS label 0 inside the sector),
3 myocardium, 4 left atrium. The generator one-hot encodes this map for SPADE.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_dst_type, convert_to_numpy
from scipy import ndimage

from ..errors import LabelValueError, ShapeMismatchError

__all__ = ["CONDITION_CLASSES", "N_CONDITION_CLASSES", "SectorConditionMapd", "camus_labels_of_condition",
           "checked_condition_map", "condition_map", "sector_mask"]  # fmt: skip

CONDITION_CLASSES = ("outside sector", "LV cavity", "in-sector tissue", "myocardium", "left atrium")
N_CONDITION_CLASSES = len(CONDITION_CLASSES)
# condition class for each CAMUS label inside the sector: background -> tissue, LV -> 1, myocardium -> 3, LA -> 4
_CONDITION_OF_LABEL = np.array([2, 1, 3, 4], dtype=np.int64)
# and back: CAMUS label of each condition class (outside the sector and tissue are both background)
_CAMUS_LABEL_OF_CONDITION = np.array([0, 1, 0, 2, 3], dtype=np.uint8)


def sector_mask(image: NdarrayOrTensor, label: NdarrayOrTensor | None = None) -> NdarrayOrTensor:
    """Boolean ultrasound-sector mask of an (H, W) or (C, H, W) frame, same type and shape as `image`.

    The sector is where the image is non-zero, united with `label > 0` when a label map is given (a labelled
    pixel is always in the sector), then hole-filled per frame so that blood pools that happen to be exactly 0
    inside the sector still count as sector. Expects raw or [0, 1] intensities, with exactly 0 outside the sector.
    """
    mask = convert_to_numpy(image) > 0
    if label is not None:
        mask |= convert_to_numpy(label) > 0
    frames = mask.reshape(-1, *mask.shape[-2:])
    filled = np.stack([ndimage.binary_fill_holes(frame) for frame in frames]).reshape(mask.shape)
    return convert_to_dst_type(filled, image, dtype=torch.bool if isinstance(image, torch.Tensor) else bool)[0]


def condition_map(image: NdarrayOrTensor, label: NdarrayOrTensor) -> NdarrayOrTensor:
    """Conditioning map (int64, shape and array type of `label`) from a frame and its CAMUS label map.

    `label` holds CAMUS labels 0..3, as `LoadCAMUSd` checked them where they were read (after that, resizing and
    augmentation sample by nearest neighbour and keep the set); they are not checked again here.
    """
    image_np, label_np = convert_to_numpy(image), convert_to_numpy(label).astype(np.int64)
    if image_np.shape[-2:] != label_np.shape[-2:]:
        raise ShapeMismatchError(
            f"image shape {image_np.shape} and label shape {label_np.shape} differ in (H, W); "
            "expected the same frame size."
        )
    inside = np.broadcast_to(sector_mask(image_np, label_np), label_np.shape)
    cond = np.where(inside, _CONDITION_OF_LABEL[label_np], 0)
    return convert_to_dst_type(cond, label, dtype=torch.int64 if isinstance(label, torch.Tensor) else np.int64)[0]


def checked_condition_map(cond: NdarrayOrTensor) -> NdarrayOrTensor:
    """`cond` itself once it holds condition classes 0..4 only, else `LabelValueError` naming the values found: the
    check for a map made by hand (`condition_map` builds its maps from labels that `LoadCAMUSd` checked)."""
    values = torch.unique(torch.as_tensor(cond))
    if ((values < 0) | (values >= N_CONDITION_CLASSES) | (values != values.round())).any():
        shown = ", ".join(f"{v:g}" for v in values.tolist())
        names = ", ".join(f"{i} {name}" for i, name in enumerate(CONDITION_CLASSES))
        raise LabelValueError(
            f"condition map has values {{{shown}}}; expected condition classes 0..{N_CONDITION_CLASSES - 1} ({names})"
        )
    return cond


def camus_labels_of_condition(cond: np.ndarray) -> np.ndarray:
    """CAMUS labels 0..3 (uint8) of a conditioning map 0..4: 1 -> 1, 3 -> 2, 4 -> 3, 0 and 2 -> 0."""
    return _CAMUS_LABEL_OF_CONDITION[np.asarray(cond, dtype=np.int64)]


class SectorConditionMapd(MapTransform):
    """Add `cond_key` = the (1, H, W) int64 conditioning map of `image_key` and `label_key` (labels 0..3)."""

    def __init__(
        self, image_key: Hashable = "image", label_key: Hashable = "label", cond_key: Hashable = "cond"
    ) -> None:
        super().__init__((image_key, label_key))
        self.image_key, self.label_key, self.cond_key = image_key, label_key, cond_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        cond = condition_map(d[self.image_key], d[self.label_key])
        d[self.cond_key] = cond[None] if cond.ndim == 2 else cond
        return d
