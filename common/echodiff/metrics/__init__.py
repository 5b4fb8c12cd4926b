"""Evaluation metrics: CAMUS segmentation, view-classification accuracy, patient-level bootstrap intervals, LV function
on EchoNet-Dynamic videos. Realism, diversity and privacy of generated images: `echodiff.metrics.realism`, imported on
its own (it loads bundle networks)."""

from __future__ import annotations

from echodiff.metrics.bootstrap import is_tie, patient_bootstrap
from echodiff.metrics.cardiac import (
    area_jitter,
    detect_ed_es,
    ef_proxy,
    frame_detection_error,
    lv_area_curve,
    pearson_r,
    segmentation_dice_at_threshold,
)
from echodiff.metrics.classification import bootstrap_accuracy, correct_from_logits
from echodiff.metrics.segmentation import (
    camus_dice,
    camus_dice_batch,
    camus_scores_batch,
    lv_endo_hausdorff,
    lv_endo_hausdorff_batch,
    markdown_table,
    summarize,
)

__all__ = [
    "area_jitter",
    "bootstrap_accuracy",
    "camus_dice",
    "camus_dice_batch",
    "camus_scores_batch",
    "correct_from_logits",
    "detect_ed_es",
    "ef_proxy",
    "frame_detection_error",
    "is_tie",
    "lv_area_curve",
    "lv_endo_hausdorff",
    "lv_endo_hausdorff_batch",
    "markdown_table",
    "patient_bootstrap",
    "pearson_r",
    "segmentation_dice_at_threshold",
    "summarize",
]
