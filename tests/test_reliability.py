"""Bad inputs as a user meets them: through `python -m monai.bundle run` in a subprocess, through our scripts, and the
up-front dataset check. Each ends with one readable line naming the file and exit code 1, never an abort (134)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import traceback
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from echodiff.data.check import camus_problems, check_camus
from echodiff.errors import ConfigValueError, EchoDataError, as_flag
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

REPO_ROOT = Path(__file__).resolve().parents[1]
PATIENT = "patient0001"  # a training patient of the phantom


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})  # fmt: skip


def _train(bundle: str, dataset: Path, tmp_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    root = REPO_ROOT / "bundles" / bundle
    return _run("-m", "monai.bundle", "run", "training", "--config_file", str(root / "configs" / "train.json"),
                "--bundle_root", str(root), "--dataset_dir", str(dataset), "--ckpt_dir", str(tmp_path / "models"),
                "--output_dir", str(tmp_path / "eval"), "--max_epochs", "1", "--image_size", "[32,32]", env=env)  # fmt: skip


def _file(dataset: Path, name: str) -> Path:
    return dataset / "database_nifti" / PATIENT / f"{PATIENT}_{name}.nii.gz"


def _label_seven(dataset: Path) -> Path:
    path = _file(dataset, "2CH_ED_gt")
    image = nib.load(path)
    array = np.asarray(image.dataobj).copy()
    array[array == 1] = 7
    nib.save(nib.Nifti1Image(array, image.affine, image.header), path)
    return path


def _truncated(dataset: Path) -> Path:
    path = _file(dataset, "4CH_ES")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _other_size(dataset: Path) -> Path:
    path = _file(dataset, "4CH_ED_gt")
    image = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:-5].copy(), image.affine), path)
    return path


@pytest.fixture
def dataset(tmp_path: Path, phantom_camus: Path) -> Path:
    copy = tmp_path / "camus"
    shutil.copytree(phantom_camus, copy)
    return copy


def _last_line(result: subprocess.CompletedProcess) -> str:
    return (result.stdout + result.stderr).strip().splitlines()[-1]


def test_missing_dataset_under_monai_bundle_run_ends_with_one_line_and_exit_1(tmp_path: Path) -> None:
    result = _train("echo_view_classification", tmp_path / "nowhere", tmp_path)
    assert result.returncode == 1
    assert _last_line(result) == f"error: CAMUS dataset folder {tmp_path / 'nowhere'} does not exist."
    assert "Traceback" not in result.stderr and "ConfigExpression" not in result.stderr


def test_echodiff_traceback_1_shows_the_whole_chain(tmp_path: Path) -> None:
    result = _train("echo_view_classification", tmp_path / "nowhere", tmp_path, env={"ECHODIFF_TRACEBACK": "1"})
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "MissingFileError" in result.stderr


def test_errors_that_are_not_ours_keep_their_traceback(tmp_path: Path, phantom_camus: Path) -> None:
    root = REPO_ROOT / "bundles" / "echo_view_classification"
    config = str(root / "configs" / "train.json")
    result = _run("-m", "monai.bundle", "run", "no_such_workflow", "--config_file", config, "--bundle_root", str(root),
                  "--dataset_dir", str(phantom_camus))  # fmt: skip
    assert result.returncode == 1 and "Traceback" in result.stderr and not _last_line(result).startswith("error:")


@pytest.mark.slow
@pytest.mark.parametrize("corrupt", [_label_seven, _truncated, _other_size], ids=["label_7", "truncated", "other_size"])
def test_corrupt_training_file_exits_1_naming_it_never_aborts(corrupt, dataset: Path, tmp_path: Path) -> None:
    bad = corrupt(dataset)
    result = _train("echo_pddpm_segmentation", dataset, tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "terminate called" not in result.stderr
    assert _last_line(result).startswith("error: ") and str(bad) in _last_line(result)


def test_dataset_check_reports_every_bad_file_at_once(dataset: Path) -> None:
    bad = [_label_seven(dataset), _truncated(dataset), _other_size(dataset)]
    split = dataset / "database_split" / "subgroup_validation.txt"
    split.write_text(split.read_text() + "patient0999\n")
    n_files, problems = camus_problems(dataset)
    assert len(problems) == 4 and n_files > 0
    for path in bad:
        assert sum(str(path) in p for p in problems) == 1
    assert any("patient0999" in p for p in problems)
    with pytest.raises(EchoDataError, match=r"\n4 problem\(s\) in .*: the files listed above; fix or remove them$"):
        check_camus(dataset)


def test_check_dataset_script_exit_codes(dataset: Path) -> None:
    ok = _run("scripts/check_dataset.py", "--dataset_dir", str(dataset))
    assert ok.returncode == 0 and ok.stdout.strip().endswith("no problems")
    bad = _label_seven(dataset)
    failed = _run("scripts/check_dataset.py", "--dataset_dir", str(dataset), "--splits", "training")
    assert failed.returncode == 1 and str(bad) in failed.stderr
    assert _last_line(failed).startswith(f"error: 1 problem(s) in {dataset}")


def _classifier(*args: str) -> subprocess.CompletedProcess:
    root = REPO_ROOT / "bundles" / "echo_view_classification"
    return _run("-m", "monai.bundle", "run", "--bundle_root", str(root), "--image_size", "[32,32]", "--num_workers", "0",
                *args)  # fmt: skip


def _train_classifier(dataset: Path, models: Path, *args: str) -> subprocess.CompletedProcess:
    config = str(REPO_ROOT / "bundles" / "echo_view_classification" / "configs" / "train.json")
    return _classifier("training", "--config_file", config, "--dataset_dir", str(dataset), "--ckpt_dir", str(models),
                       "--output_dir", str(models.parent / "eval"), "--max_epochs", "1", *args)  # fmt: skip


@pytest.fixture(scope="module")
def trained_classifier(tmp_path_factory: pytest.TempPathFactory, phantom_camus: Path) -> Path:
    """The checkpoint folder of a view classifier trained one epoch on the phantom by `monai.bundle run training`
    (the tests that use it share an xdist group, so it is trained once)."""
    models = tmp_path_factory.mktemp("classifier") / "models"
    result = _train_classifier(phantom_camus, models)
    assert result.returncode == 0, result.stderr[-2000:]
    return models


@pytest.mark.slow
@pytest.mark.xdist_group("trained_classifier")
def test_resuming_a_training_run_with_other_data_is_refused_and_resume_false_starts_over(
    dataset: Path, tmp_path: Path, phantom_camus: Path, trained_classifier: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(trained_classifier, models)
    inputs = (models / "run_inputs.json").read_text()
    nothing_left = _train_classifier(phantom_camus, models)
    assert nothing_left.returncode == 0 and "nothing left to train" in nothing_left.stdout + nothing_left.stderr
    _label_seven(dataset)  # the same folder layout with one changed file
    refused = _train_classifier(dataset, models)
    assert refused.returncode == 1
    assert _last_line(refused) == (f"error: {models} holds checkpoints of a run started with other inputs (data differ); "
                                   "resume it with the same inputs, or start over with --resume false (deletes its "
                                   "interval checkpoints) or another checkpoint folder")  # fmt: skip
    fresh = _train_classifier(dataset, models, "--resume", "false")
    assert fresh.returncode == 0 and (models / "run_inputs.json").read_text() != inputs


@pytest.mark.slow
@pytest.mark.xdist_group("trained_classifier")
def test_view_inference_writes_predictions_with_a_header_and_names_a_bad_checkpoint(
    tmp_path: Path, phantom_camus: Path, trained_classifier: Path
) -> None:
    config = str(REPO_ROOT / "bundles" / "echo_view_classification" / "configs" / "inference.json")
    models = trained_classifier
    out = tmp_path / "pred"
    ok = _classifier("run", "--config_file", config, "--dataset_dir", str(phantom_camus), "--ckpt_path",
                     str(models / "model.pt"), "--output_dir", str(out))  # fmt: skip
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.strip().splitlines()[-1] == f"outputs written to {out}"
    rows = (out / "predictions.csv").read_text().splitlines()
    assert rows[0] == "image,p_2CH,p_4CH" and len(rows) == 1 + 8  # 2 testing patients x 2 views x 2 phases
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    for path, expected in ((tmp_path / "absent.pt", f"error: view-classifier checkpoint {tmp_path / 'absent.pt'} does "
                            "not exist; train one with configs/train.json"),
                           (garbage, f"error: {garbage} cannot be read as a torch checkpoint")):  # fmt: skip
        failed = _classifier("run", "--config_file", config, "--dataset_dir", str(phantom_camus), "--ckpt_path",
                             str(path), "--output_dir", str(out))  # fmt: skip
        assert failed.returncode == 1 and _last_line(failed).startswith(expected)
        assert "weights_only" not in _last_line(failed)
@pytest.mark.parametrize(("given", "expected"), [(True, True), ("false", False), ("False", False), ("TRUE", True),
                                                 ("0", False), (1, True), ("no", False)])  # fmt: skip
def test_command_line_flags_read_false_as_false(given: object, expected: bool) -> None:
    assert as_flag(given, "resume") is expected


def test_an_unreadable_flag_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigValueError, match=r"resume='maybe'; expected true or false"):
        as_flag("maybe", "resume")


ITERATIONS_PER_EPOCH = 4  # 16 training images of the phantom, batch size 4


def _record(log: Path, **entry: object) -> None:
    with log.open("a") as file:
        file.write(json.dumps(entry) + "\n")


def _weights_digest(state_dict: dict) -> str:
    return hashlib.sha256(b"".join(state_dict[k].cpu().numpy().tobytes() for k in sorted(state_dict))).hexdigest()


def _train_child(overrides: dict, kill: tuple[str, int] | None, log: Path) -> int:
    """Run the segmenter's `training` (as `monai.bundle run training` does) in a forked child that SIGKILLs itself at
    `kill`: ("iteration", i) after training iteration i (counted over the whole run, as the trainer resumes it), or
    ("validation", e) right after epoch e's validation, before its interval checkpoint; the child appends one JSON
    line per started epoch and per validation (mean Dice, digest of the weights) to `log`, and one before a kill after
    validation. Returns the child's wait status."""
    pid = os.fork()
    if pid:
        return os.waitpid(pid, 0)[1]
    try:  # the child: never returns into pytest
        root = REPO_ROOT / "bundles" / "echo_pddpm_segmentation"
        workflow = ConfigWorkflow(str(root / "configs" / "train.json"), run_id="training", workflow_type="train",
                                  bundle_root=str(root), **overrides)  # fmt: skip
        workflow.initialize()
        trainer = workflow.parser.get_parsed_content("train#trainer")
        evaluator = workflow.parser.get_parsed_content("validate#evaluator")
        network = workflow.parser.get_parsed_content("network")

        def kill_at_iteration(engine) -> None:
            if kill == ("iteration", engine.state.iteration):
                os.kill(os.getpid(), signal.SIGKILL)

        def validated(engine) -> None:
            _record(log, validated=trainer.state.epoch, dice=engine.state.metrics["val_mean_dice"],
                    weights=_weights_digest(network.state_dict()))
            if kill == ("validation", trainer.state.epoch):
                _record(log, killed_after_validation=trainer.state.epoch)
                os.kill(os.getpid(), signal.SIGKILL)

        trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: _record(log, started=e.state.epoch))
        trainer.add_event_handler(Events.ITERATION_COMPLETED, kill_at_iteration)
        evaluator.add_event_handler(Events.COMPLETED, validated)
        workflow.run()
        os._exit(0)
    except BaseException:  # noqa: BLE001 - report anything to the parent through the log, then end the child
        _record(log, error=traceback.format_exc())
        os._exit(1)


def _events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _checkpointed_epoch(models: Path) -> int:
    found = sorted(models.glob("checkpoint_epoch=*.pt"))
    assert len(found) <= 1, f"interval checkpoints are not pruned: {found}"
    return torch.load(found[0], weights_only=True)["trainer"]["iteration"] // ITERATIONS_PER_EPOCH if found else 0


def _kept_validations(events: list[dict]) -> list[dict]:
    """The validations of finished epochs: all but those followed by a kill before their interval checkpoint."""
    return [e for e, after in zip(events, events[1:] + [{}]) if "validated" in e and "killed_after_validation" not in after]


@pytest.mark.slow
def test_training_killed_at_random_points_resumes_each_epoch_once_and_keeps_the_best_model(
    tmp_path: Path, phantom_camus: Path
) -> None:
    """SIGKILLs of the segmenter's training, each run restarted with the same command: one right after a best
    validation (epoch 1's), before its interval checkpoint, then three at seeded random training iterations. Every
    run starts at the epoch after its last checkpointed one, each epoch is validated exactly once over all runs apart
    from the validation of an epoch killed before its checkpoint (none lost, none repeated), one interval checkpoint is
    kept, and models/model.pt always holds the weights of the best kept validation so far (mean Dice; the first of
    equals), never the weights of an unfinished epoch."""
    max_epochs, models, log = 4, tmp_path / "models", tmp_path / "events.jsonl"
    # a high learning rate, so that some epochs score worse than an earlier one
    overrides = {"dataset_dir": str(phantom_camus), "ckpt_dir": str(models), "output_dir": str(tmp_path / "eval"),
                 "image_size": [32, 32], "filters": [8, 16, 32], "batch_size": 4, "num_workers": 0,
                 "max_epochs": max_epochs, "learning_rate": 0.1}  # fmt: skip
    kills = [("iteration", i) for i in sorted(random.Random(10).sample(range(1, max_epochs * ITERATIONS_PER_EPOCH + 1), 3))]
    worse_after_restart = False
    for kill in [("validation", 1), *kills, None]:
        done = _checkpointed_epoch(models)
        best_before = max((e["dice"] for e in _kept_validations(_events(log))), default=None)
        _record(log, restart=done)
        status = _train_child(overrides, kill, log)
        events = _events(log)
        assert not any("error" in e for e in events), events[-1].get("error")
        run = events[max(i for i, e in enumerate(events) if "restart" in e) + 1:]
        started = [e["started"] for e in run if "started" in e]
        worse_after_restart |= best_before is not None and any(e["dice"] < best_before for e in run if "dice" in e)
        assert started == list(range(done + 1, done + 1 + len(started))) and started, (done, started)
        if kill is None:
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        else:
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            finished = kill[1] - 1 if kill[0] == "validation" else (kill[1] - 1) // ITERATIONS_PER_EPOCH
            assert _checkpointed_epoch(models) == finished  # every finished epoch kept, the killed one not
        validated = _kept_validations(events)
        best = max(validated, key=lambda e: e["dice"]) if validated else None  # max: the first of equals
        if best is None:
            assert not (models / "model.pt").exists()
        else:
            assert _weights_digest(torch.load(models / "model.pt", weights_only=True)) == best["weights"]
    assert [e["validated"] for e in validated] == list(range(1, max_epochs + 1))
    assert len({e["weights"] for e in validated}) == max_epochs and worse_after_restart
    assert _checkpointed_epoch(models) == max_epochs
    assert torch.load(next(models.glob("checkpoint_epoch=*.pt")), weights_only=True)["best_metric"]["best_metric"] == (
        best["dice"])
