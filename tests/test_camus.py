"""CAMUS data layer: layouts, display orientation, spacing, writing, and the message of every bad input."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import itk
import nibabel as nib
import numpy as np
import pytest
import torch
from echodiff.data.camus import (
    CAMUS_LABELS,
    LoadCAMUSd,
    camus_frame_shape,
    holdout_view,
    label_grid,
    list_camus,
    read_camus_array,
    read_camus_frame,
    write_camus_nifti,
    write_split_file,
)
from echodiff.errors import (
    ConfigKeyError,
    ConfigValueError,
    CorruptFileError,
    EchoDataError,
    EmptySplitError,
    LabelValueError,
    MissingFileError,
    ShapeMismatchError,
)
from monai.data import DataLoader, Dataset
from monai.transforms import Compose


def write_legacy_mhd(path: Path, array_hw: np.ndarray, spacing_xyz: tuple[float, float, float]) -> None:
    """Write an (H, W) uint8 frame as the legacy CAMUS release does: a 3D .mhd header (W, H, 1) plus .raw bytes."""
    height, width = array_hw.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".raw").write_bytes(np.ascontiguousarray(array_hw, dtype=np.uint8).tobytes())
    path.write_text(
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = False\n"
        "TransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 0 0 0\n"
        f"ElementSpacing = {' '.join(map(str, spacing_xyz))}\nDimSize = {width} {height} 1\n"
        f"ElementType = MET_UCHAR\nElementDataFile = {path.with_suffix('.raw').name}\n"
    )


def tiny_nifti_dataset(root: Path, patients=("patient0001", "patient0002"), size=(6, 5)) -> Path:
    """A CAMUS 2023 layout with asymmetric (H, W) frames, labels 0..3 and a training split listing `patients`."""
    rng = np.random.default_rng(0)
    for patient in patients:
        for view in ("2CH", "4CH"):
            for phase in ("ED", "ES"):
                base = root / "database_nifti" / patient / f"{patient}_{view}_{phase}"
                write_camus_nifti(f"{base}.nii.gz", rng.integers(1, 256, size=size, dtype=np.uint8))
                write_camus_nifti(f"{base}_gt.nii.gz", rng.integers(0, 4, size=size, dtype=np.uint8))
    write_split_file(root, "training", patients)
    return root


@pytest.fixture
def nifti_dataset(tmp_path: Path) -> Path:
    return tiny_nifti_dataset(tmp_path / "camus")


def test_legacy_mhd_and_official_nifti_agree_pixel_for_pixel_on_real_sample(shared_data: Path, tmp_path: Path):
    legacy = shared_data / "camus_original_sample"
    nifti_root = tmp_path / "camus_nifti"
    for mhd in sorted((legacy / "patient0001").glob("*.mhd")):
        raw = itk.imread(str(mhd))
        display = itk.array_from_image(raw)[0]  # ITK numpy order (1, H, W)
        spacing_x, spacing_y = (float(s) for s in list(raw.GetSpacing())[:2])
        out = nifti_root / "database_nifti" / "patient0001" / mhd.name.replace(".mhd", ".nii.gz")
        out.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(display.T.copy(), np.diag([spacing_x, spacing_y, 1.0, 1.0])), out)  # (W, H)
    write_split_file(nifti_root, "training", ["patient0001"])

    legacy_items = [i for i in list_camus(legacy, "all") if i["patient"] == "patient0001"]
    nifti_items = list_camus(nifti_root, "training")
    assert [(i["view"], i["phase"]) for i in legacy_items] == [(i["view"], i["phase"]) for i in nifti_items]
    assert len(nifti_items) == 4
    load = LoadCAMUSd()
    for legacy_item, nifti_item in zip(legacy_items, nifti_items):
        a, b = load(legacy_item), load(nifti_item)
        raw_display = itk.array_from_image(itk.imread(legacy_item["image"]))[0]
        np.testing.assert_array_equal(a["image"][0], raw_display)
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
        np.testing.assert_allclose(a["spacing"], [0.154, 0.308], rtol=1e-6)
        np.testing.assert_allclose(a["spacing"], b["spacing"], rtol=1e-6)
    assert legacy_items[0]["info"] == {
        "ED": 1, "ES": 18, "NbFrame": 18, "Sex": "F", "Age": 56, "ImageQuality": "Good",
        "LVedv": 94.0, "LVesv": 34.6, "LVef": 63.2,
    }


def test_camus224_loads_in_display_orientation_with_labels_0_to_3(shared_data: Path):
    item = list_camus(shared_data / "camus224", "validation", views="4CH", phases="ED")[0]
    data = LoadCAMUSd()(item)
    image, label = data["image"][0], data["label"][0]
    assert data["image"].shape == data["label"].shape == (1, 224, 224)
    assert data["image"].dtype == torch.float32 and data["label"].dtype == torch.int64
    assert set(np.unique(label).tolist()) == {0, 1, 2, 3}
    np.testing.assert_array_equal(data["spacing"], [1.0, 1.0])
    assert (image[2] > 0).sum() < (image[200] > 0).sum()  # sector apex at the top
    lv_row, la_row = np.argwhere(label == 1)[:, 0].mean(), np.argwhere(label == 3)[:, 0].mean()
    assert lv_row < la_row  # left atrium below the ventricle


def test_loaded_frame_affines_place_pixels_where_the_file_does(shared_data: Path, tmp_path: Path):
    """`affine` maps (row, column) and `original_affine` maps (channel, row, column) of the loaded frame to the world
    point the file's own index (column, row, 0) has; MONAI Label writes 2D predictions with the latter."""
    mhd = shared_data / "camus_original_sample" / "patient0001" / "patient0001_4CH_ED.mhd"
    nifti = tmp_path / "frame.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((5, 7), np.uint8), np.diag([0.3, 0.2, 1.0, 1.0]) + np.eye(4, k=3)), nifti)
    for path in (mhd, nifti):
        image = LoadCAMUSd()({"image": str(path)})["image"]
        _, file_affine = read_camus_frame(path)
        height, width = image.shape[1:]
        assert tuple(image.meta["spatial_shape"]) == (height, width) and image.meta["filename_or_obj"] == str(path)
        for row, col in ((0, 0), (height - 1, 0), (3, width - 1)):
            world = file_affine @ np.array([col, row, 0, 1.0])
            np.testing.assert_allclose(image.affine.numpy() @ np.array([row, col, 0, 1.0]), world)
            np.testing.assert_allclose(image.meta["original_affine"] @ np.array([0, row, col, 1.0]), world)


def test_holdout_view_splits_training_patients_without_copying_images(phantom_camus: Path, tmp_path: Path):
    view = holdout_view(phantom_camus, tmp_path / "view", holdout=1, seed=0)
    assert (view / "database_nifti").is_symlink()
    patients = {s: [i["patient"] for i in list_camus(view, s)][::4] for s in ("training", "validation", "testing")}
    source_training = [i["patient"] for i in list_camus(phantom_camus, "training")][::4]
    assert len(patients["validation"]) == 1 and len(patients["training"]) == 3
    assert sorted(patients["training"] + patients["validation"]) == sorted(source_training)
    assert patients["testing"] == [i["patient"] for i in list_camus(phantom_camus, "validation")][::4]
    assert holdout_view(phantom_camus, tmp_path / "view", holdout=1, seed=0) == view  # rerun: same split
    assert [i["patient"] for i in list_camus(view, "validation")][::4] == patients["validation"]
    with pytest.raises(ConfigValueError, match="holdout=4; expected 1..3 of the 4 training patients"):
        holdout_view(phantom_camus, tmp_path / "other", holdout=4)



def test_label_grid_is_the_splits_own_and_label_maps_of_two_sizes_ask_for_one(phantom_camus: Path, tmp_path: Path):
    assert label_grid(phantom_camus, "testing") == [64, 64]
    copy = tmp_path / "camus"
    shutil.copytree(phantom_camus, copy)
    item = list_camus(copy, "testing")[-1]
    for key in ("image", "label"):
        array, spacing = read_camus_array(item[key])
        write_camus_nifti(item[key], array[:48].astype(np.uint8), spacing)
    with pytest.raises(ConfigValueError, match=rf"label maps of split 'testing' differ in size \(.*: \(64, 64\), "
                       rf"{item['label']}: \(48, 64\)\); set --metric_size \[H, W\] to score them all on one grid"):
        label_grid(copy, "testing")

def test_frame_shape_from_the_header_is_the_read_frames_shape(shared_data: Path, tmp_path: Path):
    """Header-only (H, W) of a legacy .mhd (original resolution, not square) and of a non-square NIfTI."""
    mhd = shared_data / "camus_original_sample" / "patient0001" / "patient0001_4CH_ED_gt.mhd"
    nifti = tmp_path / "frame.nii.gz"
    write_camus_nifti(nifti, np.zeros((48, 64), np.uint8), (1.0, 1.0))
    for path in (mhd, nifti):
        assert camus_frame_shape(path) == read_camus_frame(path)[0].shape and len(set(camus_frame_shape(path))) == 2


def test_camus224_lists_400_training_and_50_validation_patients(shared_data: Path):
    training = list_camus(shared_data / "camus224", "training")
    validation = list_camus(shared_data / "camus224", "validation", require_label=False)
    assert len(training) == 1600 and len({i["patient"] for i in training}) == 400
    assert len({i["patient"] for i in validation}) == 50
    assert {i["view_index"] for i in training if i["view"] == "4CH"} == {1}


def test_list_items_carry_patient_view_phase_and_paths(nifti_dataset: Path):
    items = list_camus(nifti_dataset, "training", views=("4CH",), phases=("ES",))
    assert [(i["patient"], i["view"], i["phase"], i["view_index"]) for i in items] == [
        ("patient0001", "4CH", "ES", 1), ("patient0002", "4CH", "ES", 1)]
    assert items[0]["image"] == items[0]["source"] == str(
        nifti_dataset / "database_nifti/patient0001/patient0001_4CH_ES.nii.gz")
    assert items[0]["label"].endswith("patient0001_4CH_ES_gt.nii.gz") and items[0]["info"] == {}


def test_legacy_layout_with_training_and_testing_folders(tmp_path: Path):
    frame = np.arange(12, dtype=np.uint8).reshape(3, 4) + 1
    for split, patient in (("training", "patient0001"), ("testing", "patient0501")):
        for view in ("2CH", "4CH"):
            for phase in ("ED", "ES"):
                base = tmp_path / split / patient / f"{patient}_{view}_{phase}"
                write_legacy_mhd(base.with_suffix(".mhd"), frame, (0.3, 0.15, 1.5))
                if split == "training":
                    write_legacy_mhd(Path(f"{base}_gt.mhd"), frame % 4, (0.3, 0.15, 1.5))
    assert {i["patient"] for i in list_camus(tmp_path, "training")} == {"patient0001"}
    testing = list_camus(tmp_path, "testing", require_label=False)
    assert {i["patient"] for i in testing} == {"patient0501"} and "label" not in testing[0]
    assert len(list_camus(tmp_path, "all", require_label=False)) == 8
    array, spacing = read_camus_array(testing[0]["image"])
    np.testing.assert_array_equal(array, frame)
    assert spacing == pytest.approx((0.15, 0.3))


def test_write_camus_nifti_stores_width_by_height_with_column_row_zooms(tmp_path: Path):
    frame = np.arange(6, dtype=np.uint8).reshape(2, 3)
    path = write_camus_nifti(tmp_path / "a" / "x.nii.gz", frame, spacing=(0.5, 0.25))
    stored = nib.load(path)
    assert stored.shape == (3, 2) and stored.get_data_dtype() == np.uint8
    assert stored.header.get_zooms() == (0.25, 0.5)
    np.testing.assert_array_equal(np.asarray(stored.dataobj), frame.T)
    array, spacing = read_camus_array(path)
    np.testing.assert_array_equal(array, frame)
    assert spacing == (0.5, 0.25)
    assert os.listdir(path.parent) == ["x.nii.gz"]  # no temp file left behind


def test_write_camus_nifti_rejects_non_2d_and_non_byte_values(tmp_path: Path):
    with pytest.raises(ShapeMismatchError, match=r"shape \(1, 2, 3\); expected a 2D \(H, W\) frame"):
        write_camus_nifti(tmp_path / "x.nii.gz", np.zeros((1, 2, 3), np.uint8))
    with pytest.raises(EchoDataError, match="values outside the integers 0..255"):
        write_camus_nifti(tmp_path / "x.nii.gz", np.full((2, 2), 0.5))
    assert not list(tmp_path.iterdir())


def test_load_camusd_batches_in_monai_dataloader(phantom_camus: Path):
    dataset = Dataset(list_camus(phantom_camus, "validation"), transform=Compose([LoadCAMUSd()]))
    batch = next(iter(DataLoader(dataset, batch_size=4, num_workers=0)))
    assert batch["image"].shape == batch["label"].shape == (4, 1, 64, 64)
    assert batch["image"].dtype == torch.float32 and batch["label"].dtype == torch.int64
    assert batch["view_index"].tolist() == [0, 0, 1, 1]
    assert batch["spacing"].shape == (4, 2)


def test_missing_image_names_the_path(nifti_dataset: Path):
    image = nifti_dataset / "database_nifti/patient0002/patient0002_2CH_ES.nii.gz"
    image.unlink()
    with pytest.raises(MissingFileError, match=f"CAMUS image {image} does not exist"):
        list_camus(nifti_dataset, "training")


def test_missing_label_names_the_path_unless_labels_are_optional(nifti_dataset: Path):
    label = nifti_dataset / "database_nifti/patient0001/patient0001_4CH_ED_gt.nii.gz"
    label.unlink()
    with pytest.raises(MissingFileError, match=f"CAMUS label map {label} does not exist"):
        list_camus(nifti_dataset, "training")
    items = list_camus(nifti_dataset, "training", require_label=False)
    assert sum("label" not in i for i in items) == 1


def test_patient_listed_in_split_without_folder_names_the_missing_image(nifti_dataset: Path):
    write_split_file(nifti_dataset, "validation", ["patient0999"])
    with pytest.raises(MissingFileError, match=r"patient0999/patient0999_2CH_ED\.nii\.gz does not exist"):
        list_camus(nifti_dataset, "validation")


def test_label_values_outside_0_to_3_are_listed_with_the_file(tmp_path: Path):
    label = np.zeros((4, 4), np.uint8)
    label[0, :3] = (1, 3, 7)
    path = write_camus_nifti(tmp_path / "patient0012_2CH_ED_gt.nii.gz", label)
    expected = (f"{path} has label values {{0, 1, 3, 7}}; expected CAMUS labels 0..3 "
                f"(background, LV cavity, myocardium, left atrium).")
    with pytest.raises(LabelValueError) as err:
        LoadCAMUSd()({"label": str(path)})
    assert str(err.value) == expected
    assert list(CAMUS_LABELS) == [0, 1, 2, 3]


def test_image_label_shape_mismatch_names_both_files(tmp_path: Path):
    image = write_camus_nifti(tmp_path / "im.nii.gz", np.ones((4, 5), np.uint8))
    label = write_camus_nifti(tmp_path / "im_gt.nii.gz", np.zeros((5, 4), np.uint8))
    with pytest.raises(ShapeMismatchError) as err:
        LoadCAMUSd()({"image": str(image), "label": str(label)})
    assert str(err.value) == (f"image {image} has shape (4, 5) but label map {label} has shape (5, 4); "
                              "expected the same (H, W).")


def test_garbage_nifti_is_a_corrupt_file_naming_it(tmp_path: Path):
    path = tmp_path / "bad.nii.gz"
    path.write_bytes(b"this is not a gzip stream" * 10)
    with pytest.raises(CorruptFileError, match=f"{path} cannot be read"):
        read_camus_array(path)


def test_truncated_nifti_is_a_corrupt_file_naming_it(tmp_path: Path):
    path = write_camus_nifti(tmp_path / "cut.nii.gz", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match=f"{path} cannot be read"):
        read_camus_array(path)


def test_truncated_legacy_raw_is_a_corrupt_file_naming_it(tmp_path: Path):
    path = tmp_path / "cut.mhd"
    write_legacy_mhd(path, np.ones((8, 8), np.uint8), (1.0, 1.0, 1.0))
    path.with_suffix(".raw").write_bytes(b"\x01" * 10)
    with pytest.raises(CorruptFileError, match=f"{path} cannot be read"):
        read_camus_array(path)


def test_missing_and_unknown_type_files(tmp_path: Path):
    with pytest.raises(MissingFileError, match=f"CAMUS file {tmp_path / 'nope.nii.gz'} does not exist"):
        read_camus_array(tmp_path / "nope.nii.gz")
    (tmp_path / "x.png").write_bytes(b"png")
    with pytest.raises(CorruptFileError, match=r"x\.png is not a CAMUS image; expected a \.nii\.gz, \.nii or \.mhd"):
        read_camus_array(tmp_path / "x.png")


def test_empty_split_file_names_the_file(nifti_dataset: Path):
    path = write_split_file(nifti_dataset, "testing", [])
    with pytest.raises(EmptySplitError, match=f"split file {path} lists no patients"):
        list_camus(nifti_dataset, "testing")


def test_folder_without_cases_is_an_empty_split(tmp_path: Path):
    with pytest.raises(EmptySplitError, match=f"{tmp_path} holds no CAMUS patient folders"):
        list_camus(tmp_path, "all")


def test_missing_split_file_names_it_and_lists_the_present_ones(nifti_dataset: Path):
    expected = nifti_dataset / "database_split" / "subgroup_validation.txt"
    with pytest.raises(MissingFileError) as err:
        list_camus(nifti_dataset, "validation")
    assert str(err.value).startswith(
        f"split file {expected} does not exist (split files present: subgroup_training.txt)")


def test_unknown_split_view_and_phase_are_config_key_errors(nifti_dataset: Path):
    with pytest.raises(ConfigKeyError, match="split 'train' is not one of training, validation, testing, all"):
        list_camus(nifti_dataset, "train")
    with pytest.raises(ConfigKeyError, match=r"views \('3CH',\) must be a non-empty selection of 2CH, 4CH"):
        list_camus(nifti_dataset, views="3CH")
    with pytest.raises(ConfigKeyError, match="split 'dev' is not one of"):
        write_split_file(nifti_dataset, "dev", ["patient0001"])


def test_all_split_lists_every_patient_folder(nifti_dataset: Path):
    shutil.copytree(nifti_dataset / "database_nifti/patient0001", nifti_dataset / "database_nifti/patient0003")
    for path in (nifti_dataset / "database_nifti/patient0003").iterdir():
        path.rename(path.with_name(path.name.replace("patient0001", "patient0003")))
    assert sorted({i["patient"] for i in list_camus(nifti_dataset, "all")}) == [
        "patient0001", "patient0002", "patient0003"]
    assert len(list_camus(nifti_dataset, None)) == 12
