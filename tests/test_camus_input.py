"""LoadResizedCAMUSd: the bundle configs' loading block (read, scale 0..255 to [0, 1], resize) as one transform."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from echodiff.data import LoadResizedCAMUSd
from echodiff.data.camus import LoadCAMUSd, list_camus
from monai.data import CacheDataset
from monai.transforms import Compose, RandAffined, Resized, ScaleIntensityRanged


@pytest.fixture(scope="module")
def item(phantom_camus: Path) -> dict:
    return list_camus(phantom_camus, "training")[0]


def test_equals_load_scale_and_resize_of_image_and_label(item: dict):
    explicit = Compose([
        LoadCAMUSd(["image", "label"]),
        ScaleIntensityRanged("image", a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True),
        Resized(["image", "label"], spatial_size=[32, 32], mode=["area", "nearest"]),
    ])(item)
    data = LoadResizedCAMUSd([32, 32])(item)
    for key in ("image", "label"):
        assert data[key].shape == (1, 32, 32)
        assert torch.equal(torch.as_tensor(data[key]), torch.as_tensor(explicit[key]))
    assert 0.0 <= data["image"].min() and data["image"].max() <= 1.0 and data["image"].max() > 0.5
    assert set(torch.unique(torch.as_tensor(data["label"])).tolist()) == {0.0, 1.0, 2.0, 3.0}


def test_label_map_gets_its_own_size_and_the_image_keeps_its_source_grid(item: dict):
    data = LoadResizedCAMUSd([32, 32], label_spatial_size=[48, 48])(item)
    assert data["image"].shape == (1, 32, 32) and data["label"].shape == (1, 48, 48)
    assert tuple(data["image"].meta["spatial_shape"]) == (64, 64)  # the source frame, for restoring a prediction


def test_only_the_named_keys_are_loaded(item: dict):
    data = LoadResizedCAMUSd([32, 32], keys="image")(item)
    assert data["image"].shape == (1, 32, 32) and data["label"] == item["label"]  # the path is left as it was
    assert LoadResizedCAMUSd([32, 32])({"image": item["image"]})["image"].shape == (1, 32, 32)  # no label: skipped
    label = LoadResizedCAMUSd([32, 32], keys="label")(item)  # the label alone: nearest, values kept, image untouched
    assert label["label"].shape == (1, 32, 32) and label["image"] == item["image"]
    assert set(torch.unique(torch.as_tensor(label["label"])).tolist()) == {0.0, 1.0, 2.0, 3.0}


def test_cached_and_followed_by_random_transforms_as_the_three_transforms_written_out(phantom_camus: Path):
    """A deterministic transform: CacheDataset caches its output and a random transform after it draws the same seeds."""
    items = list_camus(phantom_camus, "training")[:2]

    def augmented(transforms: list) -> list[torch.Tensor]:
        rotate = RandAffined(["image", "label"], prob=1.0, rotate_range=0.3, mode=["bilinear", "nearest"])
        pipeline = Compose([*transforms, rotate])
        pipeline.set_random_state(seed=0)
        dataset = CacheDataset(items, pipeline, num_workers=0, progress=False)
        assert dataset._cache[0]["image"].shape == (1, 32, 32)  # cached up to the first random transform
        return [torch.as_tensor(dataset[i]["image"]) for i in range(len(items))]

    written_out = augmented([
        LoadCAMUSd(["image", "label"]),
        ScaleIntensityRanged("image", a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True),
        Resized(["image", "label"], spatial_size=[32, 32], mode=["area", "nearest"]),
    ])
    assert all(torch.equal(a, b) for a, b in zip(augmented([LoadResizedCAMUSd([32, 32])]), written_out))
