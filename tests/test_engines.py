"""Resumable training and the bootstrap-accuracy evaluator handler."""

from __future__ import annotations

import json

import torch
from echodiff.engines import BootstrapAccuracySaver, latest_checkpoint, resume_handlers
from ignite.engine import Engine, Events
from monai.engines import SupervisedTrainer
from monai.handlers import CheckpointSaver


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
    assert len(handlers) == 1
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


def test_bootstrap_accuracy_saver_writes_json(tmp_path):
    outputs = [[{"pred": torch.tensor([0.9, 0.1]), "label": torch.tensor([1.0, 0.0])},
                {"pred": torch.tensor([0.2, 0.8]), "label": torch.tensor([1.0, 0.0])}],
               [{"pred": torch.tensor([0.3, 0.7]), "label": torch.tensor([0.0, 1.0])},
                {"pred": torch.tensor([0.6, 0.4]), "label": torch.tensor([1.0, 0.0])}]]
    engine = Engine(lambda e, batch: batch)
    out = tmp_path / "acc.json"
    BootstrapAccuracySaver(str(out), n_draws=200, extra={"split": "validation"}).attach(engine)
    engine.run(outputs, max_epochs=1)
    result = json.loads(out.read_text())
    assert result["split"] == "validation" and result["n_images"] == 4
    assert result["accuracy"] == 0.75
    assert abs(result["accuracy_mean"] - 0.75) < 0.05 and result["accuracy_std"] > 0
