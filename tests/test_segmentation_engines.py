"""Segmentation engines: mask-diffusion training batches (also conditioned on a pre-segmentation), CAMUS scores and key
metric, uncertainty-vs-error statistics, the report handler (JSON + markdown) and the NIfTI/PNG writer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from echodiff.data.camus import read_camus_array, write_camus_nifti
from echodiff.data.masks import logits_to_x0
from echodiff.engines import (
    CamusMeanDice,
    CamusScoresd,
    MaskDiffusionPrepareBatch,
    MeanImageScore,
    SegmentationReportSaver,
    SegmentationSaver,
    camus_scores,
    uncertainty_error_stats,
)
from echodiff.networks import PresegmentationResidualUNet
from echodiff.schedulers import get_noise_scheduler
from ignite.engine import Engine
from monai.engines import SupervisedTrainer
from monai.inferers import DiffusionInferer
from monai.networks.nets import DiffusionModelUNet, DynUNet
from monai.networks.schedulers import DDPMScheduler
from PIL import Image


def _label(size: int = 16) -> torch.Tensor:
    label = torch.zeros(1, size, size, dtype=torch.long)
    label[:, 2:10, 4:12] = 2
    label[:, 3:9, 5:11] = 1
    label[:, 11:15, 5:11] = 3
    return label


@pytest.mark.parametrize("kind", ["gaussian", "gamma"])
def test_mask_diffusion_batch_is_one_hot_x0_noise_target_and_image_condition(kind):
    scheduler = get_noise_scheduler(kind, "ddpm", num_train_timesteps=100, schedule="cosine")
    batch = {"image": torch.rand(8, 1, 16, 16), "label": _label().repeat(8, 1, 1, 1)}
    x0, target, args, kwargs = MaskDiffusionPrepareBatch(scheduler, num_classes=4)(batch, torch.device("cpu"))
    assert x0.shape == (8, 4, 16, 16) and set(x0.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(x0.argmax(dim=1, keepdim=True), batch["label"])
    assert target is kwargs["noise"] and args == ()
    assert kwargs["mode"] == "concat" and torch.equal(kwargs["condition"], batch["image"])
    assert kwargs["timesteps"].shape == (8,) and 0 <= kwargs["timesteps"].min() and kwargs["timesteps"].max() < 100
    assert abs(target.mean().item()) < 0.1 and target.std().item() == pytest.approx(1.0, abs=0.1)


def test_mask_diffusion_training_step_runs_with_monai_trainer_and_concat_inferer():
    scheduler = DDPMScheduler(num_train_timesteps=10, schedule="cosine")
    network = DiffusionModelUNet(spatial_dims=2, in_channels=5, out_channels=4, channels=(8, 16),
                                 attention_levels=(False, False), num_res_blocks=1, norm_num_groups=8)
    data = [{"image": torch.rand(2, 1, 16, 16), "label": _label().repeat(2, 1, 1, 1)} for _ in range(2)]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=1, train_data_loader=data, network=network,
        optimizer=torch.optim.Adam(network.parameters(), 1e-3), loss_function=torch.nn.MSELoss(),
        inferer=DiffusionInferer(scheduler), prepare_batch=MaskDiffusionPrepareBatch(scheduler, num_classes=4),
    )
    trainer.run()
    assert math.isfinite(trainer.state.output[0]["loss"])
    assert trainer.state.output[0]["pred"].shape == (4, 16, 16)  # eps prediction of one decollated item


def _segmenter() -> DynUNet:
    torch.manual_seed(0)
    return DynUNet(2, 1, 4, kernel_size=[3, 3, 3], strides=[1, 2, 2], upsample_kernel_size=[2, 2], filters=[4, 8, 8])


def test_mask_diffusion_batch_with_presegmentation_conditions_on_its_soft_x0_and_targets_x0():
    scheduler = get_noise_scheduler("gaussian", "ddpm", num_train_timesteps=100, schedule="cosine",
                                    prediction_type="sample")
    segmenter = _segmenter()
    batch = {"image": torch.rand(8, 1, 16, 16), "label": _label().repeat(8, 1, 1, 1)}
    x0, target, _, kwargs = MaskDiffusionPrepareBatch(scheduler, 4, presegmentation=segmenter)(batch, "cpu")
    assert torch.equal(target, x0)  # a "sample" scheduler learns x_0, not eps
    condition = kwargs["condition"]
    assert condition.shape == (8, 5, 16, 16) and torch.equal(condition[:, :1], batch["image"])
    with torch.no_grad():
        assert torch.allclose(condition[:, 1:], logits_to_x0(segmenter(batch["image"])))
    assert not segmenter.training and not any(p.requires_grad for p in segmenter.parameters())


def test_refining_denoiser_trains_with_monai_trainer_and_leaves_the_presegmentation_frozen():
    scheduler = DDPMScheduler(num_train_timesteps=10, schedule="cosine", prediction_type="sample")
    segmenter = _segmenter()
    frozen = {k: v.clone() for k, v in segmenter.state_dict().items()}
    network = PresegmentationResidualUNet(spatial_dims=2, in_channels=9, out_channels=4, channels=(8, 16),
                                          attention_levels=(False, False), num_res_blocks=1, norm_num_groups=8)
    data = [{"image": torch.rand(2, 1, 16, 16), "label": _label().repeat(2, 1, 1, 1)} for _ in range(2)]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=1, train_data_loader=data, network=network,
        optimizer=torch.optim.Adam(network.parameters(), 1e-3), loss_function=torch.nn.MSELoss(),
        inferer=DiffusionInferer(scheduler),
        prepare_batch=MaskDiffusionPrepareBatch(scheduler, num_classes=4, presegmentation=segmenter),
    )
    trainer.run()
    assert math.isfinite(trainer.state.output[0]["loss"])
    assert network.out[-1].conv.weight.abs().max() > 0  # the zero-initialised correction has started to learn
    assert all(torch.equal(frozen[k], v) for k, v in segmenter.state_dict().items())


def test_camus_scores_perfect_and_resized_predictions():
    label = _label()
    perfect = camus_scores(label, label)
    assert perfect == {"dice_lv_endo": 100.0, "dice_lv_epi": 100.0, "dice_la": 100.0, "dice_mean": 100.0,
                       "hd_lv_endo": 0.0}
    upsampled_label = torch.nn.functional.interpolate(label[None].float(), size=(32, 32), mode="nearest")[0].long()
    scores_map = torch.nn.functional.one_hot(label[0], 4).permute(2, 0, 1).float()  # class scores at 16 px
    assert camus_scores(scores_map, upsampled_label)["dice_mean"] == 100.0
    empty = camus_scores(torch.zeros_like(label), label)
    assert empty["dice_mean"] == 0.0 and math.isnan(empty["hd_lv_endo"])


def test_uncertainty_error_stats_rank_wrong_pixels():
    label = _label()
    pred = label.clone()
    pred[:, 3:9, 5:8] = 0  # part of the cavity missed
    wrong = (pred != label).float()
    perfect = uncertainty_error_stats(wrong, pred, label)
    assert perfect["uncertainty_auroc"] == 1.0 and perfect["uncertainty_error_r"] == pytest.approx(1.0)
    assert perfect["uncertainty_wrong"] == 1.0 and perfect["uncertainty_right"] == 0.0
    assert uncertainty_error_stats(1 - wrong, pred, label)["uncertainty_auroc"] == 0.0
    flat = uncertainty_error_stats(torch.zeros_like(wrong), pred, label)
    assert flat["uncertainty_auroc"] == 0.5 and math.isnan(flat["uncertainty_error_r"])
    no_error = uncertainty_error_stats(torch.rand(1, 16, 16), label, label)
    assert math.isnan(no_error["uncertainty_auroc"]) and math.isnan(no_error["uncertainty_wrong"])


def test_camus_mean_dice_metric_averages_images():
    metric = CamusMeanDice()
    metric.reset()
    metric.update(([_label(), torch.zeros(1, 16, 16)], [_label(), _label()]))
    assert metric.compute() == pytest.approx(50.0)


def test_camus_scoresd_scores_an_image_once_for_the_mean_score_metric():
    scored = [CamusScoresd()({"pred": pred, "label": _label()}) for pred in (_label(), torch.zeros(1, 16, 16))]
    assert scored[0]["scores"] == camus_scores(_label(), _label())
    metric = MeanImageScore()
    metric.reset()
    metric.update(scored)
    assert metric.compute() == pytest.approx(50.0)


def _engine_with(outputs: list[dict], batch: list[dict]) -> Engine:
    engine = Engine(lambda engine, data: None)
    engine.state.output, engine.state.batch = outputs, batch
    return engine


def test_report_saver_writes_json_and_markdown(tmp_path):
    label = _label()
    saver = SegmentationReportSaver(str(tmp_path / "report.json"), extra={"split": "validation"})
    outputs = [{"pred": label, "label": label, "uncertainty": torch.zeros(1, 16, 16)},
               {"pred": torch.zeros_like(label), "label": label, "uncertainty": torch.ones(1, 16, 16)}]
    engine = _engine_with([CamusScoresd()(item) for item in outputs], [{"source": "a.nii.gz", "patient": "p1"},
                                                                        {"source": "b.nii.gz", "patient": "p2"}])
    saver._reset(engine)
    saver._collect(engine)
    saver._report(engine)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["split"] == "validation" and report["n_images"] == 2
    assert report["metrics"]["dice_mean"]["mean"] == pytest.approx(50.0)
    assert report["metrics"]["hd_lv_endo"] == {"mean": 0.0, "std": 0.0, "n": 1, "n_nan": 1, "ci95": [0.0, 0.0]}
    assert report["metrics"]["dice_mean"]["ci95"] == [0.0, 100.0] and report["n_patients"] == 2
    assert [row["patient"] for row in report["per_image"]] == ["p1", "p2"]
    assert report["per_image"][1]["hd_lv_endo"] is None  # strict JSON: nan written as null
    assert "| dice_mean | 50.00 | 50.00 | 2 |" in (tmp_path / "report.md").read_text()


def test_segmentation_saver_writes_nifti_at_source_size_and_overlay(tmp_path):
    image = np.tile(np.arange(32, dtype=np.uint8) * 8, (24, 1))  # (H, W) = (24, 32), non-square on purpose
    source = write_camus_nifti(tmp_path / "patient0001_2CH_ED.nii.gz", image, spacing=(0.5, 0.25))
    pred = torch.zeros(4, 12, 16)
    pred[1, :6] = 1.0  # top half LV cavity at the network size
    pred[0, 6:] = 1.0
    engine = _engine_with([{"pred": pred, "uncertainty": torch.linspace(0, 1, 16).expand(1, 12, 16)}],
                          [{"source": str(source)}])
    SegmentationSaver(str(tmp_path / "out"))._save(engine)
    labels, spacing = read_camus_array(tmp_path / "out" / "patient0001_2CH_ED_pred.nii.gz")
    assert labels.shape == (24, 32) and spacing == pytest.approx((0.5, 0.25))
    assert (labels[:12] == 1).all() and (labels[12:] == 0).all()
    uncertainty, _ = read_camus_array(tmp_path / "out" / "patient0001_2CH_ED_uncertainty.nii.gz")
    assert uncertainty.shape == (24, 32) and uncertainty[:, -1].min() > uncertainty[:, 0].max()
    overlay = Image.open(tmp_path / "out" / "patient0001_2CH_ED_overlay.png")
    assert overlay.size == (64, 24)  # image with labels, uncertainty beside it


def test_evaluation_scores_each_image_once_on_the_label_maps_own_grid(tmp_path, phantom_camus, monkeypatch):
    """evaluate.json over the phantom's testing split (8 label maps of 64 px): one `camus_scores` call per image (the
    key metric and the report share them) and distances on the 64 px grid by default."""
    import echodiff.engines.segmentation_report as report_module
    from echodiff.bundle import find_bundle_root
    from monai.bundle import ConfigParser
    from monai.bundle import run as bundle_run

    root = find_bundle_root("echo_pddpm_segmentation")
    configs = [f"{root}/configs/inference.json", f"{root}/configs/evaluate.json"]
    overrides = {"dataset_dir": str(phantom_camus), "image_size": [32, 32], "filters": [8, 16, 32], "num_workers": 0,
                 "output_dir": str(tmp_path / "eval"), "ckpt_path": str(tmp_path / "model.pt")}  # fmt: skip
    parser = ConfigParser()
    parser.read_config(configs)
    parser.update({"bundle_root": root, **overrides})
    torch.save(parser.get_parsed_content("network_def").state_dict(), tmp_path / "model.pt")
    calls = []
    scores = report_module.camus_scores
    monkeypatch.setattr(report_module, "camus_scores", lambda *args: calls.append(1) or scores(*args))
    bundle_run("evaluating", config_file=configs, bundle_root=root, **overrides)
    report = json.loads((tmp_path / "eval" / "segmentation_report.json").read_text())
    assert report["n_images"] == len(calls) == 8 and report["metric_size"] == [64, 64]
