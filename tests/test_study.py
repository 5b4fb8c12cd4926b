"""The study (echodiff.study): stage cache semantics, input checks, and tiny end-to-end runs on the phantom."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from echodiff import fingerprints
from echodiff.data.camus import list_camus
from echodiff.errors import ConfigKeyError, ConfigValueError, MissingFileError
from echodiff.generation.fidelity import DICE_KEYS
from echodiff.metrics import patient_bootstrap
from echodiff.study import check_budget, run_cached, run_study
from echodiff.study.recipes import budget_shares, scale_settings
from echodiff.study import stages as study_stages

REPO_ROOT = Path(__file__).resolve().parents[1]
# one epoch of everything, 4 maps scored: the smallest run that still exercises every stage
TINY = {"segmenter": {"max_epochs": 1}, "classifier": {"max_epochs": 1}, "autoencoder": {"max_epochs": 1},
        "diffusion": {"max_epochs": 2}, "fidelity_images": 4}  # fmt: skip
REPORT_KEYS = {"budget_minutes", "hardware", "dataset_dir", "test_dir", "test_split", "image_size", "stages",
               "generator", "fidelity_vs_steps", "segmentation", "view_classification"}  # fmt: skip


def _tiny_overrides() -> dict:
    return {k: v for k, v in TINY.items() if isinstance(v, dict)}


def study(workdir: Path, dataset: Path, messages: list[str] | None = None, **kwargs) -> dict:
    settings = dict(workdir=str(workdir), dataset_dir=str(dataset), test_dir=str(dataset), test_split="testing",
                    budget_minutes=10, scale="tiny", k=1, overrides=_tiny_overrides(), threads=1)  # fmt: skip
    settings.setdefault("allow_unhealthy_latent", True)  # a one-epoch Gamma-VAE; the guard: test_latent_health.py
    settings.update(kwargs)
    say = messages.append if messages is not None else (lambda _: None)
    return run_study(**settings, say=say)


# --- cache semantics ---------------------------------------------------------------------------------------------


def _work(calls: list[str], value: int):
    def work(folder: Path) -> dict:
        calls.append(str(folder))
        (folder / "model.pt").write_text(str(value))
        return {"value": value}

    return work


def test_cached_stage_is_skipped_and_a_changed_key_reruns_it_naming_what_changed(tmp_path: Path) -> None:
    calls, said = [], []
    key = {"data": "a", "settings": {"lr": 1}, "upstream": {}}
    assert run_cached(tmp_path / "s", "s", key, _work(calls, 1), say=said.append).result == {"value": 1}
    record = run_cached(tmp_path / "s", "s", key, _work(calls, 2), say=said.append)
    assert record.cached and record.result == {"value": 1} and len(calls) == 1
    record = run_cached(tmp_path / "s", "s", {**key, "settings": {"lr": 2}}, _work(calls, 3), say=said.append)
    assert not record.cached and record.result == {"value": 3} and len(calls) == 2
    assert "settings changed since its last run: rerunning" in said[-1]


def test_interrupted_stage_resumes_in_place_with_same_key_and_is_wiped_with_another(tmp_path: Path) -> None:
    key, said = {"data": "a", "upstream": {}}, []

    def killed(folder: Path) -> dict:
        (folder / "checkpoint_epoch=1.pt").write_text("trained on data a")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cached(tmp_path / "s", "s", key, killed, say=said.append)
    seen = []
    run_cached(tmp_path / "s", "s", key, lambda f: {"files": seen.extend(p.name for p in f.iterdir()) or 0},
               say=said.append)  # fmt: skip
    assert "checkpoint_epoch=1.pt" in seen and "resuming" in said[-1]

    with pytest.raises(KeyboardInterrupt):
        run_cached(tmp_path / "t", "t", key, killed, say=said.append)
    seen.clear()
    run_cached(tmp_path / "t", "t", {**key, "data": "b"}, lambda f: {"n": seen.extend(p.name for p in f.iterdir())},
               say=said.append)  # fmt: skip
    assert "checkpoint_epoch=1.pt" not in seen and "discarded" in said[-1]


def test_force_reruns_a_cached_stage_and_gives_its_output_a_new_identity(tmp_path: Path) -> None:
    calls: list[str] = []
    first = run_cached(tmp_path / "s", "s", {"a": 1}, _work(calls, 1), say=lambda _: None)
    record = run_cached(tmp_path / "s", "s", {"a": 1}, _work(calls, 2), force=True, say=lambda _: None)
    assert record.result == {"value": 2} and len(calls) == 2
    assert record.fingerprint == first.fingerprint and record.output != first.output  # same inputs, another output
    assert run_cached(tmp_path / "s", "s", {"a": 1}, _work(calls, 3), say=lambda _: None).output == record.output


def test_resumed_stage_records_its_seconds_over_all_sittings(tmp_path: Path) -> None:
    def killed(folder: Path) -> dict:
        time.sleep(0.3)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cached(tmp_path / "s", "s", {"a": 1}, killed, say=lambda _: None)
    sittings = json.loads((tmp_path / "s" / "started.json").read_text())["sittings"]
    assert len(sittings) == 1 and sittings[0]["seconds"] >= 0.3
    said: list[str] = []
    record = run_cached(tmp_path / "s", "s", {"a": 1}, lambda f: time.sleep(0.2) or {}, say=said.append)
    done = json.loads((tmp_path / "s" / "stage.json").read_text())
    assert len(done["sitting_seconds"]) == 2 and record.seconds == done["seconds"] >= 0.5
    assert "in 1 sitting(s) so far" in said[-1]


def test_a_sitting_ended_by_sigkill_counts_until_the_last_file_it_wrote(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    key = {"a": 1}
    start = time.time() - 100
    (folder / "started.json").write_text(json.dumps({  # what a SIGKILLed sitting leaves: no seconds of its own
        "stage": "s", "fingerprint": fingerprints.fingerprint(key), "key": key, "started": "earlier",
        "sittings": [{"started": "earlier", "start_time": start, "seconds": None}]}))  # fmt: skip
    checkpoint = folder / "checkpoint_epoch=3.pt"
    checkpoint.write_text("epoch 3")
    os.utime(checkpoint, (start + 40, start + 40))
    os.utime(folder / "started.json", (start, start))
    record = run_cached(folder, "s", key, lambda f: {}, say=lambda _: None)
    assert 40 <= record.seconds < 45


# --- bad inputs ----------------------------------------------------------------------------------------------------


def test_pixel_generator_gets_the_autoencoder_minutes_and_each_model_its_own_diffusion_recipe() -> None:
    latent, pixel = budget_shares("edm_l64"), budget_shares("edm")
    assert "autoencoder" in latent and "autoencoder" not in pixel
    assert pixel["diffusion"] == pytest.approx(latent["diffusion"] + latent["autoencoder"])
    assert sum(pixel.values()) == pytest.approx(sum(latent.values()))
    assert scale_settings("cpu")["model"] == "edm_l64"
    assert scale_settings("cpu", "edm")["diffusion"]["network_args"]["channels"] == [16, 32, 64]
    assert scale_settings("cpu")["diffusion"]["network_args"] == {}
    assert "diffusion_per_model" not in scale_settings("cpu")
    with pytest.raises(ConfigKeyError, match="--model 'edm_l32'; expected one of"):
        scale_settings("cpu", "edm_l32")


def test_every_scale_trains_a_view_conditioned_generator() -> None:
    assert all(scale_settings(scale, model)["diffusion"]["view_condition"] is True
               for scale in ("tiny", "cpu", "paper") for model in ("edm", "edm_l64"))  # fmt: skip


def test_budget_too_small_for_any_stage_is_refused() -> None:
    with pytest.raises(ConfigValueError, match=r"--budget_minutes 1 is too small for any stage.*>= 5"):
        check_budget(1)


def test_test_split_sharing_patients_with_training_data_is_refused(tmp_path: Path, phantom_camus: Path) -> None:
    with pytest.raises(ConfigValueError, match="shares 4 patients with the training data.*must be unseen"):
        study(tmp_path / "w", phantom_camus, test_split="training", holdout=1)


def test_test_folder_without_label_maps_is_refused(tmp_path: Path, phantom_camus: Path) -> None:
    unlabelled = tmp_path / "unlabelled"
    shutil.copytree(phantom_camus, unlabelled)
    for label in (unlabelled / "database_nifti").rglob("*_gt.nii.gz"):
        label.unlink()
    with pytest.raises(MissingFileError, match=r"--test_dir .*unlabelled split 'testing': 8 of 8 images have no label"):
        study(tmp_path / "w", phantom_camus, test_dir=str(unlabelled))


def test_cli_prints_the_error_as_its_last_line_and_exits_1(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "pipeline.py"), "study", "--workdir", str(tmp_path),
         "--budget_minutes", "1"], capture_output=True, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: --budget_minutes 1 is too small for any stage")


# --- the study's wiring, with stand-in stages (seconds) ------------------------------------------------------------


@pytest.fixture
def fake_stages(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the training, synthesis and evaluation stages by stand-ins that write a fresh product (so a rerun makes
    another output) and results shaped like the bundles' reports; returns the stage folders, in the order they ran."""
    ran: list[str] = []

    def product(folder: Path, name: str) -> str:
        ran.append(folder.name)
        path = folder / "models" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(8))
        return str(path)

    def train(ctx, folder, dataset_dir, stage, kind, seed=None):
        return {"model": product(folder, "model.pt"), "overrides": dict(ctx.settings[kind]), "iterations": 1,
                "images_per_s": 1.0}  # fmt: skip

    def diffusion(ctx, folder, dataset_dir, autoencoder, segmenter):
        return {"model": product(folder, "generator.pt"), "overrides": {}, "iterations": 1, "images_per_s": 1.0}

    def synthesize(ctx, folder, source_dir, generator_path):
        product(folder, "images")
        return {"dataset_dir": source_dir, "images": 8, "generated": 8, "images_per_s": 1.0, "seconds": 1.0}

    def per_image(ctx, model: dict, score) -> list[dict]:
        rng = np.random.default_rng(list(Path(model["model"]).read_bytes()))  # another product, other scores
        return [{"image": item["image"], "patient": item["patient"], **score(rng)}
                for item in list_camus(ctx.test_dir, ctx.test_split)]  # fmt: skip

    def evaluate_segmenter(ctx, folder, model, name):
        rows = per_image(ctx, model, lambda rng: {**{k: float(rng.uniform(60, 95)) for k in DICE_KEYS},
                                                  "hd_lv_endo": float(rng.uniform(2, 9))})  # fmt: skip
        patients = [row["patient"] for row in rows]
        metrics = {key: {"mean": float(np.mean([r[key] for r in rows])),
                         "ci95": patient_bootstrap([r[key] for r in rows], patients)["ci95"]}
                   for key in (*DICE_KEYS, "hd_lv_endo")}  # fmt: skip
        return {"n_images": len(rows), "metrics": metrics, "per_image": rows}

    def evaluate_classifier(ctx, folder, model, name):
        rows = per_image(ctx, model, lambda rng: {"correct": bool(rng.random() < 0.8)})
        correct = [row["correct"] for row in rows]
        return {"n_images": len(rows), "accuracy": float(np.mean(correct)), "accuracy_mean": float(np.mean(correct)),
                "accuracy_std": 0.01, "accuracy_ci95": patient_bootstrap(correct, [r["patient"] for r in rows])["ci95"],
                "per_image": rows}  # fmt: skip

    def evaluate_generator(ctx, folder, generator_path, segmenter, classifier):
        for name in ("grid.png", "grid_public.png"):
            (folder / name).write_bytes(b"")
        dice = {key: 80.0 for key in DICE_KEYS}
        return {"label_fidelity": dice, "nfe": 10, "images_per_s": 1.0, "n_maps": 4, "autoencoder_ceiling": {},
                "view_fidelity": {"accuracy": 0.5, "accuracy_2CH": 0.5, "accuracy_4CH": 0.5, "n_images": 4},
                "fidelity_vs_steps": [{"sampler": "dpmpp_2m", "steps": 10, "nfe": 10, "dice_mean": 80.0}],
                "real_images_fidelity": dice}  # fmt: skip

    for name, fake in {"train_downstream": train, "train_diffusion": diffusion, "synthesize": synthesize,
                       "evaluate_segmenter": evaluate_segmenter, "evaluate_classifier": evaluate_classifier,
                       "evaluate_generator": evaluate_generator}.items():  # fmt: skip
        monkeypatch.setattr(study_stages, name, fake)
    return ran


def _reran(said: list[str]) -> set[str]:
    return {m[1:].split("]")[0] for m in said if m.startswith("[") and "rerun" in m}


def test_forced_diffusion_reruns_synthesis_the_synthetic_only_models_evaluation_and_report(
    tmp_path: Path, phantom_camus: Path, fake_stages: list[str]
) -> None:
    said: list[str] = []
    study(tmp_path / "w", phantom_camus, said)
    assert "== segmenter_real (up to 1 epochs or 1.0 min, whichever comes first)" in said
    first = json.loads((tmp_path / "w" / "report" / "report.json").read_text())
    said.clear()
    study(tmp_path / "w", phantom_camus, said, force="diffusion")
    downstream = {"synthesis", "segmenter_synthetic", "classifier_synthetic", "evaluation", "report"}
    assert _reran(said) == {"diffusion", *downstream}
    assert {m.split("]")[0][1:] for m in said if "cached" in m} == {"data", "segmenter_real", "classifier_real"}
    assert all("upstream stages" in m for m in said if m.startswith(tuple(f"[{s}]" for s in downstream)))
    second = json.loads((tmp_path / "w" / "report" / "report.json").read_text())
    assert second["runs"]["segmenter_real"] == first["runs"]["segmenter_real"]
    assert all(second["runs"][s] != first["runs"][s] for s in ("diffusion", *downstream - {"report"}))


def test_seeds_train_each_real_baseline_per_seed_and_report_every_seed_intervals_and_the_paired_gap(
    tmp_path: Path, phantom_camus: Path, fake_stages: list[str]
) -> None:
    said: list[str] = []
    study(tmp_path / "w", phantom_camus, said, seeds=3, seed=4)
    assert [f for f in fake_stages if f.startswith("segmenter_real")] == [
        "segmenter_real", "segmenter_real_seed1", "segmenter_real_seed2"]
    keys = [json.loads((tmp_path / "w" / f"classifier_real{s}" / "stage.json").read_text())["key"]["settings"]["seed"]
            for s in ("", "_seed1", "_seed2")]  # fmt: skip
    assert keys == [4, 5, 6]
    report = json.loads((tmp_path / "w" / "report" / "report.json").read_text())
    real = report["segmentation"]["real"]
    assert [row["seed"] for row in real["seeds"]] == [4, 5, 6] and real["dice_mean"] == real["seeds"][0]["dice_mean"]
    spread = real["across_seeds"]["dice_mean"]
    assert spread["min"] <= spread["mean"] <= spread["max"] and spread["std"] > 0
    for source in ("real", "synthetic"):
        for key in DICE_KEYS:
            low, high = report["segmentation"][source]["ci95"][key]
            assert low <= report["segmentation"][source][key] <= high
        low, high = report["view_classification"][source]["ci95"]["accuracy"]
        assert low <= report["view_classification"][source]["accuracy"] <= high
    assert len(report["view_classification"]["real"]["seeds"]) == 3
    gap = report["segmentation"]["synthetic_minus_real"]["dice_mean"]
    assert gap["difference"] == pytest.approx(report["segmentation"]["synthetic"]["dice_mean"] - real["dice_mean"])
    assert gap["tie"] == (gap["ci95"][0] <= 0 <= gap["ci95"][1])
    assert set(report["view_classification"]["synthetic_minus_real"]["accuracy"]) == {"difference", "ci95", "tie"}
    assert report["code"]["torch"] == torch.__version__ and len(report["code"]["echodiff_source"]) == 64
    markdown = (tmp_path / "w" / "report" / "report.md").read_text()
    assert "## Synthetic minus real" in markdown and "## Real-trained baselines over 3 seeds" in markdown


def test_an_edited_echodiff_source_file_reruns_every_stage(
    tmp_path: Path, phantom_camus: Path, fake_stages: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "echodiff"
    shutil.copytree(fingerprints.SOURCE_ROOT, source, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprints, "SOURCE_ROOT", source)
    study(tmp_path / "w", phantom_camus)
    (source / "metrics" / "segmentation.py").write_text((source / "metrics" / "segmentation.py").read_text() + "\n#")
    said: list[str] = []
    study(tmp_path / "w", phantom_camus, said)
    stages_run = {m[3:].split(" ")[0] for m in said if m.startswith("== ")} | {"report"}
    assert _reran(said) == stages_run
    assert all(m.split("] ", 1)[1].startswith("code") for m in said if "rerunning" in m)


def test_a_cuda_device_on_a_torch_without_cuda_and_zero_seeds_are_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ConfigValueError, match="--device cuda: CUDA is not available in this torch build.*device cpu"):
        run_study(workdir=str(tmp_path / "w"), device="cuda", budget_minutes=10, threads=1)
    with pytest.raises(ConfigValueError, match="--seeds 0; expected a whole number >= 1"):
        run_study(workdir=str(tmp_path / "w"), seeds=0, budget_minutes=10, threads=1)
    assert not (tmp_path / "w").exists()


# --- end to end ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_study_runs_every_stage_caches_reruns_on_changed_input_and_resumes(
    tmp_path: Path, phantom_camus: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "study"
    dataset = tmp_path / "camus"
    shutil.copytree(phantom_camus, dataset)

    # 1. the diffusion stage is killed after its first epoch checkpoint
    real_train_diffusion = study_stages.train_diffusion

    def killed_after_one_epoch(ctx, folder, *args):
        ctx.settings["diffusion"] = {**ctx.settings["diffusion"], "max_epochs": 1}
        real_train_diffusion(ctx, folder, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(study_stages, "train_diffusion", killed_after_one_epoch)
    with pytest.raises(KeyboardInterrupt):
        study(work, dataset, model="edm_l64")
    assert (work / "diffusion" / "models" / "edm_l64_training" / "checkpoint_epoch=1.pt").is_file()
    assert not (work / "diffusion" / "stage.json").exists()
    monkeypatch.setattr(study_stages, "train_diffusion", real_train_diffusion)

    # 2. restarted: the finished stages are reused, the killed one resumes from its checkpoint, the rest runs
    said: list[str] = []
    capfd.readouterr()
    report = study(work, dataset, said, model="edm_l64")
    bars = capfd.readouterr().err
    assert "training" in bars and "Loading dataset" not in bars  # one progress bar per training stage, no cache bars
    assert any(m.startswith("[segmenter_real] cached") for m in said)
    assert any(m.startswith("[diffusion] resuming an interrupted run") for m in said)
    assert "Restored all variables from" in (work / "diffusion" / "log.txt").read_text()
    assert json.loads((work / "diffusion" / "stage.json").read_text())["result"]["iterations"] > 0
    written = json.loads((work / "report" / "report.json").read_text())
    assert REPORT_KEYS <= set(written) and written == json.loads(json.dumps(written))
    assert set(written["stage_threads"].values()) == {1}  # threads=1 in every stage
    assert set(written["generator"]) >= {"model", "sampler", "steps", "nfe", "images_per_s", "train_minutes",
                                         "label_fidelity"}  # fmt: skip
    assert {(r["sampler"], r["steps"]) for r in written["fidelity_vs_steps"]} == {
        (s, n) for s in ("heun", "dpmpp_2m") for n in (2, 3, 5, 10, 25)}
    assert [r["nfe"] for r in written["fidelity_vs_steps"] if r["sampler"] == "heun"] == [3, 5, 9, 19, 49]
    for source in ("real", "synthetic"):
        assert written["segmentation"][source]["n_images"] == 8
        assert 0 <= written["segmentation"][source]["dice_mean"] <= 100
        assert written["view_classification"][source]["n_images"] == 8
    assert 0 <= written["autoencoder_ceiling"]["latent_clipped_fraction"] <= 1
    curve = json.loads((work / "diffusion" / "eval" / "label_fidelity.json").read_text())
    assert curve and curve[-1]["epoch"] == 2 and set(curve[-1]) >= {"dice_mean", "iteration", "nfe"}
    assert any((work / "diffusion" / "eval" / "tensorboard").iterdir())
    for png in ("grid.png", "grid_public.png", "fidelity_vs_steps.png", "segmentation_dice.png"):
        assert (work / "report" / png).is_file()
    assert report["report"] == str(work / "report" / "report.json")
    synthetic = Path(json.loads((work / "synthesis" / "stage.json").read_text())["result"]["dataset_dir"])
    for split in ("training", "validation"):
        assert (synthetic / "database_split" / f"subgroup_{split}.txt").read_text().split()

    # 3. same inputs: every stage is reused
    said.clear()
    study(work, dataset, said, model="edm_l64")
    assert all("cached" in m for m in said if m.startswith("[")) and len([m for m in said if "cached" in m]) == 10

    # 4. a changed test split reruns only what reads it; changed synthesis settings rerun synthesis and downstream
    split_file = dataset / "database_split" / "subgroup_testing.txt"
    split_file.write_text(split_file.read_text().split()[0] + "\n")
    said.clear()
    report = study(work, dataset, said, model="edm_l64")
    assert any(m.startswith("[data] test_data, settings changed") or m.startswith("[data] test_data changed")
               for m in said)  # fmt: skip
    assert any(m.startswith("[evaluation] upstream stages (data) changed") for m in said)
    assert any(m.startswith("[diffusion] cached") for m in said)
    assert json.loads((work / "report" / "report.json").read_text())["segmentation"]["real"]["n_images"] == 4


@pytest.mark.slow
def test_tiny_study_with_the_default_pixel_generator_skips_the_autoencoder_and_gives_diffusion_its_minutes(
    tmp_path: Path, phantom_camus: Path
) -> None:
    said: list[str] = []
    study(tmp_path / "study", phantom_camus, said)
    written = json.loads((tmp_path / "study" / "report" / "report.json").read_text())
    assert written["generator"]["model"] == "edm"
    assert "autoencoder" not in written["stages"] and not (tmp_path / "study" / "autoencoder").exists()
    assert not any(m.startswith("== autoencoder") for m in said)
    assert written["autoencoder_ceiling"] == {}
    assert written["settings"]["shares"]["diffusion"] == pytest.approx(0.48)
    assert 0 <= written["generator"]["label_fidelity"]["dice_mean"] <= 100
    view_fidelity = written["generator"]["view_fidelity"]  # the real-trained classifier on the generated test maps
    assert view_fidelity["n_images"] == written["generator"]["n_maps"] > 0 and 0 <= view_fidelity["accuracy"] <= 1
    markdown = (tmp_path / "study" / "report" / "report.md").read_text()
    assert "Reference: the real test images" in markdown and "View fidelity on the same generated images" in markdown
    # the bundles' own evaluation reports carry the patients: intervals and the paired comparison come from them
    low, high = written["segmentation"]["real"]["ci95"]["dice_mean"]
    assert low <= written["segmentation"]["real"]["dice_mean"] <= high
    assert written["view_classification"]["synthetic"]["ci95"]["accuracy"][0] <= 1
    assert isinstance(written["segmentation"]["synthetic_minus_real"]["dice_mean"]["tie"], bool)
    # the precision benchmark's fidelity check reads a finished study: both precisions on held-out maps
    from echodiff.benchmarks.precision import precision_fidelity

    rows = precision_fidelity(tmp_path / "study", n_maps=2, steps=2)
    assert [r["precision"] for r in rows] == ["float32", "bfloat16"] and rows[0]["dice_mean_minus_float32"] == 0
    assert all(r["n_maps"] == 2 and 0 <= r["dice_mean"] <= 100 for r in rows)
