"""The view as a class label (echodiff.data.views): one mapping, read from CAMUS file names, checked, and carried by
the generator bundle's training batches and inference items."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from echodiff.data import VIEW_CLASSES, CAMUSViewd, list_camus, view_indices, view_of_file
from echodiff.errors import ConfigValueError
from monai.bundle import ConfigParser

GENERATION_CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / "echo_ldm_generation" / "configs"


def test_views_map_to_the_classes_of_the_view_classifier_by_name_or_index():
    assert VIEW_CLASSES == {0: "2CH", 1: "4CH"}
    assert view_indices(["2CH", "4CH", 1, 0]).tolist() == [0, 1, 1, 0]
    assert view_indices("4CH").tolist() == [1] and view_indices(torch.tensor([1, 0])).tolist() == [1, 0]


@pytest.mark.parametrize("bad", ["3CH", "2ch", 2, -1, True, 0.0])
def test_a_bad_view_value_is_named_with_the_views_expected(bad):
    with pytest.raises(ConfigValueError, match=rf"^views {bad!r} is not a view; expected one of '2CH' \(or 0\), "
                       r"'4CH' \(or 1\)$"):  # fmt: skip
        view_indices(["2CH", bad], "views")


def test_the_view_is_read_from_the_camus_file_name_and_a_name_without_one_is_refused(phantom_camus: Path):
    for item in list_camus(phantom_camus, "training"):
        assert view_of_file(item["image"]) == view_of_file(item["label"]) == item["view"]
    with pytest.raises(ConfigValueError, match=r"^/x/map_ED\.nii\.gz: the file name names no view; expected a CAMUS "
                       r"name patientXXXX_<view>_<phase>\.nii\.gz with view 2CH or 4CH"):  # fmt: skip
        view_of_file("/x/map_ED.nii.gz")


def test_camus_viewd_takes_the_file_names_view_unless_one_is_given():
    item = {"label": "/data/patient0003_4CH_ES_gt.nii.gz"}
    assert CAMUSViewd()(item)["view"] == "4CH"
    assert CAMUSViewd(view_key="generated_view", view=0)(item)["generated_view"] == "2CH"
    with pytest.raises(ConfigValueError, match="^view 'LAX' is not a view"):
        CAMUSViewd(view="LAX")


def test_diffusion_training_batches_carry_the_view_of_each_frames_file_name(phantom_camus: Path):
    parser = ConfigParser()
    parser.read_config([str(GENERATION_CONFIGS / name) for name in ("train_autoencoder.json", "train_diffusion.json")])
    parser.update({"bundle_root": str(GENERATION_CONFIGS.parent), "dataset_dir": str(phantom_camus), "image_size": 32,
                   "num_workers": 0, "batch_size": 16, "train#dataloader#shuffle": False})  # fmt: skip
    assert parser.get_parsed_content("view_condition") is True  # the bundle trains view-conditioned generators
    batch = next(iter(parser.get_parsed_content("train#dataloader")))
    files = batch["image"].meta["filename_or_obj"]
    assert batch["view"] == [view_of_file(f) for f in files] and set(batch["view"]) == {"2CH", "4CH"}
