"""Data layer: CAMUS and EchoNet-Dynamic readers, CAMUS frames as network input, built-in phantom, generator
conditioning map, label-map augmentation, the view (view-classification items, the view as a class label)."""

from __future__ import annotations

from . import echonet  # EchoNet-Dynamic reader: echodiff.data.echonet
from .augment import RandLabelMapAugmentd, label_map_augmentation
from .camus import (
    CAMUS_LABELS,
    PHASES,
    SPLITS,
    VIEWS,
    LoadCAMUSd,
    list_camus,
    read_camus_array,
    write_camus_nifti,
    write_split_file,
)
from .camus_input import LoadResizedCAMUSd, load_camus_images
from .conditioning import (
    CONDITION_CLASSES,
    N_CONDITION_CLASSES,
    SectorConditionMapd,
    camus_labels_of_condition,
    condition_map,
    sector_mask,
)
from .phantom import ensure_phantom, make_phantom_camus, make_phantom_echonet, phantom_frame
from .views import VIEW_CLASSES, CAMUSViewd, view_classification_items, view_indices, view_of_file

__all__ = [
    "CAMUS_LABELS",
    "CAMUSViewd",
    "CONDITION_CLASSES",
    "N_CONDITION_CLASSES",
    "camus_labels_of_condition",
    "PHASES",
    "SPLITS",
    "VIEWS",
    "VIEW_CLASSES",
    "LoadCAMUSd",
    "LoadResizedCAMUSd",
    "RandLabelMapAugmentd",
    "SectorConditionMapd",
    "condition_map",
    "echonet",
    "ensure_phantom",
    "label_map_augmentation",
    "list_camus",
    "load_camus_images",
    "make_phantom_camus",
    "make_phantom_echonet",
    "phantom_frame",
    "read_camus_array",
    "sector_mask",
    "view_classification_items",
    "view_indices",
    "view_of_file",
    "write_camus_nifti",
    "write_split_file",
]
