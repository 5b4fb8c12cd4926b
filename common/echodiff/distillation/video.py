"""Per-frame LV segmentation of echo videos and the LV function read off it (Petit et al. 2024, "EchoDFKD", section 4):
LV probabilities -> area curve A[t] (pixels with p > 25/255) -> ED / ES frames -> EF proxy 100 (A_ED - A_ES) / A_ED.

A network sees a video in consecutive windows of `clip_length` frames (`echodiff.inferers.ClipWindowInferer`: MONAI's
`SlidingWindowInferer` over time, no overlap, the last window aligned to the end), each started from a zero recurrent
state as in training. The bundle's inference workflow is a MONAI `SupervisedEvaluator` over the videos: `LoadVideod`
reads them, `VideoLVWriter` writes what it found in each.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from ignite.engine import Engine, Events  # noqa: E402
from monai.transforms import Transform  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from echodiff.data.echonet import list_echonet_videos, read_video  # noqa: E402
from echodiff.engines.run_report import outputs_written  # noqa: E402
from echodiff.errors import MissingFileError  # noqa: E402
from echodiff.inferers.frames import ClipWindowInferer  # noqa: E402
from echodiff.io import atomic_write, atomic_write_json  # noqa: E402
from echodiff.losses.distillation import teacher_probabilities  # noqa: E402
from echodiff.metrics.cardiac import DICE_THRESHOLD, detect_ed_es, ef_proxy, lv_area_curve  # noqa: E402

from .sources import resize_frames  # noqa: E402

__all__ = ["LVProbability", "LoadVideod", "VideoLVWriter", "list_video_files", "lv_function", "predict_lv",
           "save_strip", "to_video_grid"]


class LVProbability(nn.Module):
    """LV probability (B, 1, T, H, W) from a video network's logits: the sigmoid of a single LV logit (EchoDFKD
    student), or channel `lv_channel` of the softmax over classes (a multi-class student or a CAMUS teacher)."""

    def __init__(self, network: nn.Module, lv_channel: int = 1) -> None:
        super().__init__()
        self.network, self.lv_channel = network, lv_channel

    def forward(self, x: Tensor) -> Tensor:
        probs = teacher_probabilities(self.network(x))
        return probs if probs.shape[1] == 1 else probs[:, self.lv_channel : self.lv_channel + 1]


def to_video_grid(probs: Tensor, out_size: Sequence[int]) -> Tensor:
    """LV probabilities (T, H, W) bilinearly resized to the video's own grid `out_size`, in [0, 1]."""
    if tuple(probs.shape[1:]) != tuple(out_size):
        probs = F.interpolate(probs[:, None], size=tuple(out_size), mode="bilinear", align_corners=False)[:, 0]
    return probs.clamp(0, 1)


@torch.no_grad()
def predict_lv(
    network: nn.Module, frames: Tensor, clip_length: int, out_size: Sequence[int] | None = None,
    device: str | torch.device = "cpu", windows_per_batch: int | None = None, lv_channel: int = 1,
) -> Tensor:  # fmt: skip
    """LV probabilities (T, H, W) of `frames` (T, H, W) in [0, 1] at the network's size, bilinearly resized to
    `out_size` (the video's own grid) when given."""
    model = LVProbability(network, lv_channel).to(device).eval()
    probs = ClipWindowInferer(clip_length, windows_per_batch)(frames[None, None].to(device), model)[0, 0]
    return to_video_grid(probs.float().cpu(), out_size if out_size is not None else probs.shape[1:])


def lv_function(probs: Tensor | np.ndarray, ed_reference: int | None = None, es_reference: int | None = None) -> dict:
    """Area curve, ED / ES frames and EF proxy of per-frame LV probabilities (T, H, W). With reference frames (e.g. the
    traced ones) ED / ES follow the EchoDFKD rule (`detect_ed_es`); without, ED is the largest and ES the smallest
    area of the clip."""
    area = lv_area_curve(probs)
    ed = int(np.argmax(area)) if ed_reference is None else detect_ed_es(area, ed_reference, "ed")
    es = int(np.argmin(area)) if es_reference is None else detect_ed_es(area, es_reference, "es")
    return {"area": area.astype(int).tolist(), "ed_frame": ed, "es_frame": es,
            "ef_proxy": float(ef_proxy(area[ed], area[es]))}  # fmt: skip


def save_strip(path: str | os.PathLike, frames: np.ndarray, probs: np.ndarray, lv: dict, n_shown: int = 8,
               title: str = "") -> Path:  # fmt: skip
    """PNG: `n_shown` frames (ED and ES among them) with the LV mask outline (p > 80/255), above the LV area curve."""
    spaced = np.linspace(0, len(frames) - 1, max(n_shown - 2, 1)).round().astype(int).tolist()
    shown = sorted({lv["ed_frame"], lv["es_frame"], *spaced})
    figure, axes = plt.subplots(2, len(shown), figsize=(1.6 * len(shown), 3.6),
                                gridspec_kw={"height_ratios": [1, 0.8]})  # fmt: skip
    for ax, t in zip(axes[0], shown):
        ax.imshow(frames[t], cmap="gray", vmin=0, vmax=255 if frames.max() > 1 else 1)
        ax.contour(probs[t] > DICE_THRESHOLD, levels=[0.5], colors="lime", linewidths=0.8)
        label = " ED" if t == lv["ed_frame"] else " ES" if t == lv["es_frame"] else ""
        ax.set_title(f"{t}{label}", fontsize=7)
        ax.axis("off")
    curve = figure.add_subplot(2, 1, 2)
    for ax in axes[1]:
        ax.remove()
    curve.plot(lv["area"], color="k", lw=1)
    curve.axvline(lv["ed_frame"], color="tab:red", lw=0.8, label="ED")
    curve.axvline(lv["es_frame"], color="tab:blue", lw=0.8, label="ES")
    curve.set_xlabel("frame", fontsize=7)
    curve.set_ylabel("LV area (px)", fontsize=7)
    curve.tick_params(labelsize=6)
    curve.legend(fontsize=6)
    figure.suptitle(f"{title}  EF proxy {lv['ef_proxy']:.1f} %", fontsize=8)
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=110), suffix=".png")
    plt.close(figure)
    return Path(path)


def list_video_files(videos: str | os.PathLike) -> list[dict]:
    """Videos to segment: one .avi file, a folder of .avi files, or an EchoNet-Dynamic folder (every FileList video)."""
    root = Path(videos)
    if root.is_file():
        return [{"video": str(root), "filename": root.stem}]
    if (root / "FileList.csv").is_file():
        return list_echonet_videos(root)
    files = sorted(root.glob("*.avi")) if root.is_dir() else []
    if not files:
        raise MissingFileError(f"{root}: no video to segment; expected an .avi file, a folder of .avi files or an "
                               f"EchoNet-Dynamic folder (FileList.csv + Videos/)")  # fmt: skip
    return [{"video": str(f), "filename": f.stem} for f in files]


class LoadVideod(Transform):
    """A `list_video_files` item -> with `image` (1, T, H, W): its grey frames in [0, 1] area-resized to
    `spatial_size` (the network's size, as the distillation data), and `frames` (T, H0, W0): its uint8 frames."""

    def __init__(self, spatial_size: Sequence[int]) -> None:
        self.spatial_size = [int(s) for s in spatial_size]

    def __call__(self, data: dict) -> dict:
        video = read_video(data["video"])
        image = resize_frames(video.astype(np.float32) / 255.0, self.spatial_size)[None]
        return {**data, "frames": video, "image": image}


class VideoLVWriter:
    """Ignite handler of the inference workflow (an evaluator whose `pred` is LV probabilities (1, T, H, W) of each
    `LoadVideod` item): per video `<name>_lv.json` (area curve, ED / ES frames, EF proxy), `<name>_lv_probs.npz` (uint8
    probabilities x 255 on the video's grid) and `<name>_strip.png`; at the end `summary.json` (every video's ED / ES
    frames and EF proxy, frames/s), and a last line saying where it wrote."""

    def __init__(self, output_dir: str | os.PathLike) -> None:
        self.output_dir = Path(output_dir)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.write)
        engine.add_event_handler(Events.COMPLETED, self.summarise)

    def start(self, engine: Engine) -> None:
        self.rows, self.frames, self.started = [], 0, time.perf_counter()

    def write(self, engine: Engine) -> None:
        out = self.output_dir
        for item, output in zip(engine.state.batch, engine.state.output):
            video = np.asarray(item["frames"])
            probs = to_video_grid(torch.as_tensor(output["pred"])[0].float().cpu(), video.shape[1:]).numpy()
            lv = lv_function(probs)
            name = item["filename"]
            atomic_write_json(out / f"{name}_lv.json", {"video": item["video"], "frames": len(video), **lv})
            quantised = (probs * 255).round().astype(np.uint8)
            atomic_write(out / f"{name}_lv_probs.npz", lambda tmp, q=quantised: np.savez_compressed(tmp, probs=q),
                         suffix=".npz")  # fmt: skip
            save_strip(out / f"{name}_strip.png", video, probs, lv, title=name)
            self.rows.append({"video": name, "frames": len(video), "ed_frame": lv["ed_frame"],
                              "es_frame": lv["es_frame"], "ef_proxy": lv["ef_proxy"]})  # fmt: skip
            self.frames += len(video)

    def summarise(self, engine: Engine) -> None:
        seconds = time.perf_counter() - self.started
        atomic_write_json(self.output_dir / "summary.json", {
            "videos": self.rows, "frames_per_s": self.frames / seconds if seconds > 0 else 0.0,
            "output_dir": str(self.output_dir)})  # fmt: skip
        outputs_written(self.output_dir)
