"""echodiff.distillation and the DFKD pieces: loss formulas, teacher targets (compact, resumable, refused when made
from other inputs), clips, video LV function, export, and the bad inputs of the distillation bundle."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from echodiff.bundle import load_weights
from echodiff.engines import TeacherTargetsPrepareBatch
from echodiff.data.echonet import list_echonet, list_echonet_videos, load_echonet_item, read_video
from echodiff.data.label_motion import cardiac_phase, label_cycle
from echodiff.data.camus import list_camus, read_camus_array, write_camus_nifti
from echodiff.distillation import (
    DistillationClips,
    checked_teacher,
    evaluate_echonet,
    list_sources,
    list_video_files,
    load_frames,
    lv_function,
    predict_lv,
    produce_targets,
    resize_frames,
)
from echodiff.distillation.evaluation import evaluate_camus_lv
from echodiff.generation import build_generator
from echodiff.generation.clips import (
    clip_condition_maps,
    echonet_timing,
    generate_frames,
    given_timing,
    synthesize_clips,
    temporal_change,
)
from echodiff.generation.synthesis import generator_fn
from echodiff.errors import (
    ConfigValueError,
    CorruptFileError,
    EmptySplitError,
    LabelValueError,
    MissingFileError,
    ShapeMismatchError,
)
from echodiff.losses import SoftMaskDistillationLoss, student_channels
from echodiff.networks import ConvLSTMSegmenter, FrameWise
from monai.bundle import ConfigParser
from monai.bundle import run as bundle_run
from monai.networks.nets import DynUNet
from monai.transforms import Affined, Compose

REPO = Path(__file__).resolve().parents[1]
SIZE = [32, 32]


def tiny_teacher(classes: int = 4) -> torch.nn.Module:
    return DynUNet(2, 1, classes, kernel_size=[3, 3, 3], strides=[1, 2, 2], upsample_kernel_size=[2, 2],
                   filters=[8, 16, 32], norm_name="instance")  # fmt: skip


@pytest.fixture(scope="module")
def teacher(dfkd_teacher: Path) -> torch.nn.Module:
    return load_weights(tiny_teacher(), dfkd_teacher)


# --- loss -----------------------------------------------------------------------------------------------------------


def test_lv_loss_is_bce_with_logits_to_the_teacher_lv_channel():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 1, 3, 4, 4), torch.softmax(torch.randn(2, 4, 3, 4, 4), dim=1)
    loss = SoftMaskDistillationLoss("lv", lv_channel=1)(logits, target)
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(logits, target[:, 1:2]))


def test_multiclass_loss_is_tau_squared_cross_entropy_of_tempered_distributions():
    torch.manual_seed(0)
    logits, teacher_logits = torch.randn(2, 4, 1, 5, 5), torch.randn(2, 4, 1, 5, 5)
    target, tau = torch.softmax(teacher_logits, dim=1), 2.0
    loss = SoftMaskDistillationLoss("multiclass", temperature=tau)(logits, target)
    q = torch.softmax(teacher_logits / tau, dim=1)  # softmax(log p / tau) = softmax(z / tau)
    expected = tau**2 * -(q * torch.log_softmax(logits / tau, dim=1)).sum(1).mean()
    assert torch.allclose(loss, expected, atol=1e-6)


def test_multiclass_loss_is_smallest_when_the_student_copies_the_teacher():
    torch.manual_seed(1)
    teacher_logits = torch.randn(1, 4, 1, 6, 6)
    loss = SoftMaskDistillationLoss("multiclass", temperature=3.0)
    best = loss(teacher_logits, torch.softmax(teacher_logits, 1))
    for _ in range(5):
        assert loss(teacher_logits + 0.3 * torch.randn_like(teacher_logits), torch.softmax(teacher_logits, 1)) > best


def test_student_and_teacher_class_counts_that_disagree_are_refused(teacher):
    with pytest.raises(ShapeMismatchError, match="mode 'lv' with a 4-class teacher expects a student with out_channels=1"):
        SoftMaskDistillationLoss("lv")(torch.zeros(1, 4, 1, 4, 4), torch.zeros(1, 4, 1, 4, 4))
    with pytest.raises(ShapeMismatchError, match="outputs 4 classes but num_classes=3"):
        checked_teacher(teacher, 3, SIZE)
    assert student_channels("multiclass", 4) == 4 and student_channels("lv", 4) == 1


# --- targets and clips ----------------------------------------------------------------------------------------------


def test_targets_are_uint8_probabilities_and_a_rerun_writes_nothing(teacher, dfkd_teacher, phantom_echonet, tmp_path):
    sources = list_sources(phantom_echonet, "training")
    first = produce_targets(teacher, dfkd_teacher, sources, tmp_path, SIZE, progress=False)
    target = np.load(tmp_path / f"{sources[0]['name']}.npy")
    assert target.dtype == np.uint8 and target.shape == (24, 4, 32, 32)
    assert np.abs(target.astype(int).sum(axis=1) - 255).max() <= 2  # probabilities x 255 sum to 255 up to rounding
    again = produce_targets(teacher, dfkd_teacher, sources, tmp_path, SIZE, progress=False)
    assert first["written"] == len(sources) and again["written"] == 0


def test_targets_of_another_teacher_or_size_are_refused(teacher, dfkd_teacher, phantom_echonet, tmp_path):
    sources = list_sources(phantom_echonet, "training")
    produce_targets(teacher, dfkd_teacher, sources, tmp_path, SIZE, progress=False)
    other = tmp_path.parent / "other_teacher.pt"
    torch.save(tiny_teacher().state_dict(), other)
    with pytest.raises(ConfigValueError, match="holds targets made with other inputs \\(teacher differ\\)"):
        produce_targets(load_weights(tiny_teacher(), other), other, sources, tmp_path, SIZE, progress=False)
    with pytest.raises(ConfigValueError, match="image_size differ"):
        produce_targets(teacher, dfkd_teacher, sources, tmp_path, [16, 16], progress=False)


def test_a_clip_folder_trains_on_its_train_clips_and_selects_on_its_val_clips_only(phantom_echonet):
    """Model selection of a data-free student reads its own (synthetic) VAL clips and the teacher's targets only."""
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / "echo_dfkd_segmentation" / "configs" / "train.json"))
    parser.update({"dataset_dir": str(phantom_echonet), "clip_length": 8})
    split_of = {item["filename"]: item["split"] for item in list_echonet_videos(phantom_echonet)}
    assert {split_of[s["name"]] for s in parser.get_parsed_content("train#sources")} == {"TRAIN"}
    assert {split_of[s["name"]] for s in parser.get_parsed_content("validate#sources")} == {"VAL"}
    assert parser.get_parsed_content("validate#dataset#clip_length") == 8  # the training window, first one of each
    assert list(parser.get("validate#key_metric")) == ["val_distillation_loss"]  # the loss to the teacher's targets


def test_clips_are_windows_of_frames_with_their_targets(teacher, dfkd_teacher, phantom_echonet, tmp_path):
    sources = list_sources(phantom_echonet, "training")
    produce_targets(teacher, dfkd_teacher, sources, tmp_path, SIZE, progress=False)
    item = DistillationClips(sources, tmp_path, SIZE, clip_length=8, random_window=False)[0]
    assert item["image"].shape == (1, 8, 32, 32) and item["label"].shape == (4, 8, 32, 32)
    assert torch.allclose(item["label"].sum(0), torch.ones(8, 32, 32), atol=0.01)
    with pytest.raises(ShapeMismatchError, match="has 24 frame\\(s\\), fewer than the student's window clip_length=25"):
        DistillationClips(sources, tmp_path, SIZE, clip_length=25)[0]


def test_augmentation_moves_frames_and_targets_together_and_keeps_distributions(teacher, dfkd_teacher, phantom_echonet,
                                                                               tmp_path):  # fmt: skip
    sources = list_sources(phantom_echonet, "training")
    produce_targets(teacher, dfkd_teacher, sources, tmp_path, SIZE, progress=False)
    shift = Compose([Affined(["image", "label"], translate_params=(3.0, -2.0), mode="bilinear",
                             padding_mode=["zeros", "border"])])  # fmt: skip
    plain = DistillationClips(sources, tmp_path, SIZE, clip_length=4, random_window=False)[0]
    moved = DistillationClips(sources, tmp_path, SIZE, clip_length=4, random_window=False, augmentation=shift)[0]
    assert not torch.allclose(plain["image"], moved["image"])
    assert torch.allclose(moved["label"].sum(0), torch.ones(4, 32, 32), atol=0.02)
    # a shift by whole pixels moves image and targets alike: find it from the image, check it on the targets
    offsets = [(dy, dx) for dy in range(-6, 7) for dx in range(-6, 7)]
    errors = [(plain["image"].roll((dy, dx), (-2, -1)) - moved["image"])[..., 8:-8, 8:-8].abs().mean() for dy, dx in offsets]
    dy, dx = offsets[int(torch.stack(errors).argmin())]
    assert abs(dy) + abs(dx) == 5 and float(torch.stack(errors).min()) < 1e-4
    assert torch.allclose(plain["label"].roll((dy, dx), (-2, -1))[..., 8:-8, 8:-8], moved["label"][..., 8:-8, 8:-8],
                          atol=0.05)  # fmt: skip


def test_online_targets_are_the_teachers_softmax_on_the_augmented_clip(teacher, dfkd_teacher, phantom_echonet,
                                                                      tmp_path):  # fmt: skip
    sources = list_sources(phantom_echonet, "training")
    produce_targets(teacher, dfkd_teacher, sources, tmp_path, SIZE, progress=False)
    item = DistillationClips(sources, tmp_path, SIZE, clip_length=4, random_window=False)[0]
    darker = {"image": item["image"][None] ** 2.0, "label": item["label"][None]}  # a contrast change: same geometry
    image, online = TeacherTargetsPrepareBatch(teacher)(darker, "cpu")
    assert image.shape == (1, 1, 4, 32, 32) and online.shape == (1, 4, 4, 32, 32)
    with torch.no_grad():
        expected = torch.stack([torch.softmax(teacher(image[:, :, t]), 1) for t in range(4)], dim=2)
    assert torch.allclose(online, expected, atol=1e-6)
    # the stored targets (teacher on the original frames) are not what the teacher says about the changed frames
    assert (online - darker["label"]).abs().max() > 0.05


def test_a_one_channel_teacher_gives_its_sigmoid_stored_and_online_not_an_all_ones_softmax(phantom_echonet,
                                                                                           tmp_path):  # fmt: skip
    torch.manual_seed(0)
    teacher = tiny_teacher(classes=1).eval()  # an LV-only sigmoid segmenter (EchoNet-Dynamic's DeepLabV3 kind)
    torch.save(teacher.state_dict(), tmp_path / "teacher.pt")
    source = list_sources(phantom_echonet, "training")[0]
    produce_targets(teacher, tmp_path / "teacher.pt", [source], tmp_path / "targets", SIZE, progress=False)
    frames = load_frames(source, SIZE)
    with torch.no_grad():
        sigmoid = torch.sigmoid(teacher(frames[:, None]))
    stored = torch.from_numpy(np.load(tmp_path / "targets" / f"{source['name']}.npy")).float() / 255
    assert stored.shape == (len(frames), 1, *SIZE) and stored.min() < 0.9
    assert torch.allclose(stored, sigmoid, atol=0.5 / 255 + 1e-6)
    _, online = TeacherTargetsPrepareBatch(teacher)({"image": frames[None, None, :4]}, "cpu")
    assert torch.allclose(online[0, :, :4].transpose(0, 1), sigmoid[:4], atol=1e-6)
    with pytest.raises(ConfigValueError, match="mode 'multiclass' with a 1-channel teacher; expected mode 'lv'"):
        student_channels("multiclass", 1, 0)


def test_missing_targets_name_the_file_and_the_command(phantom_echonet, tmp_path):
    sources = list_sources(phantom_echonet, "training")
    with pytest.raises(CorruptFileError, match="run the 'targets' workflow"):
        DistillationClips(sources, tmp_path, SIZE, clip_length=8)[0]


# --- video LV function ----------------------------------------------------------------------------------------------


def disk_probs(radii: np.ndarray, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - size / 2
    return np.stack([(np.hypot(yy, xx) < r).astype(np.float32) for r in radii])


def test_lv_function_finds_ed_and_es_of_a_known_cycle_and_the_area_ef():
    t = np.arange(40)
    radii = 14 + 8 * np.cos(2 * np.pi * (t - 5) / 30)  # ED (largest) at 5 and 35, ES at 20
    lv = lv_function(disk_probs(radii), ed_reference=6, es_reference=19)
    assert (lv["ed_frame"], lv["es_frame"]) == (5, 20)
    area = np.asarray(lv["area"])
    assert lv["ef_proxy"] == pytest.approx(100 * (area[5] - area[20]) / area[5])
    assert lv_function(disk_probs(radii))["es_frame"] == 20


def test_windows_start_from_a_zero_state_and_cover_every_frame():
    torch.manual_seed(0)
    student = ConvLSTMSegmenter(2, 1).eval()
    frames = torch.rand(10, 16, 16)
    probs = predict_lv(student, frames, clip_length=4)
    with torch.no_grad():
        first = torch.sigmoid(student(frames[None, None, :4]))[0, 0]
        last = torch.sigmoid(student(frames[None, None, 6:]))[0, 0]  # the last window is aligned to the end
    assert probs.shape == (10, 16, 16)
    assert torch.allclose(probs[:4], first, atol=1e-5) and torch.allclose(probs[8:], last[2:], atol=1e-5)
    with pytest.raises(ShapeMismatchError, match="shorter than the student's window clip_length=12"):
        predict_lv(student, frames, clip_length=12)


def test_inference_workflow_writes_what_predict_lv_finds_in_each_video(phantom_echonet, tmp_path):
    """The bundle's infer workflow (a MONAI evaluator over the videos) and the evaluation's `predict_lv` agree."""
    torch.manual_seed(0)
    student = ConvLSTMSegmenter(2, 1).eval()
    torch.save(student.state_dict(), tmp_path / "model.pt")
    bundle_run("run", config_file=str(REPO / "bundles" / "echo_dfkd_segmentation" / "configs" / "inference.json"),
               dataset_dir=str(phantom_echonet), ckpt_path=str(tmp_path / "model.pt"), output_dir=str(tmp_path / "out"),
               image_size=SIZE, clip_length=8, k_blocks=2, n_layers=1, progress_bar=False)  # fmt: skip
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [row["video"] for row in summary["videos"]] == [item["filename"] for item in list_video_files(phantom_echonet)]
    for item in list_video_files(phantom_echonet):
        video = read_video(item["video"])
        expected = predict_lv(student, resize_frames(video / 255.0, SIZE), 8, video.shape[1:]).numpy()
        written = np.load(tmp_path / "out" / f"{item['filename']}_lv_probs.npz")["probs"]
        assert written.shape == video.shape and np.abs(written - expected * 255).max() <= 0.5 + 1e-3
        lv = json.loads((tmp_path / "out" / f"{item['filename']}_lv.json").read_text())
        assert lv["ed_frame"] == lv_function(expected)["ed_frame"] and lv["frames"] == len(video)


def test_convlstm_export_gives_the_same_output(tmp_path):
    torch.manual_seed(0)
    student = ConvLSTMSegmenter(2, 2).eval()
    ckpt = tmp_path / "model.pt"
    torch.save(student.state_dict(), ckpt)
    bundle = REPO / "bundles" / "echo_dfkd_segmentation"
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", str(tmp_path / "model.ts"),
         "--ckpt_file", str(ckpt), "--meta_file", str(bundle / "configs" / "metadata.json"),
         "--config_file", str(bundle / "configs" / "inference.json"), "--k_blocks", "2", "--n_layers", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    exported = torch.jit.load(tmp_path / "model.ts")
    x = torch.rand(1, 1, 5, 32, 32)
    with torch.no_grad():
        assert torch.allclose(exported(x), student(x), atol=1e-6)


# --- bad inputs -----------------------------------------------------------------------------------------------------


def copy_echonet(source: Path, out: Path) -> Path:
    (out / "Videos").mkdir(parents=True)
    for name in ("FileList.csv", "VolumeTracings.csv"):
        (out / name).write_text((source / name).read_text())
    for video in (source / "Videos").glob("*.avi"):
        (out / "Videos" / video.name).write_bytes(video.read_bytes())
    return out


def write_avi(path: Path, frames: np.ndarray) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50, frames.shape[2:0:-1], True)
    for frame in frames:
        writer.write(frame)
    writer.release()


def test_video_of_unexpected_size_names_the_file(phantom_echonet, tmp_path):
    root = copy_echonet(phantom_echonet, tmp_path / "echonet")
    write_avi(root / "Videos" / "PHANTOM0001.avi", np.full((24, 64, 80, 3), 90, np.uint8))
    with pytest.raises(ShapeMismatchError, match="PHANTOM0001.avi has frames of 64 x 80 pixels; expected 112 x 112"):
        DistillationClips(list_sources(root, "training"), tmp_path, SIZE)[0]


def test_colour_video_is_refused(phantom_echonet, tmp_path):
    root = copy_echonet(phantom_echonet, tmp_path / "echonet")
    colour = np.zeros((24, 112, 112, 3), np.uint8)
    colour[..., 2] = 200  # red Doppler-like frames
    write_avi(root / "Videos" / "PHANTOM0001.avi", colour)
    with pytest.raises(ShapeMismatchError, match="has colour frames"):
        DistillationClips(list_sources(root, "training"), tmp_path, SIZE)[0]


def test_tracings_of_a_missing_video_are_refused(phantom_echonet, tmp_path):
    root = copy_echonet(phantom_echonet, tmp_path / "echonet")
    (root / "Videos" / "PHANTOM0002.avi").unlink()
    with pytest.raises(MissingFileError, match="traces 1 video\\(s\\) missing from .*PHANTOM0002"):
        evaluate_echonet(FrameWise(tiny_teacher()), root, None, SIZE, 1, progress=False)


class ClipOracle(torch.nn.Module):
    """A "network" whose output is a fixed (T, H, W) probability clip (as logits), whatever the frames."""

    def __init__(self, probs: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", torch.logit(probs, eps=1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], 1, *self.logits.shape)


def grow(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    return F.max_pool2d(mask[None, None], 2 * pixels + 1, 1, pixels)[0, 0]


def test_echonet_dice_and_paper_ef_proxy_read_the_traced_frames(phantom_echonet):
    item = load_echonet_item(list_echonet(phantom_echonet, "TEST")[0])
    ed, es = item["ed_frame"], item["es_frame"]
    ed_mask, es_mask = (torch.from_numpy(item[key]).float() for key in ("ed_mask", "es_mask"))
    probs = es_mask.repeat(len(item["frames"]), 1, 1)
    probs[ed] = ed_mask
    detected_ed = ed + 1 if ed + 1 < len(probs) else ed - 1
    probs[detected_ed] = grow(ed_mask, 1)  # the largest area, one frame off the traced ED: the detected ED
    probs[es] = es_mask + 0.2 * (grow(es_mask, 2) - es_mask)  # a faint ring: above 25/255, below 80/255
    row = evaluate_echonet(ClipOracle(probs), phantom_echonet, "TEST", list(probs.shape[1:]), len(probs),
                           progress=False)["videos"][0]  # fmt: skip
    assert row["ed_estimate"] == detected_ed
    # each traced frame is scored against its own tracing
    assert row["dice_ed"] == pytest.approx(1.0) and row["dice_es"] == pytest.approx(1.0)
    area_ed, area_es, area_detected = float(ed_mask.sum()), float(es_mask.sum()), float(grow(ed_mask, 1).sum())
    assert row["ef_proxy_paper"] == pytest.approx(100 * (area_ed - area_es) / area_ed)  # traced frames, 80/255
    assert row["ef_proxy"] == pytest.approx(100 * (area_detected - area_es) / area_detected)  # detected, 25/255
    # the jitter of the area curve that ED / ES detection and the EF proxy read (25/255, the video's grid)
    area = (probs > 25 / 255).sum(dim=(1, 2)).double()
    second = (area[2:] - 2 * area[1:-1] + area[:-2]).abs()
    assert row["area_jitter"] == pytest.approx(float(second.mean() / area.mean()))


def test_bad_inputs_end_with_one_line_through_monai_bundle_run(phantom_echonet, dfkd_teacher, tmp_path):
    bundle = REPO / "bundles" / "echo_dfkd_segmentation"
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", str(bundle / "configs" / "train.json"),
         "--dataset_dir", str(phantom_echonet), "--teacher_path", str(dfkd_teacher), "--teacher_filters", "[8,16,32]",
         "--num_classes", "3", "--ckpt_dir", str(tmp_path / "m"), "--targets_dir", str(tmp_path / "t"),
         "--image_size", "[32,32]"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: the teacher (teacher_def) outputs 4 classes")


# --- synthetic clips ------------------------------------------------------------------------------------------------


def test_label_cycle_moves_the_lv_smoothly_from_ed_to_es_and_back():
    phase = cardiac_phase(30, 10)
    assert phase[0] == 0 and phase[10] == 1 and np.all(np.diff(phase[:11]) > 0) and np.all(np.diff(phase[10:]) < 0)
    ed = torch.zeros(32, 32, dtype=torch.long)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    ed[(yy - 16) ** 2 + (xx - 16) ** 2 < 81] = 1
    es = torch.zeros_like(ed)
    es[(yy - 16) ** 2 + (xx - 16) ** 2 < 36] = 1
    labels, dice = label_cycle(ed, es, 30, 10)
    area = (labels == 1).sum(dim=(1, 2)).numpy()
    assert dice > 0.9 and labels.shape == (30, 32, 32) and area[0] == (ed == 1).sum()
    assert np.all(np.diff(area[:11]) <= 0) and area[5] < area[0] and area[5] > area[10]  # shrinks, no cross-fade jump
    assert np.all(np.diff(area[10:]) >= 0)


def test_cardiac_phase_loops_back_to_ed_without_repeating_a_frame():
    phase = cardiac_phase(30, 10)
    looped = np.r_[phase, phase[:1]]  # frame 0 of the next cycle follows the last frame
    assert np.all(np.diff(looped[10:]) < 0) and phase[-1] > 0
    np.testing.assert_allclose(np.diff(looped[10:]), np.diff((1 + np.cos(np.pi * np.arange(21) / 20)) / 2))


def write_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def test_clip_timing_reads_the_train_videos_only(phantom_echonet, tmp_path):
    root = copy_echonet(phantom_echonet, tmp_path / "echonet")
    train = list_echonet(root, "TRAIN")
    held_out = {item["filename"] for item in list_echonet(root)} - {item["filename"] for item in train}
    assert len(train) == 1 and len(held_out) == 2
    # the held-out (VAL, TEST) videos get another frame rate and a 2-frame systole: both medians would move
    filelist = list(csv.DictReader(open(root / "FileList.csv")))
    write_rows(root / "FileList.csv", [{**row, "FPS": "7"} if row["FileName"] in held_out else row for row in filelist])
    tracings = list(csv.DictReader(open(root / "VolumeTracings.csv")))
    for name in held_out:
        rows = [row for row in tracings if row["FileName"] == f"{name}.avi"]
        first = rows[0]["Frame"]
        for row in rows:
            row["Frame"] = "1" if row["Frame"] == first else "3"
    write_rows(root / "VolumeTracings.csv", tracings)
    assert {abs(i["es_frame"] - i["ed_frame"]) for i in list_echonet(root) if i["filename"] in held_out} == {2}
    timing = echonet_timing(root)
    assert (timing["fps"], timing["videos"]) == (50.0, 1)
    assert timing["systole_frames"] == abs(train[0]["es_frame"] - train[0]["ed_frame"]) > 2
    assert timing["systole_frames_range"] == [timing["systole_frames"]] * 2  # the range vary_timing draws from
    write_rows(root / "FileList.csv", [{**row, "Split": "TEST"} for row in filelist])
    with pytest.raises(EmptySplitError, match="FileList.csv lists no usable TRAIN video"):
        echonet_timing(root)


def test_synthetic_clips_are_an_echonet_folder_and_resume(phantom_camus, tmp_path):
    torch.manual_seed(0)
    generator = build_generator("edm", 32, network={"channels": [8, 8], "attention_levels": [False, False],
                                                    "num_res_blocks": 1, "norm_num_groups": 4, "num_head_channels": 8,
                                                    "spade_intermediate_channels": 4},
                                view_condition=True)  # fmt: skip  (each clip is generated in its view)
    generate = generator_fn(generator, sampler="euler", steps=2)
    timing = given_timing(50.0, 3)
    out = tmp_path / "clips"
    summary = synthesize_clips(phantom_camus, out, generate, timing, splits=["training"], views=["4CH"], max_clips=2,
                               progress=False)  # fmt: skip
    items = list_echonet_videos(out)
    assert summary["written"] == 2 and len(items) == 2 and all(item["n_frames"] == 9 for item in items)
    assert np.load(out / "Labels" / f"{items[0]['filename']}.npy").shape == (9, 32, 32)
    rows = list(csv.DictReader(open(out / "FileList.csv")))
    assert [row["Split"] for row in rows] == ["TRAIN", "TRAIN"]
    assert synthesize_clips(phantom_camus, out, generate, timing, splits=["training"], views=["4CH"], max_clips=2,
                            progress=False)["written"] == 0  # fmt: skip
    with pytest.raises(ConfigValueError, match="timing differ"):
        synthesize_clips(phantom_camus, out, generate, {**timing, "fps": 30.0}, splits=["training"], views=["4CH"],
                         max_clips=2, progress=False)  # fmt: skip
    # the written clip (one seed for every frame) changes far less than its maps generated with a new seed per frame
    labels = np.load(out / "Labels" / f"{items[0]['filename']}.npy")
    sector = torch.ones(32, 32, dtype=torch.bool)
    written = torch.as_tensor(read_video(items[0]["video"]), dtype=torch.float32) / 255
    independent = generate_frames(generate, clip_condition_maps(sector, labels), list(range(len(labels))), "4CH")
    assert temporal_change(written, sector) < 0.5 * temporal_change(independent[:, 0], sector)
    frames = torch.rand(3, 8, 8)
    assert temporal_change(frames, sector[:8, :8]) == pytest.approx(float((frames[1:] - frames[:-1]).abs().mean()))
    assert json.loads((out / "clips.json").read_text())["image_size"] == 32


def test_camus_scoring_refuses_label_values_outside_0_to_3_naming_the_file(phantom_camus, tmp_path):
    dataset = tmp_path / "camus"
    shutil.copytree(phantom_camus, dataset)
    bad = Path(list_camus(dataset, "testing")[0]["label"])
    labels, spacing = read_camus_array(bad)
    write_camus_nifti(bad, np.where(labels == 3, 7, labels), spacing)
    with pytest.raises(LabelValueError, match=rf"{bad.name} has label values \{{0, 1, 2, 7\}}"):
        evaluate_camus_lv(torch.nn.Identity(), dataset, "testing", SIZE, progress=False)
