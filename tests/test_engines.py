"""Resumable training and the bootstrap-accuracy evaluator handler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from echodiff.engines import BestMetricState, BestModelSaver, BootstrapAccuracySaver, latest_checkpoint, resume_handlers
from echodiff.engines import CheckedCheckpointLoader, ResumeCheckpointLoader
from echodiff.errors import ConfigValueError, CorruptFileError, MissingFileError, ShapeMismatchError
from ignite.engine import Engine, Events
from ignite.metrics import Metric
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import CheckpointSaver, LrScheduleHandler, ValidationHandler
from monai.optimizers import WarmupCosineSchedule


def _trainer(max_epochs: int) -> tuple[SupervisedTrainer, torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    data = [{"image": torch.randn(2, 3), "label": torch.randn(2, 1)} for _ in range(3)]
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    trainer = SupervisedTrainer(device=torch.device("cpu"), max_epochs=max_epochs, train_data_loader=data,
                                network=net, optimizer=opt, loss_function=torch.nn.MSELoss())
    return trainer, net, opt


def test_latest_checkpoint_picks_largest_epoch(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    for name in ("checkpoint_epoch=2.pt", "checkpoint_epoch=10.pt", "checkpoint_epoch=9.pt", "model.pt"):
        (tmp_path / name).touch()
    assert latest_checkpoint(tmp_path).endswith("checkpoint_epoch=10.pt")


def test_restarted_training_continues_from_last_epoch(tmp_path):
    trainer, net, opt = _trainer(max_epochs=2)
    CheckpointSaver(str(tmp_path), {"model": net, "optimizer": opt, "trainer": trainer}, save_interval=1,
                    n_saved=1, epoch_level=True).attach(trainer)
    trainer.run()
    weights_after_two = net.weight.detach().clone()

    resumed, net2, opt2 = _trainer(max_epochs=3)
    handlers = resume_handlers(tmp_path, {"model": net2, "optimizer": opt2, "trainer": resumed})
    assert isinstance(handlers[0], ResumeCheckpointLoader) and len(handlers) == 2  # + the pruner
    for handler in handlers:
        handler.attach(resumed)
    epochs_run = []
    resumed.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs_run.append(e.state.epoch))
    start_weights = []
    resumed.add_event_handler(Events.STARTED, lambda e: start_weights.append(net2.weight.detach().clone()))
    resumed.run()
    assert epochs_run == [3]
    assert torch.equal(start_weights[0], weights_after_two)
    assert resume_handlers(tmp_path, {"model": net2}, enabled=False) == []



def _interval_run(ckpt_dir, max_epochs: int) -> list[str]:
    trainer, net, opt = _trainer(max_epochs)
    load = {"model": net, "optimizer": opt, "trainer": trainer}
    saver = CheckpointSaver(str(ckpt_dir), load, save_interval=1, n_saved=1, epoch_level=True)
    for handler in [saver, *resume_handlers(ckpt_dir, load)]:
        handler.attach(trainer)
    trainer.run()
    return sorted(p.name for p in ckpt_dir.glob("*.pt"))


def test_a_resumed_run_prunes_the_interval_checkpoint_it_resumed_from(tmp_path):
    assert _interval_run(tmp_path, 2) == ["checkpoint_epoch=2.pt"]
    assert _interval_run(tmp_path, 4) == ["checkpoint_epoch=4.pt"]
    assert _interval_run(tmp_path, 4) == ["checkpoint_epoch=4.pt"]  # nothing left to train: the file stays

def _run_with_inputs(ckpt_dir, max_epochs: int, inputs: dict, resume: bool = True):
    trainer, net, opt = _trainer(max_epochs)
    load = {"model": net, "optimizer": opt, "trainer": trainer}
    for handler in resume_handlers(ckpt_dir, load, resume, inputs=inputs):
        handler.attach(trainer)
    CheckpointSaver(str(ckpt_dir), load, save_interval=1, n_saved=None, epoch_level=True).attach(trainer)
    epochs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    trainer.run()
    return epochs


def test_resume_with_other_inputs_is_refused_naming_what_differs_and_resume_false_starts_over(tmp_path):
    inputs = {"data": "digest-a", "network": torch.nn.Linear(3, 1), "image_size": 64}
    assert _run_with_inputs(tmp_path, 2, inputs) == [1, 2]
    assert _run_with_inputs(tmp_path, 3, dict(inputs)) == [3]  # same inputs: resumes, more epochs allowed
    for changed in ({"data": "digest-b"}, {"image_size": 96}, {"network": torch.nn.Linear(3, 2)}):
        name = next(iter(changed))
        with pytest.raises(ConfigValueError, match=rf"other inputs \({name} differ\).*--resume false"):
            _run_with_inputs(tmp_path, 4, {**inputs, **changed})
    assert _run_with_inputs(tmp_path, 2, {**inputs, "data": "digest-b"}, resume=False) == [1, 2]
    assert sorted(p.name for p in tmp_path.glob("*checkpoint_epoch=*")) == ["checkpoint_epoch=1.pt",
                                                                            "checkpoint_epoch=2.pt"]  # fmt: skip
    assert _run_with_inputs(tmp_path, 3, {**inputs, "data": "digest-b"}) == [3]


def test_checkpoints_without_a_record_of_their_inputs_are_not_resumed(tmp_path):
    assert _run_with_inputs(tmp_path, 1, {"data": "a"}) == [1]
    (tmp_path / "run_inputs.json").unlink()
    with pytest.raises(ConfigValueError, match="no record of the inputs they were made from"):
        _run_with_inputs(tmp_path, 2, {"data": "a"})


def test_resumed_run_with_nothing_left_says_so_and_fewer_epochs_is_a_clear_error(tmp_path, caplog):
    assert _run_with_inputs(tmp_path, 2, {"data": "a"}) == [1, 2]
    with caplog.at_level("WARNING"):
        assert _run_with_inputs(tmp_path, 2, {"data": "a"}) == []
    assert "nothing left to train (raise --max_epochs to continue)" in caplog.text
    with pytest.raises(ConfigValueError, match="has trained 2 epochs, more than max_epochs=1"):
        _run_with_inputs(tmp_path, 1, {"data": "a"})


def _scheduled_trainer(max_epochs: int):
    trainer, net, opt = _trainer(max_epochs)
    schedule = WarmupCosineSchedule(opt, warmup_steps=2, t_total=max_epochs * 3)
    LrScheduleHandler(schedule, epoch_level=False, print_lr=False).attach(trainer)
    lrs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: lrs.append(opt.param_groups[0]["lr"]))
    return trainer, net, opt, schedule, lrs


def test_resuming_with_more_epochs_stretches_the_lr_schedule(tmp_path):
    """Progress comes from the checkpoint, the schedule (t_total) from the current config: a 2-epoch run resumed as a
    4-epoch run follows the LRs of an uninterrupted 4-epoch run, instead of continuing the finished 2-epoch cosine."""
    reference, *_, reference_lrs = _scheduled_trainer(max_epochs=4)
    reference.run()
    first, net, opt, schedule, first_lrs = _scheduled_trainer(max_epochs=2)
    CheckpointSaver(str(tmp_path), {"model": net, "optimizer": opt, "lr_scheduler": schedule, "trainer": first},
                    save_interval=1, n_saved=1, epoch_level=True).attach(first)
    first.run()
    resumed, net2, opt2, schedule2, resumed_lrs = _scheduled_trainer(max_epochs=4)
    for handler in resume_handlers(tmp_path, {"model": net2, "optimizer": opt2, "lr_scheduler": schedule2,
                                              "trainer": resumed}):
        handler.attach(resumed)
    resumed.run()
    assert schedule2.t_total == 12 and schedule2.last_epoch == 12
    np.testing.assert_allclose(resumed_lrs, reference_lrs[6:], rtol=1e-6)
    assert not np.allclose(first_lrs, reference_lrs[:6])  # the short run really had the shorter schedule


class _ScriptedMetric(Metric):
    """A validation metric that returns the given values, one per validation."""

    def __init__(self, values):
        self.values = list(values)
        super().__init__()

    def reset(self):
        pass

    def update(self, output):
        pass

    def compute(self):
        return self.values.pop(0)


class _Killed(Exception):
    """Stands for a SIGKILL: the run ends at once and leaves what it had written (all writes are atomic)."""


def _raise(engine) -> None:
    raise _Killed


def _validated_run(ckpt_dir, max_epochs: int, scores, kill_after: str | None = None):
    """A training run validated after every epoch with the scripted `scores`, resumed from `ckpt_dir` as the bundles
    do (interval checkpoint, resume loader, best-model saver, in this order); `kill_after` "validation" ends it in the
    last epoch between its validation and its interval checkpoint, "checkpoint" between the interval checkpoint and
    the best-model write."""
    trainer, net, opt = _trainer(max_epochs)
    batches = [{"image": torch.ones(1, 3), "label": torch.ones(1, 1)}]
    evaluator = SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=batches, network=net,
                                    key_val_metric={"score": _ScriptedMetric(scores)})
    ValidationHandler(1, evaluator).attach(trainer)
    if kill_after == "validation":
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=max_epochs), _raise)
    state = {"model": net, "optimizer": opt, "trainer": trainer, "best_metric": BestMetricState(evaluator)}
    CheckpointSaver(str(ckpt_dir), state, save_interval=1, n_saved=1, epoch_level=True).attach(trainer)
    for handler in resume_handlers(ckpt_dir, state):
        handler.attach(trainer)
    if kill_after == "checkpoint":
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=max_epochs), _raise)
    BestModelSaver(evaluator, ckpt_dir / "model.pt", net).attach(trainer)
    if kill_after is None:
        trainer.run()
    else:
        with pytest.raises(_Killed):
            trainer.run()
    return evaluator, net


def _saved(path) -> dict:
    return torch.load(path, weights_only=True)


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_resumed_run_keeps_its_best_checkpoint(tmp_path):
    """Best score 0.9 at epoch 1, then a kill after epoch 2: the resumed run's worse epoch 3 (0.7) must not replace
    models/model.pt; its better epoch 4 (0.95) must."""
    _validated_run(tmp_path, 2, [0.9, 0.5])
    best = _saved(tmp_path / "model.pt")
    evaluator, _ = _validated_run(tmp_path, 3, [0.7])
    assert (evaluator.state.best_metric, evaluator.state.best_metric_epoch) == (0.9, 1)
    assert _same(best, _saved(tmp_path / "model.pt"))
    evaluator, _ = _validated_run(tmp_path, 4, [0.95])
    assert (evaluator.state.best_metric, evaluator.state.best_metric_epoch) == (0.95, 4)
    assert not _same(best, _saved(tmp_path / "model.pt"))


def test_kill_between_a_best_validation_and_its_interval_checkpoint_keeps_model_and_record_in_step(tmp_path):
    """Epoch 2 validates best (0.9 > 0.5) and the run dies before its interval checkpoint: the best model on disk is
    still epoch 1's, the one the newest checkpoint records, so the rerun of epoch 2 (0.7 this time) rightly replaces
    it; a file better than the record, which a weaker rerun could overwrite, never exists."""
    _, net = _validated_run(tmp_path, 1, [0.5])
    first = {k: v.clone() for k, v in net.state_dict().items()}
    _validated_run(tmp_path, 2, [0.9], kill_after="validation")
    assert _same(first, _saved(tmp_path / "model.pt")) and latest_checkpoint(tmp_path).endswith("epoch=1.pt")
    evaluator, net = _validated_run(tmp_path, 2, [0.7])
    assert (evaluator.state.best_metric, evaluator.state.best_metric_epoch) == (0.7, 2)
    assert _same(net.state_dict(), _saved(tmp_path / "model.pt"))


def test_kill_between_the_interval_checkpoint_and_the_best_model_write_is_repaired_on_resume(tmp_path):
    """Epoch 2 validates best and is checkpointed, then the run dies before writing model.pt: the resumed run (nothing
    left to train) writes epoch 2's weights from the checkpoint, so model.pt matches the recorded best again."""
    _validated_run(tmp_path, 1, [0.5])
    _, net = _validated_run(tmp_path, 2, [0.9], kill_after="checkpoint")
    second = {k: v.clone() for k, v in net.state_dict().items()}
    assert not _same(second, _saved(tmp_path / "model.pt"))
    evaluator, _ = _validated_run(tmp_path, 2, [])
    assert (evaluator.state.best_metric, evaluator.state.best_metric_epoch) == (0.9, 2)
    assert _same(second, _saved(tmp_path / "model.pt"))


def test_checkpoint_without_best_score_still_resumes(tmp_path):
    """Interval checkpoints written before the best score was stored resume, with an empty best."""
    trainer, net, opt = _trainer(max_epochs=1)
    CheckpointSaver(str(tmp_path), {"model": net, "optimizer": opt, "trainer": trainer}, save_interval=1,
                    n_saved=1, epoch_level=True).attach(trainer)
    trainer.run()
    evaluator, _ = _validated_run(tmp_path, 2, [0.4])
    assert (evaluator.state.best_metric, evaluator.state.best_metric_epoch) == (0.4, 2)


def test_bootstrap_accuracy_saver_writes_json_with_a_patient_level_interval_and_per_image_rows(tmp_path):
    outputs = [[{"pred": torch.tensor([0.9, 0.1]), "label": torch.tensor([1.0, 0.0]), "patient": "p1", "source": "a"},
                {"pred": torch.tensor([0.2, 0.8]), "label": torch.tensor([1.0, 0.0]), "patient": "p1", "source": "b"}],
               [{"pred": torch.tensor([0.3, 0.7]), "label": torch.tensor([0.0, 1.0]), "patient": "p2", "source": "c"},
                {"pred": torch.tensor([0.6, 0.4]), "label": torch.tensor([1.0, 0.0]), "patient": "p2", "source": "d"}]]
    engine = Engine(lambda e, batch: batch)  # the batch items are the outputs: they carry patient and source
    out = tmp_path / "acc.json"
    BootstrapAccuracySaver(str(out), n_draws=200, extra={"split": "validation"}).attach(engine)
    engine.run(outputs, max_epochs=1)
    result = json.loads(out.read_text())
    assert result["split"] == "validation" and result["n_images"] == 4 and result["n_patients"] == 2
    assert result["accuracy"] == 0.75
    assert abs(result["accuracy_mean"] - 0.75) < 0.05 and result["accuracy_std"] > 0
    # two patients, accuracies 0.5 and 1.0: a draw takes one of them twice or both
    assert result["accuracy_ci95"] == [0.5, 1.0]
    assert [(r["image"], r["patient"], r["correct"]) for r in result["per_image"]] == [
        ("a", "p1", True), ("b", "p1", False), ("c", "p2", True), ("d", "p2", True)]


def test_time_limit_cuts_the_running_epoch_so_its_end_handlers_still_run_then_stops():
    import time

    from echodiff.engines import stop_after

    engine = Engine(lambda e, b: time.sleep(0.01))
    ended_epochs, completed = [], []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: ended_epochs.append((e.state.epoch, e.state.iteration)))
    engine.add_event_handler(Events.COMPLETED, lambda e: completed.append(e.state.epoch))
    limit = stop_after(engine, 0.25 / 60)  # 0.25 s; an epoch of 10 iterations takes 0.1 s
    engine.run(range(10), max_epochs=100)
    assert limit.stopped_early and completed == [ended_epochs[-1][0]]  # the cut epoch ended, then the run did
    assert 2 <= len(ended_epochs) < 100
    assert stop_after(Engine(lambda e, b: None), None) is None


def test_time_limit_refuses_a_non_positive_budget():
    from echodiff.engines import TrainingTimeLimit

    with pytest.raises(ConfigValueError, match="time_limit_minutes=0"):
        TrainingTimeLimit(0)


def test_checked_checkpoint_loader_names_a_missing_garbage_or_misfit_file(tmp_path):
    trainer, net, _ = _trainer(max_epochs=1)
    missing = tmp_path / "model.pt"
    with pytest.raises(MissingFileError, match=f"model checkpoint {missing} does not exist; train one with"):
        CheckedCheckpointLoader(str(missing), {"model": net})(trainer)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CorruptFileError, match=f"{garbage} cannot be read as a torch checkpoint") as caught:
        CheckedCheckpointLoader(str(garbage), {"model": net})(trainer)
    assert "weights_only" not in str(caught.value)
    other = tmp_path / "other.pt"
    torch.save({"model": torch.nn.Linear(3, 2).state_dict()}, other)
    with pytest.raises(ShapeMismatchError, match=f"{other} does not fit the network of this config"):
        CheckedCheckpointLoader(str(other), {"model": net})(trainer)
    good = tmp_path / "good.pt"
    torch.save({"model": torch.nn.Linear(3, 1).state_dict()}, good)
    CheckedCheckpointLoader(str(good), {"model": net})(trainer)


def test_resuming_from_a_damaged_interval_checkpoint_names_it(tmp_path):
    assert _run_with_inputs(tmp_path, 1, {"data": "a"}) == [1]
    damaged = tmp_path / "checkpoint_epoch=1.pt"
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(CorruptFileError, match=rf"{damaged} cannot be read as a torch checkpoint .*expected a resume checkpoint"):
        _run_with_inputs(tmp_path, 2, {"data": "a"})


def _budgeted_run(minutes, resume_from_iteration: int = 0, max_epochs: int = 1000, epoch_length: int = 4,
                  warmup_steps: int = 4):
    """An `epoch_length`-iteration-per-epoch engine (10 ms per iteration) with a warm-up cosine schedule sized to
    max_epochs, stopped after `minutes`; returns (LR of the last iteration / peak LR, schedule, engine)."""
    import time

    from echodiff.engines import stop_after

    opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
    schedule = WarmupCosineSchedule(opt, warmup_steps=warmup_steps, t_total=max_epochs * epoch_length)
    engine = Engine(lambda e, b: time.sleep(0.01))
    lrs = []
    engine.add_event_handler(Events.ITERATION_STARTED, lambda e: lrs.append(opt.param_groups[0]["lr"]))
    LrScheduleHandler(schedule, epoch_level=False, print_lr=False).attach(engine)
    if resume_from_iteration:  # what a resume checkpoint restores: the trainer's and the schedule's progress
        engine.load_state_dict({"iteration": resume_from_iteration, "epoch_length": epoch_length,
                                "max_epochs": max_epochs})
        schedule.load_state_dict({**schedule.state_dict(), "last_epoch": resume_from_iteration})
    stop_after(engine, minutes, schedule)
    engine.run(range(epoch_length), max_epochs=max_epochs)
    return lrs[-1] / max(lrs), schedule, engine


def test_a_run_stopped_by_its_time_limit_ends_at_the_end_of_its_lr_schedule_not_near_its_peak():
    end_lr, schedule, engine = _budgeted_run(0.6 / 60)  # 0.6 s: about 15 of the 1000 epochs
    assert engine.state.epoch < 100 and end_lr < 0.1
    assert schedule.t_total < 400 and schedule.t_total >= engine.state.iteration - 1
    resumed_lr, resumed, engine = _budgeted_run(0.6 / 60, resume_from_iteration=40)  # a resumed run sizes its rest
    assert engine.state.iteration > 44 and resumed_lr < 0.1 and 40 < resumed.t_total < 440


def test_a_first_epoch_longer_than_the_budget_still_ends_at_the_end_of_its_lr_schedule():
    # 1000 iterations of 10 ms per epoch with a one-epoch warm-up (the view classifier's), 0.6 s budget: the run stops
    # inside its first epoch, as the study's synthetic-only view classifier did (a set five times the real one); the
    # warm-up keeps its sixth of the schedule instead of outlasting the run
    end_lr, schedule, engine = _budgeted_run(0.6 / 60, max_epochs=6, epoch_length=1000, warmup_steps=1000)
    assert engine.state.epoch == 1 and engine.state.iteration < 200
    assert end_lr < 0.1 and schedule.t_total < 200 and schedule.warmup_steps == round(schedule.t_total / 6)


def test_without_a_time_limit_the_schedule_keeps_its_max_epochs_size():
    end_lr, schedule, engine = _budgeted_run(None, max_epochs=3)
    assert engine.state.iteration == 12 and schedule.t_total == 12 and end_lr < 0.1


def test_budget_sizing_refuses_a_schedule_without_a_total_step_count():
    from echodiff.engines import stop_after

    opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
    with pytest.raises(ConfigValueError, match=r"^lr_scheduler StepLR has no total step count t_total"):
        stop_after(Engine(lambda e, b: None), 1, torch.optim.lr_scheduler.StepLR(opt, 10))
