"""Label fidelity: a real-trained segmenter's Dice on generated images against the labels of their condition maps."""

from __future__ import annotations

import json

import pytest
import torch
from echodiff.errors import ConfigValueError
from echodiff.generation.fidelity import DICE_KEYS, LabelFidelityLogger, label_fidelity, view_fidelity
from echodiff.data.conditioning import camus_labels_of_condition
from ignite.engine import Engine, Events
from test_generation_models import fan_condition_map


class Oracle(torch.nn.Module):
    """A 'segmenter' that returns fixed class scores (the labels it was given, one-hot) whatever the image."""

    def __init__(self, labels: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scores", torch.nn.functional.one_hot(labels[:, 0], 4).permute(0, 3, 1, 2).float())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.scores[: len(images)]


def test_fidelity_is_100_when_the_segmenter_recovers_the_map_and_low_when_it_misses_a_structure():
    cond = fan_condition_map(batch=2)
    labels = torch.as_tensor(camus_labels_of_condition(cond.numpy())).long()
    images = torch.rand(cond.shape)
    perfect = label_fidelity(Oracle(labels), images, cond)
    assert set(perfect) == set(DICE_KEYS) and all(v == pytest.approx(100) for v in perfect.values())
    no_atrium = label_fidelity(Oracle(torch.where(labels == 3, 0, labels)), images, cond)
    assert no_atrium["dice_la"] == pytest.approx(0) and no_atrium["dice_lv_endo"] == pytest.approx(100)
    assert no_atrium["dice_mean"] == pytest.approx(200 / 3)


class Painter(torch.nn.Module):
    """A 'generator' whose sample paints the condition map; counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.calls, self.views = 0, None

    def sample(self, cond, sampler=None, steps=None, churn=None, generator=None, views=None):
        self.calls, self.views = self.calls + 1, views
        return cond.float() / 4, 3


def test_fidelity_logger_writes_json_rows_per_interval_and_at_the_end_without_repeating_an_epoch(tmp_path):
    cond = fan_condition_map(batch=3)
    labels = torch.as_tensor(camus_labels_of_condition(cond.numpy())).long()
    dataset = [{"cond": c, "image": c.float(), "view": view} for c, view in zip(cond, ("2CH", "4CH", "2CH"))]
    painter = Painter()
    logger = LabelFidelityLogger(dataset, Oracle(labels), tmp_path / "fidelity.json", tmp_path / "tb", num_images=3,
                                 interval=2, network=painter)  # fmt: skip
    engine = Engine(lambda e, b: None)
    engine.state.device = torch.device("cpu")
    engine.network = painter
    logger.attach(engine)
    engine.run(range(2), max_epochs=4)  # epochs 2 and 4, and COMPLETED at epoch 4 (not repeated)
    rows = json.loads((tmp_path / "fidelity.json").read_text())
    assert [r["epoch"] for r in rows] == [2, 4] and painter.calls == 2 and painter.views == ["2CH", "4CH", "2CH"]
    assert rows[-1]["dice_mean"] == pytest.approx(100) and rows[-1]["nfe"] == 3 and rows[-1]["n_images"] == 3
    assert any((tmp_path / "tb").iterdir())
    disabled = Engine(lambda e, b: None)
    LabelFidelityLogger(dataset, None, tmp_path / "none.json").attach(disabled)
    assert not disabled.has_event_handler(logger, Events.EPOCH_COMPLETED)
    disabled.run(range(1), max_epochs=1)
    assert not (tmp_path / "none.json").exists()


class BrightnessViewClassifier(torch.nn.Module):
    """A 'view classifier' of 16 x 16 inputs: 4CH when the image is bright, 2CH when dark."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.shape[-2:] == (16, 16)
        bright = images.mean(dim=(1, 2, 3)) > 0.5
        return torch.stack([~bright, bright], dim=1).float()


def test_view_fidelity_is_the_classifiers_accuracy_against_the_views_asked_for_per_view_and_overall():
    images = torch.stack([torch.full((1, 32, 32), level) for level in (0.1, 0.9, 0.1, 0.9)])
    scores = view_fidelity(BrightnessViewClassifier(), images, ["2CH", "4CH", "4CH", "4CH"], [16, 16])
    assert scores == {"accuracy": 0.75, "accuracy_2CH": 1.0, "accuracy_4CH": pytest.approx(2 / 3), "n_images": 4}
    with pytest.raises(ConfigValueError, match=r"^views '5CH' is not a view"):
        view_fidelity(BrightnessViewClassifier(), images, ["2CH", "5CH", "4CH", "4CH"], [16, 16])
