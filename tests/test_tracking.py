"""Experiment tracking as MONAI users do it: every bundle train config under `--tracking mlflow` (MONAI's own
MLFlowHandler and default settings), and the study's stages as MLflow runs (echodiff.study.tracking)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from echodiff.bundle import REPO_BUNDLES, bundle_names
from echodiff.bundle.checks import _substitute, load_run_plan
from echodiff.errors import ConfigKeyError
from echodiff.generation.grids import write_png
from echodiff.study import run_cached, run_study
from echodiff.study.tracking import EXPERIMENT, checked_tracking, default_tracking_uri, track_study
from mlflow.tracking import MlflowClient
from monai.bundle import ConfigWorkflow
from monai.bundle import run as bundle_run
from monai.utils import path_to_sqlite_uri


def _train_runs() -> list[tuple[str, dict]]:
    """One planned single-process train run per distinct config list of every bundle (all its train*.json)."""
    runs = {}
    for name in bundle_names():
        for run in load_run_plan(REPO_BUNDLES / name)["runs"]:
            if run.get("workflow_type") == "train" and not run.get("torchrun"):
                runs.setdefault((name, tuple(run["config_file"])), run)
    return [(name, run) for (name, _), run in runs.items()]


def test_every_train_config_is_covered_by_the_tracked_runs():
    covered = {(name, Path(c).name) for name, run in _train_runs() for c in run["config_file"]}
    train_configs = {(n, p.name) for n in bundle_names() for p in (REPO_BUNDLES / n / "configs").glob("train*.json")}
    assert train_configs <= covered


@pytest.mark.parametrize("name, run", _train_runs(), ids=lambda v: v if isinstance(v, str) else v["name"])
def test_monai_default_mlflow_settings_attach_to_every_train_config_with_the_store_in_its_output_dir(
    name: str, run: dict, tmp_path: Path
):
    plan = load_run_plan(REPO_BUNDLES / name)
    names = {"tmp": str(tmp_path), **{f: str(tmp_path / f) for f in plan.get("fixtures", [])}}
    overrides = {**_substitute(run.get("override", {}), names), "output_dir": str(tmp_path / "eval")}
    workflow = ConfigWorkflow(config_file=[str(REPO_BUNDLES / name / c) for c in run["config_file"]],
                              workflow_type="train", tracking="mlflow", **overrides)  # fmt: skip
    parser = workflow.parser
    assert parser["train#handlers"][-1]["_target_"] == "MLFlowHandler"
    if "validate#evaluator" in parser:
        assert parser["validate#handlers"][-1]["_target_"] == "MLFlowHandler"
    assert parser.get_parsed_content("tracking_uri") == path_to_sqlite_uri(tmp_path / "eval" / "mlruns.db")


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, np.zeros((4, 4), dtype=np.uint8))


def _fake_study(workdir: Path) -> dict[str, str]:
    """Two finished stages as `run_cached` leaves them: a training stage with a sample grid, and the report."""

    def diffusion(folder: Path) -> dict:
        _png(folder / "eval" / "samples_epoch_2.png")
        return {"model": str(folder / "generator.pt"), "epochs": 2, "label_fidelity": {"dice_mean": 61.5}}

    def report(folder: Path) -> dict:
        _png(folder / "segmentation_dice.png")
        (folder / "report.md").write_text("# report\n")
        (folder / "report.json").write_text(json.dumps({"segmentation": {"real": {"dice_mean": 88.0}},
                                                        "hardware": {"cpu": "x"}}))  # fmt: skip
        return {"markdown_table": "| a |"}

    key = {"code": "0.5.0", "settings": {"loss#warmup_epochs": 0, "channels": [8, 16]}, "upstream": {}}
    records = [run_cached(workdir / "diffusion", "diffusion", key, diffusion, say=lambda _: None),
               run_cached(workdir / "report", "report", {"settings": {"k": 1}}, report, say=lambda _: None)]
    return {r.name: r.fingerprint for r in records}


def test_each_finished_stage_becomes_one_mlflow_run_with_fingerprint_settings_metrics_and_figures(tmp_path: Path):
    fingerprints = _fake_study(tmp_path)
    assert track_study(tmp_path) == ["diffusion", "report"]
    client = MlflowClient(default_tracking_uri(tmp_path))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"diffusion", "report"} and all(r.info.status == "FINISHED" for r in runs.values())
    diffusion, report = runs["diffusion"], runs["report"]
    assert diffusion.data.tags["fingerprint"] == diffusion.data.params["fingerprint"] == fingerprints["diffusion"]
    assert diffusion.data.params["settings/loss_warmup_epochs"] == "0"  # a config id's '#' is not allowed in MLflow
    assert diffusion.data.params["settings/channels"] == "[8, 16]"
    assert diffusion.data.metrics["label_fidelity/dice_mean"] == 61.5 and diffusion.data.metrics["epochs"] == 2
    assert report.data.metrics["segmentation/real/dice_mean"] == 88.0  # from report.json
    assert [a.path for a in client.list_artifacts(diffusion.info.run_id, "eval")] == ["eval/samples_epoch_2.png"]
    assert {a.path for a in client.list_artifacts(report.info.run_id)} == {"report.md", "segmentation_dice.png"}
    assert (tmp_path / "mlruns").is_dir()  # artifacts next to the database, as MONAI lays out a bundle's store


def test_a_stage_logged_with_the_same_fingerprint_is_not_logged_again(tmp_path: Path):
    _fake_study(tmp_path)
    track_study(tmp_path)
    assert track_study(tmp_path) == []


def test_a_forced_rerun_with_the_same_fingerprint_is_logged_as_a_new_run_and_only_the_given_stages(tmp_path: Path):
    _fake_study(tmp_path)
    assert track_study(tmp_path, stages=["diffusion"]) == ["diffusion"]
    stage_file = tmp_path / "diffusion" / "stage.json"
    record = json.loads(stage_file.read_text())
    stage_file.write_text(json.dumps({**record, "run": "a-forced-rerun"}))  # --force: same key, new run id
    assert track_study(tmp_path, stages=["diffusion", "segmenter_real_seed2"]) == ["diffusion"]


def test_an_unknown_tracker_is_refused_naming_the_known_ones():
    assert checked_tracking(None) is None and checked_tracking("mlflow") == "mlflow"
    with pytest.raises(ConfigKeyError, match="--tracking 'wandb'; expected one of mlflow"):
        checked_tracking("wandb")


@pytest.mark.slow
def test_tiny_bundle_training_with_tracking_mlflow_logs_its_metrics(tmp_path: Path, phantom_camus: Path):
    root = REPO_BUNDLES / "echo_view_classification"
    bundle_run("training", config_file=str(root / "configs" / "train.json"), tracking="mlflow",
               logging_file=str(root / "configs" / "logging.conf"), dataset_dir=str(phantom_camus),
               ckpt_dir=str(tmp_path / "models"), output_dir=str(tmp_path / "eval"), image_size=[32, 32],
               batch_size=4, num_workers=0, max_epochs=2)  # fmt: skip
    client = MlflowClient(path_to_sqlite_uri(tmp_path / "eval" / "mlruns.db"))
    (run,) = client.search_runs([client.get_experiment_by_name("monai_experiment").experiment_id])
    assert {"train_loss", "val_accuracy", "train_accuracy"} <= set(run.data.metrics)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [1, 2]


@pytest.mark.slow
def test_tiny_study_with_tracking_mlflow_logs_one_run_per_stage(tmp_path: Path, phantom_camus: Path):
    tiny = {"segmenter": {"max_epochs": 1}, "classifier": {"max_epochs": 1}, "diffusion": {"max_epochs": 1}}
    run_study(str(tmp_path), str(phantom_camus), str(phantom_camus), budget_minutes=10, scale="tiny", k=1,
              overrides=tiny, tracking="mlflow", threads=1, say=lambda _: None)  # fmt: skip
    client = MlflowClient(default_tracking_uri(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    stages = {json.loads(p.read_text())["stage"] for p in tmp_path.glob("*/stage.json")}
    assert sorted(r.info.run_name for r in runs) == sorted(stages) and "evaluation" in stages
    report = next(r for r in runs if r.info.run_name == "report")
    assert "segmentation/synthetic/dice_mean" in report.data.metrics
    assert any(a.path.endswith(".png") for a in client.list_artifacts(report.info.run_id))
