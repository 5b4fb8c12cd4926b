"""What MONAI Label's `BundleInferTask` reads from our inference configs (checked end to end with MONAI Label by
scripts/check_monai_label.py): after `preprocessing`, a segmenter's image still carries the source `spatial_shape`
and an `original_affine` for the channel-first array, which its `Restored` step uses to put the label map back on
the source grid; the view classifier's image carries no spatial metadata, so that step leaves its class scores alone.
MONAI Label reads one `inference.json`: the export merges PD-DDPM's overlay into it."""

from __future__ import annotations

from pathlib import Path

import json

import numpy as np
import pytest
import torch
from echodiff.bundle import export_for_monai_label, merged_config
from echodiff.data.camus import list_camus, read_camus_frame
from echodiff.errors import MissingFileError
from monai.bundle import ConfigParser
from monai.data import MetaTensor

PDDPM = ("inference.json", "inference_pddpm.json")


def _preprocessing(bundle: str, configs: tuple[str, ...], dataset_dir: Path):
    parser = ConfigParser(merged_config(bundle, configs, {"dataset_dir": str(dataset_dir), "image_size": [32, 32]}))
    return parser.get_parsed_content("preprocessing")


@pytest.mark.parametrize("configs", [("inference.json",), PDDPM])
def test_segmenter_preprocessing_keeps_the_source_grid_for_monai_label(phantom_camus: Path, configs: tuple[str, ...]):
    path = list_camus(phantom_camus, "testing", require_label=False)[0]["image"]
    image = _preprocessing("echo_pddpm_segmentation", configs, phantom_camus)({"image": path})["image"]
    source, file_affine = read_camus_frame(path)
    assert isinstance(image, MetaTensor) and image.shape == (1, 32, 32)
    assert tuple(image.meta["spatial_shape"]) == source.shape == (64, 64)
    for row, col in ((0, 0), (63, 5), (7, 63)):  # channel-first (0, row, column) -> the file's (column, row, 0)
        np.testing.assert_allclose(image.meta["original_affine"] @ np.array([0, row, col, 1.0]),
                                   file_affine @ np.array([col, row, 0, 1.0]))


def test_view_classifier_preprocessing_carries_no_spatial_metadata(phantom_camus: Path):
    path = list_camus(phantom_camus, "testing", require_label=False)[0]["image"]
    image = _preprocessing("echo_view_classification", ("inference.json",), phantom_camus)({"image": path})["image"]
    assert type(image) is torch.Tensor and image.shape == (1, 32, 32)


def test_pddpm_export_serves_the_merged_overlay_as_its_one_inference_json(tmp_path: Path):
    weights = tmp_path / "pddpm.pt"
    weights.write_bytes(b"weights")
    overrides = {"presegmentation_ckpt": "/models/segmenter.pt"}
    export = export_for_monai_label("echo_pddpm_segmentation", tmp_path / "served", weights, PDDPM, overrides)
    served = json.loads((export / "configs" / "inference.json").read_text())
    assert export.name == "echo_pddpm_segmentation"  # MONAI Label infers the task type from the folder name
    assert served == merged_config("echo_pddpm_segmentation", PDDPM, overrides)
    assert served["network_def"]["_target_"] == "DiffusionModelUNet"
    assert served["inferer"]["_target_"] == "echodiff.inferers.PDDPMInferer"
    assert served["presegmentation_ckpt"] == "/models/segmenter.pt" and served["method"]["name"] == "pddpm"
    assert (export / "models" / "model.pt").read_bytes() == b"weights"
    assert (export / "configs" / "metadata.json").is_file()


def test_export_names_a_missing_config_or_model(tmp_path: Path):
    with pytest.raises(MissingFileError, match="echo_pddpm_segmentation has no config inference_typo.json"):
        merged_config("echo_pddpm_segmentation", ["inference.json", "inference_typo.json"])
    with pytest.raises(MissingFileError, match=r"model weights .*absent\.pt do not exist"):
        export_for_monai_label("echo_pddpm_segmentation", tmp_path, tmp_path / "absent.pt", PDDPM)
