"""Dataset synthesis: CAMUS layout and manifest, labels from the maps, seeds, sharding, kill-and-resume, bad input,
the privacy filter."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from echodiff.data.camus import VIEWS, list_camus, read_camus_array, write_camus_nifti
from echodiff.data.camus_input import load_camus_images
from echodiff.data.conditioning import condition_map
from echodiff.errors import ConfigValueError, LabelValueError, MissingFileError, ShapeMismatchError
from echodiff.generation import build_generator, load_generator, save_generator
from echodiff.generation.synthesis import (
    MANIFEST,
    camus_labels_of_condition,
    case_seed,
    generator_fn,
    source_condition_map,
    synthesize_dataset,
)
from echodiff.metrics.realism import FeatureSpace, PrivacyFilter

REPO = Path(__file__).resolve().parents[1]
SIZE = 32
K = 2
N_SOURCE_FRAMES = 16  # phantom_camus training split: 4 patients x (2CH, 4CH) x (ED, ES)


def fake_image(cond: torch.Tensor, seed: int, view: str) -> torch.Tensor:
    """Image of one (1, H, W) map: class brightness plus seeded noise, 0.05 brighter for 4CH, zero outside the sector
    (class 0)."""
    noise = torch.rand(cond.shape, generator=torch.Generator().manual_seed(seed))
    return (0.2 + 0.15 * cond.float() + 0.1 * noise + 0.05 * VIEWS.index(view)) * (cond > 0)


def fake_generate(cond_maps: torch.Tensor, seeds: Sequence[int], views: Sequence[str]) -> tuple[torch.Tensor, int]:
    return torch.stack([fake_image(c, s, v) for c, s, v in zip(cond_maps, seeds, views)]), 9


def synthesize(source: Path, out: Path, generate=fake_generate, **kwargs):
    options = dict(k=K, seed=0, batch_size=3, image_size=SIZE, progress=False, info={"model": "fake"})
    return synthesize_dataset(source, out, generate, **{**options, **kwargs})


def written_arrays(out: Path) -> dict[str, np.ndarray]:
    folder = out / "database_nifti"
    return {p.name: read_camus_array(p)[0] for p in sorted(folder.glob("*/*.nii.gz"))}


def manifest_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]


def expected_files(n_patients: int) -> set[str]:
    return {
        f"patient{p:04d}/patient{p:04d}_{view}_{phase}{suffix}.nii.gz"
        for p in range(1, n_patients + 1) for view in ("2CH", "4CH") for phase in ("ED", "ES")
        for suffix in ("", "_gt", "_cond")
    }


def nifti_files(out: Path) -> set[str]:
    return {str(p.relative_to(out / "database_nifti")) for p in (out / "database_nifti").rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def synthetic(phantom_camus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthesis") / "synthetic"
    return out, synthesize(phantom_camus, out)


def test_writes_k_patients_per_source_patient_in_the_camus_layout_with_a_split_file(synthetic):
    out, summary = synthetic
    assert summary["cases"] == summary["generated"] == K * N_SOURCE_FRAMES and summary["complete"]
    assert nifti_files(out) == expected_files(4 * K)
    patients = (out / "database_split" / "subgroup_training.txt").read_text().split()
    assert patients == [f"patient{p:04d}" for p in range(1, 4 * K + 1)]
    items = list_camus(out, "training")
    assert len(items) == K * N_SOURCE_FRAMES and read_camus_array(items[0]["image"])[0].shape == (SIZE, SIZE)


def test_manifest_has_one_complete_line_per_case_with_provenance(synthetic):
    out, _ = synthetic
    lines = manifest_lines(out)
    assert len(lines) == K * N_SOURCE_FRAMES == len({line["case"] for line in lines})
    keys = {"case", "image", "label", "cond", "source_patient", "source_image", "k", "seed", "model", "nfe", "seconds"}
    assert all(keys <= set(line) for line in lines)
    first = lines[:K * 4]  # source patient0001: its 4 frames, K copies each
    assert {(line["patient"], line["k"]) for line in first} == {("patient0001", 0), ("patient0002", 1)}
    assert {line["source_patient"] for line in first} == {"patient0001"}
    assert all(line["nfe"] == 9 and line["model"] == "fake" for line in lines)
    assert all(Path(line["source_image"]).is_file() and (out / line["image"]).is_file() for line in lines)


def test_labels_are_camus_labels_mapped_back_from_the_condition_map_and_the_image_is_its_sample_in_its_view(synthetic):
    out, _ = synthetic
    arrays = written_arrays(out)
    for line in manifest_lines(out):
        cond, label, image = (arrays[Path(line[key]).name] for key in ("cond", "label", "image"))
        assert set(np.unique(cond).tolist()) <= {0, 1, 2, 3, 4} and {1, 3, 4} <= set(np.unique(cond).tolist())
        assert set(np.unique(label).tolist()) == {0, 1, 2, 3}
        np.testing.assert_array_equal(label, camus_labels_of_condition(cond))
        assert Path(line["image"]).name.split("_")[1] == line["view"]  # the file is named by the view asked for
        expected = fake_image(torch.from_numpy(cond.astype(np.int64))[None], line["seed"], line["view"])[0]
        np.testing.assert_array_equal(image, np.round(expected.numpy() * 255).astype(np.uint8))
    np.testing.assert_array_equal(camus_labels_of_condition(np.arange(5)), [0, 1, 0, 2, 3])


def test_augmented_copies_are_seeded_per_case_and_differ_from_the_source_map(synthetic, phantom_camus: Path):
    out, _ = synthetic
    arrays = written_arrays(out)
    source = source_condition_map(list_camus(phantom_camus, "training")[0], SIZE)[0][0].numpy()
    copies = [arrays[f"patient000{p}_2CH_ED_cond.nii.gz"] for p in (1, 2)]
    assert (copies[0] != source).mean() > 0.02 and (copies[0] != copies[1]).mean() > 0.02
    lines = {line["case"]: line for line in manifest_lines(out)}
    assert lines["patient0002_2CH_ED"]["seed"] == case_seed(0, 0, 1) != case_seed(0, 0, 0)


def test_unaugmented_copies_keep_the_resized_source_map(phantom_camus: Path, tmp_path: Path):
    synthesize(phantom_camus, tmp_path, k=1, augment=False)
    item = list_camus(phantom_camus, "training")[0]
    source = source_condition_map(item, SIZE)[0][0].numpy()
    np.testing.assert_array_equal(written_arrays(tmp_path)["patient0001_2CH_ED_cond.nii.gz"], source)
    full = condition_map(read_camus_array(item["image"])[0], read_camus_array(item["label"])[0])
    np.testing.assert_array_equal(source, full[1::2, 1::2])  # nearest-exact halving samples the odd pixels


def test_same_seed_writes_identical_files_and_another_seed_does_not(synthetic, phantom_camus: Path, tmp_path: Path):
    out, _ = synthetic
    synthesize(phantom_camus, tmp_path / "again", batch_size=5)
    first, again = written_arrays(out), written_arrays(tmp_path / "again")
    assert first.keys() == again.keys() and all(np.array_equal(first[n], again[n]) for n in first)
    synthesize(phantom_camus, tmp_path / "other", seed=1)
    other = written_arrays(tmp_path / "other")
    assert sum(not np.array_equal(first[n], other[n]) for n in first) > 0.9 * len(first)


def test_two_ranks_one_after_the_other_write_the_same_dataset_as_one_rank(synthetic, phantom_camus, tmp_path):
    out, _ = synthetic
    sharded = tmp_path / "sharded"
    first = synthesize(phantom_camus, sharded, rank=0, world_size=2)
    assert first["rank_cases"] == first["generated"] == K * N_SOURCE_FRAMES // 2 and not first["complete"]
    assert not (sharded / "database_split").exists() and len(manifest_lines(sharded)) == K * N_SOURCE_FRAMES // 2
    second = synthesize(phantom_camus, sharded, rank=1, world_size=2)
    assert second["complete"] and second["generated"] == K * N_SOURCE_FRAMES // 2
    one, two = written_arrays(out), written_arrays(sharded)
    assert one.keys() == two.keys() and all(np.array_equal(one[n], two[n]) for n in one)
    drop_time = [{k: v for k, v in line.items() if k != "seconds"} for line in manifest_lines(out)]
    assert drop_time == [{k: v for k, v in line.items() if k != "seconds"} for line in manifest_lines(sharded)]
    assert (sharded / "database_split" / "subgroup_training.txt").read_text() == (
        out / "database_split" / "subgroup_training.txt").read_text()


KILLED_RUN = """
import os, signal, sys, torch
from echodiff.generation.synthesis import synthesize_dataset
calls = 0
def generate(cond_maps, seeds, views):
    global calls
    calls += 1
    if calls == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return torch.stack([(0.2 + 0.15 * c.float()) * (c > 0) for c in cond_maps]), 9
torch.set_num_threads(1)
synthesize_dataset(sys.argv[1], sys.argv[2], generate, k=2, seed=0, batch_size=3, image_size=32, progress=False)
"""


def test_a_killed_run_restarted_ends_with_exactly_the_expected_files_and_manifest(phantom_camus: Path, tmp_path):
    out = tmp_path / "killed"
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_RUN), str(phantom_camus), str(out)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    records = sorted((out / "manifest_records").glob("*.json"))
    assert len(records) == 6 and not (out / MANIFEST).exists()  # two batches of 3 written before the kill
    stale = [out / "database_nifti" / "patient0002" / ".patient0002_4CH_ES.nii.gz.x1y2z3.nii.gz",
             out / "manifest_records" / ".patient0002_4CH_ES.json.a1b2c3.json"]
    for path in stale:  # what a kill during a write leaves behind
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    (out / "database_nifti" / "patient0001" / "patient0001_4CH_ED.nii.gz").unlink()  # image of a recorded case

    def generate(cond_maps, seeds, views):
        return torch.stack([(0.2 + 0.15 * c.float()) * (c > 0) for c in cond_maps]), 9

    summary = synthesize(phantom_camus, out, generate=generate, info=None)
    assert summary["skipped"] == 5 and summary["generated"] == K * N_SOURCE_FRAMES - 5 and summary["complete"]
    assert nifti_files(out) == expected_files(4 * K)
    assert not [p for p in out.rglob(".*") if p.is_file()]
    lines = manifest_lines(out)
    assert len(lines) == K * N_SOURCE_FRAMES == len({line["case"] for line in lines})


def test_restart_with_other_settings_is_refused_naming_them(synthetic, phantom_camus: Path):
    out, _ = synthetic
    with pytest.raises(ConfigValueError, match=r"seed: 0 there, 3 now.*another out_dir"):
        synthesize(phantom_camus, out, seed=3)


def test_source_without_label_maps_names_the_missing_file(phantom_camus: Path, tmp_path: Path):
    source = tmp_path / "images_only"
    shutil.copytree(phantom_camus, source)
    for label in source.rglob("*_gt.nii.gz"):
        label.unlink()
    with pytest.raises(MissingFileError, match=r"label map .*patient0001_2CH_ED_gt\.nii\.gz does not exist"):
        synthesize(source, tmp_path / "out")


def test_label_values_outside_camus_labels_name_the_file(phantom_camus: Path, tmp_path: Path):
    source = tmp_path / "bad_labels"
    shutil.copytree(phantom_camus, source)
    bad = source / "database_nifti" / "patient0001" / "patient0001_2CH_ED_gt.nii.gz"
    labels, spacing = read_camus_array(bad)
    write_camus_nifti(bad, np.where(labels == 3, 7, labels), spacing)
    with pytest.raises(LabelValueError, match=r"patient0001_2CH_ED_gt\.nii\.gz has label values \{0, 1, 2, 7\}"):
        synthesize(source, tmp_path / "out")


def test_maps_that_do_not_fit_a_fixed_size_generator_are_refused_unless_resized(phantom_camus: Path, tmp_path):
    class FixedSize:
        image_size = 48

        def __call__(self, cond_maps, seeds, views):
            return fake_generate(cond_maps, seeds, views)

    message = r"_gt\.nii\.gz gives a 64 x 64 conditioning map but .* takes 48 x 48 maps; pass image_size=48"
    with pytest.raises(ShapeMismatchError, match=message):
        synthesize(phantom_camus, tmp_path / "unresized", generate=FixedSize(), image_size=None)
    assert synthesize(phantom_camus, tmp_path / "resized", generate=FixedSize(), image_size=48, k=1)["complete"]


def _synthesize_cli():
    """scripts/synthesize.py as a module (its `main`)."""
    spec = importlib.util.spec_from_file_location("synthesize", REPO / "scripts" / "synthesize.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


def test_cli_synthesizes_from_a_checkpoint_and_any_image_is_reproduced_alone_from_its_seed(phantom_camus, tmp_path):
    torch.manual_seed(0)
    checkpoint = save_generator(tmp_path / "generator.pt", build_generator("edm_l64", SIZE, view_condition=True))
    cli = _synthesize_cli()
    out = tmp_path / "synthetic"
    summary = cli.main(str(checkpoint), str(phantom_camus), str(out), k=1, steps=2, batch_size=4, device="cpu",
                       progress=False)
    # default splits: training (4 patients) and validation (2 patients), each synthetic patient in its source's split
    assert summary["complete"] and summary["generated"] == N_SOURCE_FRAMES + N_SOURCE_FRAMES // 2
    training, validation = ((out / "database_split" / f"subgroup_{s}.txt").read_text().split()
                            for s in ("training", "validation"))  # fmt: skip
    assert len(training) == 4 and len(validation) == 2 and not set(training) & set(validation)
    assert {line["split"] for line in manifest_lines(out)} == {"training", "validation"}
    line = manifest_lines(out)[5]
    assert {k: line[k] for k in ("model", "sampler", "steps", "churn", "nfe")} == {
        "model": "edm_l64", "sampler": None, "steps": 2, "churn": None, "nfe": 3}  # Heun: NFE = 2 N - 1
    arrays = written_arrays(out)
    cond = torch.from_numpy(arrays[Path(line["cond"]).name].astype(np.int64))[None, None]
    alone, _ = generator_fn(load_generator(checkpoint), steps=2)(cond, [line["seed"]], [line["view"]])
    np.testing.assert_array_equal(arrays[Path(line["image"]).name], np.round(alone[0, 0].numpy() * 255))
    assert arrays[Path(line["image"]).name].any()


@pytest.fixture(scope="module")
def privacy_filter(phantom_camus: Path, feature_network) -> PrivacyFilter:
    """Training images: the phantom's training split; held-out: its testing split (both at the generator's size)."""
    training, heldout = (load_camus_images(phantom_camus, split, (SIZE, SIZE)) for split in ("training", "testing"))
    return PrivacyFilter.fit(FeatureSpace(feature_network), training, heldout)


def copies_or_noise(training: torch.Tensor, copy: Callable[[int], bool]):
    """A fake generator: a training image for the seeds that `copy` picks, fresh uniform noise for the others."""

    def generate(cond_maps, seeds, views):
        noise = [torch.rand(cond_maps.shape[1:], generator=torch.Generator().manual_seed(s)) for s in seeds]
        return torch.stack([training[s % len(training)] if copy(s) else n for s, n in zip(seeds, noise)]), 1

    return generate


def test_privacy_filter_drops_copies_of_training_images_and_keeps_fresh_ones(phantom_camus, privacy_filter, tmp_path):
    training = load_camus_images(phantom_camus, "training", (SIZE, SIZE))
    copies = synthesize(phantom_camus, tmp_path / "copies", copies_or_noise(training, lambda seed: True), k=1,
                        privacy_filter=privacy_filter)  # fmt: skip
    assert copies["complete"] and copies["dropped"] == N_SOURCE_FRAMES == copies["cases"]
    assert not nifti_files(tmp_path / "copies") and not manifest_lines(tmp_path / "copies")
    dropped = (tmp_path / "copies" / "dropped.jsonl").read_text().splitlines()
    assert len(dropped) == N_SOURCE_FRAMES
    assert all(json.loads(line)["nearest_training_distance"] < privacy_filter.threshold for line in dropped)

    fresh = synthesize(phantom_camus, tmp_path / "fresh", copies_or_noise(training, lambda seed: False), k=1,
                       privacy_filter=privacy_filter)  # fmt: skip
    assert fresh["complete"] and fresh["dropped"] == 0 and nifti_files(tmp_path / "fresh") == expected_files(4)
    assert len(list_camus(tmp_path / "fresh", "training")) == N_SOURCE_FRAMES
    lines = manifest_lines(tmp_path / "fresh")
    assert all(line["nearest_training_distance"] >= line["privacy_threshold"] for line in lines)
    assert not (tmp_path / "fresh" / "dropped.jsonl").exists()


def test_a_patient_with_a_dropped_frame_leaves_the_split_file_and_a_filtered_run_resumes(phantom_camus, privacy_filter,
                                                                                         tmp_path):  # fmt: skip
    training = load_camus_images(phantom_camus, "training", (SIZE, SIZE))
    copied = {case_seed(0, 4, 0)}  # source frame 4: the first frame of the second source patient, patient0002
    generate = copies_or_noise(training, lambda seed: seed in copied)
    out = tmp_path / "mixed"
    first = synthesize(phantom_camus, out, generate, k=1, privacy_filter=privacy_filter, rank=0, world_size=2)
    assert not first["complete"] and first["dropped"] == 1  # case 4 is rank 0's
    summary = synthesize(phantom_camus, out, generate, k=1, privacy_filter=privacy_filter)
    assert summary["complete"] and summary["skipped"] == N_SOURCE_FRAMES // 2 and summary["dropped"] == 1
    assert (out / "database_split" / "subgroup_training.txt").read_text().split() == [
        "patient0001", "patient0003", "patient0004"]
    assert len(list_camus(out, "training")) == 12 and len(manifest_lines(out)) == N_SOURCE_FRAMES - 1
    dropped_files = {f"patient0002/patient0002_2CH_ED{suffix}.nii.gz" for suffix in ("", "_gt", "_cond")}
    assert nifti_files(out) == expected_files(4) - dropped_files
    with pytest.raises(ConfigValueError, match="privacy_filter"):
        synthesize(phantom_camus, out, generate, k=1)


def test_cli_privacy_filter_builds_from_a_view_classifier_checkpoint_and_joins_the_settings(
        phantom_camus, view_classifier_checkpoint, tmp_path):  # fmt: skip
    torch.manual_seed(0)
    checkpoint = save_generator(tmp_path / "generator.pt", build_generator("edm_l64", SIZE, view_condition=True))
    cli = _synthesize_cli()
    out = tmp_path / "synthetic"
    summary = cli.main(str(checkpoint), str(phantom_camus), str(out), k=1, steps=2, split="training", batch_size=8,
                       device="cpu", progress=False, privacy_filter=str(view_classifier_checkpoint))  # fmt: skip
    assert summary["complete"] and summary["privacy_threshold"] > 0 and summary["dropped"] is not None
    settings = json.loads((out / "synthesis.json").read_text())["privacy_filter"]
    assert settings["classifier"] == str(view_classifier_checkpoint) and settings["image_size"] == [SIZE, SIZE]
    splits = (settings["training_split"], settings["heldout_split"], settings["percentile"])
    assert splits == ("training", "testing", 5.0)
