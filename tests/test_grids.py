"""Tests for echodiff.generation.grids: PNG grids, label overlay, per-image writer and the ignite handlers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from echodiff.data.camus import read_camus_array
from echodiff.generation import (
    OVERLAY_COLOURS,
    GeneratedImageWriter,
    ReconstructionGridSaver,
    SampleGridSaver,
    build_autoencoder,
    image_grid,
    label_overlay,
    write_sample_grid,
)
from ignite.engine import Engine, Events
from PIL import Image
from test_generation_models import SIZE, build, fan_condition_map


def ramp_images(batch: int = 3, height: int = 8, width: int = 10) -> torch.Tensor:
    """(B, 1, H, W) images whose value at (b, y, x) is (b + y + x) / (B + H + W) in [0, 1)."""
    b, y, x = torch.meshgrid(torch.arange(batch), torch.arange(height), torch.arange(width), indexing="ij")
    return ((b + y + x).float() / (batch + height + width))[:, None]


def test_image_grid_puts_one_image_per_row_and_one_view_per_column():
    images = ramp_images()
    grid = image_grid([images, 1 - images])
    assert grid.shape == (3 * 8, 2 * 10, 3) and grid.dtype == np.uint8
    expected_left = np.round(images[1, 0].numpy() * 255).astype(np.uint8)
    np.testing.assert_array_equal(grid[8:16, :10, 0], expected_left)  # row 1, column 0, grey in every channel
    np.testing.assert_array_equal(grid[8:16, :10, 2], expected_left)
    np.testing.assert_array_equal(grid[16:24, 10:, 1], np.round((1 - images[2, 0].numpy()) * 255).astype(np.uint8))


def test_label_overlay_tints_structures_and_leaves_tissue_and_outside_grey():
    cond = torch.arange(5).repeat_interleave(2).reshape(1, 1, 1, 10).expand(1, 1, 4, 10)
    images = torch.full((1, 1, 4, 10), 0.5)
    overlay = label_overlay(cond, images, alpha=0.4)
    assert overlay.shape == (1, 3, 4, 10)
    for cls in (0, 2):
        torch.testing.assert_close(overlay[0, :, 0, 2 * cls], torch.full((3,), 0.5))
    for cls, colour in OVERLAY_COLOURS.items():
        torch.testing.assert_close(overlay[0, :, 0, 2 * cls], 0.6 * 0.5 + 0.4 * torch.tensor(colour))


def test_write_sample_grid_writes_an_rgb_png_of_two_columns(tmp_path):
    cond = fan_condition_map(3)
    path = write_sample_grid(tmp_path / "grid.png", cond, (cond > 0).float() * 0.5)
    with Image.open(path) as image:
        assert image.size == (2 * SIZE, 3 * SIZE) and image.mode == "RGB"
        pixels = np.asarray(image)
    np.testing.assert_array_equal(pixels[:SIZE, SIZE:][cond[0, 0].numpy() == 0], 0)  # generated column: 0 outside
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # written atomically: no temp file left


def _trainer(network: torch.nn.Module) -> Engine:
    """A bare ignite engine carrying `network` and `state.device`, as MONAI's SupervisedTrainer does."""
    engine = Engine(lambda engine, batch: None)
    engine.network = network
    engine.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "device", torch.device("cpu")))
    return engine


def test_sample_grid_saver_writes_a_grid_every_interval_epochs_with_a_fixed_seed(tmp_path):
    generator = build("edm")
    cond = fan_condition_map(3)
    dataset = [{"image": torch.zeros(1, SIZE, SIZE), "cond": c} for c in cond]
    trainer = _trainer(generator)
    SampleGridSaver(dataset, tmp_path, num_images=2, interval=2, steps=1).attach(trainer)
    trainer.run([0], max_epochs=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples_epoch=2.png", "samples_epoch=4.png"]
    with Image.open(tmp_path / "samples_epoch=2.png") as first, Image.open(tmp_path / "samples_epoch=4.png") as last:
        assert first.size == (2 * SIZE, 2 * SIZE)
        np.testing.assert_array_equal(np.asarray(first), np.asarray(last))  # same weights, same seed, same grid
    assert generator.training  # the handler restores the training mode


def test_the_last_epoch_gets_its_grid_when_the_interval_exceeds_max_epochs_or_does_not_divide_it(tmp_path):
    generator = build("edm")
    dataset = [{"image": torch.zeros(1, SIZE, SIZE), "cond": c} for c in fan_condition_map(1)]
    for max_epochs, expected in ((3, ["samples_epoch=3.png"]), (5, ["samples_epoch=4.png", "samples_epoch=5.png"])):
        out = tmp_path / str(max_epochs)
        trainer = _trainer(generator)
        SampleGridSaver(dataset, out, num_images=1, interval=4, steps=1).attach(trainer)
        trainer.run([0], max_epochs=max_epochs)
        assert sorted(p.name for p in out.iterdir()) == expected


def test_reconstruction_grid_saver_writes_image_and_reconstruction_columns(tmp_path):
    torch.manual_seed(0)
    cond = fan_condition_map(2)
    dataset = [{"image": (c > 0).float() * 0.6, "cond": c} for c in cond]
    trainer = _trainer(build_autoencoder("edm_l64"))
    ReconstructionGridSaver(dataset, tmp_path, num_images=4).attach(trainer)
    trainer.run([0], max_epochs=1)
    with Image.open(tmp_path / "reconstructions_epoch=1.png") as grid:
        assert grid.size == (2 * SIZE, 2 * SIZE)
        left = np.asarray(grid)[:SIZE, :SIZE, 0]
    np.testing.assert_array_equal(left, np.where(cond[0, 0].numpy() > 0, 153, 0))  # round(0.6 * 255)


def test_generated_image_writer_writes_png_nifti_per_item_and_a_grid(tmp_path):
    cond = fan_condition_map(3)
    preds = [(c > 0).float() * (0.2 + 0.3 * i) for i, c in enumerate(cond)]
    batches = [
        ([{"image": cond[i], "patient": f"patient{i + 1:04d}", "view": "2CH", "phase": "ED"} for i in (0, 1)],
         [{"pred": preds[i]} for i in (0, 1)]),
        ([{"image": cond[2], "patient": "patient0003", "view": "4CH", "phase": "ES"}], [{"pred": preds[2]}]),
    ]  # fmt: skip

    def step(engine: Engine, batch: tuple) -> list:
        engine.state.batch = batch[0]
        return batch[1]

    evaluator = Engine(step)
    GeneratedImageWriter(tmp_path, grid_images=2).attach(evaluator)
    evaluator.run(batches, max_epochs=1)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["grid.png", "patient0001_2CH_ED.nii.gz", "patient0001_2CH_ED.png", "patient0002_2CH_ED.nii.gz",
                     "patient0002_2CH_ED.png", "patient0003_4CH_ES.nii.gz", "patient0003_4CH_ES.png"]  # fmt: skip
    expected = np.round(preds[2][0].numpy() * 255).astype(np.uint8)
    array, _ = read_camus_array(tmp_path / "patient0003_4CH_ES.nii.gz")
    np.testing.assert_array_equal(array, expected)  # NIfTI reads back in display orientation
    with Image.open(tmp_path / "patient0003_4CH_ES.png") as png, Image.open(tmp_path / "grid.png") as grid:
        np.testing.assert_array_equal(np.asarray(png), expected)
        assert grid.size == (2 * SIZE, 2 * SIZE)


def test_generated_image_writer_names_need_the_format_keys(tmp_path):
    item = {"image": torch.zeros(1, 4, 4), "patient": "patient0001", "view": "2CH"}
    evaluator = Engine(lambda engine, batch: [{"pred": torch.zeros(1, 4, 4)}])
    evaluator.add_event_handler(Events.ITERATION_STARTED, lambda e: setattr(e.state, "batch", [item]))
    GeneratedImageWriter(tmp_path).attach(evaluator)
    with pytest.raises(KeyError, match="phase"):
        evaluator.run([0], max_epochs=1)
