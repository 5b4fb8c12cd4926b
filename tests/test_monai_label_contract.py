"""What MONAI Label's `BundleInferTask` reads from our inference configs (checked end to end with MONAI Label by
scripts/check_monai_label.py): after `preprocessing`, a segmenter's image still carries the source `spatial_shape`
and an `original_affine` for the channel-first array, which its `Restored` step uses to put the label map back on
the source grid; the view classifier's image carries no spatial metadata, so that step leaves its class scores alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from echodiff.bundle import find_bundle_root
from echodiff.data.camus import list_camus, read_camus_frame
from monai.bundle import ConfigParser
from monai.data import MetaTensor


def _preprocessing(bundle: str, config: str, dataset_dir: Path):
    parser = ConfigParser()
    parser.read_config(str(Path(find_bundle_root(bundle)) / "configs" / config))
    parser.update({"dataset_dir": str(dataset_dir), "image_size": [32, 32]})
    return parser.get_parsed_content("preprocessing")


@pytest.mark.parametrize("config", ["inference.json", "inference_pddpm.json"])
def test_segmenter_preprocessing_keeps_the_source_grid_for_monai_label(phantom_camus: Path, config: str):
    path = list_camus(phantom_camus, "testing", require_label=False)[0]["image"]
    image = _preprocessing("echo_pddpm_segmentation", config, phantom_camus)({"image": path})["image"]
    source, file_affine = read_camus_frame(path)
    assert isinstance(image, MetaTensor) and image.shape == (1, 32, 32)
    assert tuple(image.meta["spatial_shape"]) == source.shape == (64, 64)
    for row, col in ((0, 0), (63, 5), (7, 63)):  # channel-first (0, row, column) -> the file's (column, row, 0)
        np.testing.assert_allclose(image.meta["original_affine"] @ np.array([0, row, col, 1.0]),
                                   file_affine @ np.array([col, row, 0, 1.0]))


def test_view_classifier_preprocessing_carries_no_spatial_metadata(phantom_camus: Path):
    path = list_camus(phantom_camus, "testing", require_label=False)[0]["image"]
    image = _preprocessing("echo_view_classification", "inference.json", phantom_camus)({"image": path})["image"]
    assert type(image) is torch.Tensor and image.shape == (1, 32, 32)
