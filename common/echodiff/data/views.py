"""The apical view (2CH / 4CH) of CAMUS frames: view-classification items, and the view as a class label.

One mapping serves every use (classifier targets, the generators' view condition): `VIEW_CLASSES`, 0 = 2CH,
1 = 4CH, the order of `VIEWS`. The view is read from the CAMUS file name, patientXXXX_<view>_<phase>[_gt].nii.gz.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform

from ..errors import ConfigValueError
from .camus import VIEWS, list_camus

__all__ = ["VIEW_CLASSES", "CAMUSViewd", "view_classification_items", "view_indices", "view_of_file"]

VIEW_CLASSES = dict(enumerate(VIEWS))  # 0: 2CH, 1: 4CH
_VIEW_IN_NAME = re.compile(r"_(" + "|".join(VIEWS) + r")_")


def view_classification_items(
    dataset_dir: str, split: str = "training", phases: tuple[str, ...] = ("ED", "ES")
) -> list[dict]:
    """One item per image of the split: {"image", "source": image path, "label": 0 for 2CH / 1 for 4CH, "patient",
    "view", "phase"}. Label maps are neither needed nor read, so unlabelled folders work too."""
    return [
        {"image": item["image"], "source": item["image"], "label": item["view_index"], "patient": item["patient"],
         "view": item["view"], "phase": item["phase"]}
        for item in list_camus(dataset_dir, split=split, phases=phases, require_label=False)
    ]


def _view_index(view: object, what: str) -> int:
    if isinstance(view, str) and view in VIEWS:
        return VIEWS.index(view)
    if isinstance(view, int) and not isinstance(view, bool) and view in VIEW_CLASSES:
        return int(view)
    expected = ", ".join(f"{name!r} (or {index})" for index, name in VIEW_CLASSES.items())
    raise ConfigValueError(f"{what} {view!r} is not a view; expected one of {expected}")


def view_indices(views: str | int | Sequence[str | int] | torch.Tensor, what: str = "view") -> torch.Tensor:
    """(B,) int64 view classes (`VIEW_CLASSES`) of views given by name ("2CH", "4CH") or class index; a single view
    gives B = 1. A value that is neither raises `ConfigValueError` naming it (`what` says where it came from)."""
    if isinstance(views, torch.Tensor):
        views = views.reshape(-1).tolist()
    elif isinstance(views, (str, int)):
        views = [views]
    return torch.tensor([_view_index(view, what) for view in views], dtype=torch.int64)


def view_of_file(path: str | os.PathLike) -> str:
    """The view in a CAMUS file name (patientXXXX_<view>_<phase>...); `ConfigValueError` naming the file otherwise."""
    found = _VIEW_IN_NAME.search(os.path.basename(os.fspath(path)))
    if found is None:
        raise ConfigValueError(
            f"{path}: the file name names no view; expected a CAMUS name patientXXXX_<view>_<phase>.nii.gz with view "
            f"{' or '.join(VIEWS)}, or give the view explicitly"
        )
    return found.group(1)


class CAMUSViewd(MapTransform):
    """Set `view_key` to the view in the CAMUS file name of `source_key` (a path, or a MetaTensor loaded from one), or
    to `view` for every item when given (checked against `VIEWS`)."""

    def __init__(self, source_key: Hashable = "label", view_key: Hashable = "view", view: str | None = None) -> None:
        super().__init__(source_key)
        self.source_key, self.view_key = source_key, view_key
        self.view = None if view is None else VIEW_CLASSES[_view_index(view, "view")]

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        if self.view is not None:
            d[self.view_key] = self.view
            return d
        source = d[self.source_key]
        d[self.view_key] = view_of_file(source.meta["filename_or_obj"] if isinstance(source, MetaTensor) else source)
        return d
