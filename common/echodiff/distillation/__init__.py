"""Data-free knowledge distillation for echo LV segmentation (Petit et al. 2024, "EchoDFKD"): teacher soft masks,
student training clips, per-frame video inference and the LV-function scores (Dice, aFD, EF proxy)."""

from __future__ import annotations

from .dataset import DistillationClips
from .evaluation import REPORT_FILE, evaluate_camus_lv, evaluate_echonet, evaluate_lv_segmenter
from .sources import dataset_layout, list_sources, load_frames, resize_frames
from .targets import TARGETS_FILE, checked_teacher, produce_targets, read_target
from .video import LoadVideod, LVProbability, VideoLVWriter, list_video_files, lv_function, predict_lv, save_strip

__all__ = [
    "REPORT_FILE",
    "TARGETS_FILE",
    "DistillationClips",
    "LVProbability",
    "LoadVideod",
    "VideoLVWriter",
    "checked_teacher",
    "dataset_layout",
    "evaluate_camus_lv",
    "evaluate_echonet",
    "evaluate_lv_segmenter",
    "list_sources",
    "list_video_files",
    "load_frames",
    "lv_function",
    "predict_lv",
    "produce_targets",
    "read_target",
    "resize_frames",
    "save_strip",
]
