"""What MONAI Label's `BundleInferTask` reads from our inference configs (checked end to end with MONAI Label by
tests/test_monai_label_server.py, the real server, and scripts/check_monai_label.py): after `preprocessing`, a segmenter's image still carries the source `spatial_shape`
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
from echodiff.errors import ConfigValueError, MissingFileError
from monai.bundle import ConfigParser
from monai.data import MetaTensor

PDDPM = ("inference.json", "inference_pddpm.json")


def _preprocessing(bundle: str, configs: tuple[str, ...], dataset_dir: Path):
    parser = ConfigParser(merged_config(bundle, configs, {"dataset_dir": str(dataset_dir), "image_size": [32, 32]}))
    return parser.get_parsed_content("preprocessing")


@pytest.mark.parametrize(("bundle", "configs"), [("echo_pddpm_segmentation", ("inference.json",)),
                                                 ("echo_pddpm_segmentation", PDDPM),
                                                 ("echo_dfkd_segmentation", ("inference.json",))])  # fmt: skip
def test_segmenter_preprocessing_keeps_the_source_grid_for_monai_label(phantom_camus: Path, bundle: str,
                                                                       configs: tuple[str, ...]):  # fmt: skip
    path = list_camus(phantom_camus, "testing", require_label=False)[0]["image"]
    image = _preprocessing(bundle, configs, phantom_camus)({"image": path})["image"]
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


def test_pddpm_export_is_one_self_contained_inference_json_with_both_checkpoints(tmp_path: Path):
    """The served file alone, parsed as MONAI Label parses it (bundle_root = the exported folder), builds the PD-DDPM
    network and points its two checkpoints at the copies inside the export."""
    weights, segmenter = tmp_path / "pddpm.pt", tmp_path / "segmenter.pt"
    weights.write_bytes(b"pddpm weights")
    segmenter.write_bytes(b"segmenter weights")
    export = export_for_monai_label("echo_pddpm_segmentation", tmp_path / "served", weights, PDDPM,
                                    {"sampling_seed": 0}, {"presegmentation_ckpt": segmenter})  # fmt: skip
    assert export.name == "echo_pddpm_segmentation"  # MONAI Label infers the task type from the folder name
    parser = ConfigParser()
    parser.read_config(str(export / "configs" / "inference.json"))
    parser["bundle_root"] = str(export)
    assert Path(parser.get_parsed_content("ckpt_path")).read_bytes() == b"pddpm weights"
    assert Path(parser.get_parsed_content("presegmentation_ckpt")).read_bytes() == b"segmenter weights"
    assert type(parser.get_parsed_content("network_def")).__name__ == "DiffusionModelUNet"
    assert parser["inferer"]["_target_"] == "echodiff.inferers.PDDPMInferer" and parser["sampling_seed"] == 0
    assert (export / "configs" / "metadata.json").is_file()


def test_pddpm_export_refuses_to_serve_its_weights_as_the_presegmentation_too(tmp_path: Path):
    weights = tmp_path / "pddpm.pt"
    weights.write_bytes(b"pddpm weights")
    with pytest.raises(ConfigValueError, match="presegmentation_ckpt point at models/model.pt.*extra_models"):
        export_for_monai_label("echo_pddpm_segmentation", tmp_path / "served", weights, PDDPM)


def test_export_names_a_missing_config_or_model(tmp_path: Path):
    with pytest.raises(MissingFileError, match="echo_pddpm_segmentation has no config inference_typo.json"):
        merged_config("echo_pddpm_segmentation", ["inference.json", "inference_typo.json"])
    with pytest.raises(MissingFileError, match=r"model weights .*absent\.pt do not exist"):
        export_for_monai_label("echo_pddpm_segmentation", tmp_path, tmp_path / "absent.pt", PDDPM)
    with pytest.raises(MissingFileError, match=r"absent_seg\.pt do not exist; expected the weights of config key "
                                               "presegmentation_ckpt"):
        export_for_monai_label("echo_pddpm_segmentation", tmp_path, __file__, PDDPM,
                               extra_models={"presegmentation_ckpt": tmp_path / "absent_seg.pt"})


@pytest.mark.parametrize(("bundle", "mode", "labels"), [
    ("echo_pddpm_segmentation", None, {"0": "background", "1": "LV cavity", "2": "LV myocardium", "3": "left atrium"}),
    ("echo_dfkd_segmentation", "lv", {"0": "background", "1": "LV cavity"}),
    ("echo_dfkd_segmentation", "multiclass",
     {"0": "background", "1": "LV cavity", "2": "LV myocardium", "3": "left atrium"}),
])  # fmt: skip
def test_export_names_the_served_label_values_not_the_network_channels(tmp_path: Path, bundle, mode, labels):
    """MONAI Label names labels after the first output's channel_def: the segmenter's metadata already lists its label
    map's classes; the student's `monai_label_labels` key replaces its one logit channel's description. Free text
    naming models/model.pt (ckpt_hint) is not a stale checkpoint key."""
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    overrides = {"mode": mode} if mode else {}
    export = export_for_monai_label(bundle, tmp_path / "served", weights, overrides=overrides, name=f"{bundle}_x")
    assert export.name == f"{bundle}_x"
    metadata = json.loads((export / "configs" / "metadata.json").read_text())
    assert next(iter(metadata["network_data_format"]["outputs"].values()))["channel_def"] == labels


def test_export_refuses_a_served_name_that_changes_the_task_type_and_labels_that_are_not_a_mapping(tmp_path: Path):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    with pytest.raises(ConfigValueError, match="served name 'views' makes MONAI Label treat echo_view_classification "
                                               "as a segmentation model; expected a name containing 'classification'"):
        export_for_monai_label("echo_view_classification", tmp_path, weights, name="views")
    with pytest.raises(ConfigValueError, match="config key monai_label_labels is 'LV'; expected label values -> names"):
        export_for_monai_label("echo_dfkd_segmentation", tmp_path, weights, overrides={"monai_label_labels": "LV"})
