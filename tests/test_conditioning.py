"""Sector-aware conditioning map: every class on a hand-made frame, hole filling, array types, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from echodiff.data.camus import LoadCAMUSd, list_camus, read_camus_array, write_camus_nifti
from echodiff.data.conditioning import N_CONDITION_CLASSES, SectorConditionMapd, condition_map, sector_mask
from echodiff.errors import LabelValueError, ShapeMismatchError
from monai.transforms import Compose

# 6 x 6 frame: sector = the inner 4 x 4 square; one blood pixel inside it is exactly 0 (a hole to fill)
IMAGE = np.zeros((6, 6), np.float32)
IMAGE[1:5, 1:5] = 0.5
IMAGE[2, 2] = 0.0
LABEL = np.zeros((6, 6), np.int64)
LABEL[2, 3], LABEL[3, 3], LABEL[3, 2] = 1, 2, 3
EXPECTED = np.array([
    [0, 0, 0, 0, 0, 0],
    [0, 2, 2, 2, 2, 0],
    [0, 2, 2, 1, 2, 0],
    [0, 2, 4, 3, 2, 0],
    [0, 2, 2, 2, 2, 0],
    [0, 0, 0, 0, 0, 0],
])


def test_condition_map_gives_every_class_on_a_hand_made_frame():
    cond = condition_map(IMAGE, LABEL)
    np.testing.assert_array_equal(cond, EXPECTED)
    assert cond.dtype == np.int64
    assert set(np.unique(cond).tolist()) == set(range(N_CONDITION_CLASSES))


def test_sector_mask_fills_zero_holes_and_includes_labelled_pixels():
    expected = np.zeros((6, 6), bool)
    expected[1:5, 1:5] = True
    np.testing.assert_array_equal(sector_mask(IMAGE), expected)
    image = IMAGE.copy()
    image[1, 1:5] = 0  # the top edge of the sector is dark but labelled
    label = np.zeros((6, 6), np.int64)
    label[1, 1:5] = 2
    without_label = expected.copy()
    without_label[1], without_label[2, 2] = False, False  # the zero pixel now opens onto the edge: no hole
    np.testing.assert_array_equal(sector_mask(image), without_label)
    np.testing.assert_array_equal(sector_mask(image, label), expected)


def test_condition_map_keeps_torch_and_channel_first_inputs():
    cond = condition_map(torch.from_numpy(IMAGE)[None], torch.from_numpy(LABEL)[None])
    assert isinstance(cond, torch.Tensor) and cond.dtype == torch.int64 and cond.shape == (1, 6, 6)
    np.testing.assert_array_equal(cond[0].numpy(), EXPECTED)
    mask = sector_mask(torch.from_numpy(IMAGE)[None])
    assert mask.dtype == torch.bool and mask.shape == (1, 6, 6)


def test_sector_condition_mapd_writes_a_channel_first_cond(phantom_camus):
    transform = Compose([LoadCAMUSd(), SectorConditionMapd()])
    data = transform(list_camus(phantom_camus, "training")[0])
    assert data["cond"].shape == (1, 64, 64) and torch.as_tensor(data["cond"]).dtype == torch.int64
    assert set(np.unique(data["cond"]).tolist()) == set(range(N_CONDITION_CLASSES))
    np.testing.assert_array_equal(data["cond"] == 0, data["image"] == 0)  # phantom sector is non-zero throughout
    out = SectorConditionMapd(cond_key="c")({"image": IMAGE, "label": LABEL})
    assert out["c"].shape == (1, 6, 6)


def test_bad_labels_are_refused_where_they_are_read_naming_the_file(phantom_camus, tmp_path):
    item = list_camus(phantom_camus, "training")[0]
    labels, spacing = read_camus_array(item["label"])
    bad = write_camus_nifti(tmp_path / "patient0001_2CH_ED_gt.nii.gz", np.where(labels == 3, 5, labels), spacing)
    with pytest.raises(LabelValueError, match=r"patient0001_2CH_ED_gt\.nii\.gz has label values \{0, 1, 2, 5\}"):
        SectorConditionMapd()(LoadCAMUSd()({**item, "label": str(bad)}))


def test_frames_of_different_sizes_are_reported():
    with pytest.raises(ShapeMismatchError, match=r"image shape \(6, 6\) and label shape \(1, 5, 6\) differ"):
        condition_map(IMAGE, np.zeros((1, 5, 6), np.int64))
