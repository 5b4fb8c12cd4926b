"""Ignite handlers and checkpoint helpers used by the bundles where MONAI's own do not fit."""

from __future__ import annotations

from .checkpoints import (
    BestMetricState,
    BestModelSaver,
    CheckedCheckpointLoader,
    ResumeCheckpointLoader,
    guard_resume,
    latest_checkpoint,
    resume_handlers,
)
from .classification_report import BootstrapAccuracySaver, HeaderCSVSaver
from .distillation_batches import TeacherTargetsPrepareBatch
from .diffusion_batches import MaskDiffusionPrepareBatch, SchedulerNoisePrepareBatch
from .run_controls import BudgetSizedSchedule, TrainingTimeLimit, progress_bar, stop_after
from .run_report import outputs_written
from .segmentation_report import (
    CamusMeanDice,
    CamusScoresd,
    MeanImageScore,
    SegmentationReportSaver,
    camus_scores,
    uncertainty_error_stats,
)
from .segmentation_writer import SegmentationSaver

__all__ = [
    "BestMetricState",
    "BestModelSaver",
    "BootstrapAccuracySaver",
    "BudgetSizedSchedule",
    "CheckedCheckpointLoader",
    "HeaderCSVSaver",
    "CamusMeanDice",
    "CamusScoresd",
    "MaskDiffusionPrepareBatch",
    "MeanImageScore",
    "ResumeCheckpointLoader",
    "SchedulerNoisePrepareBatch",
    "SegmentationReportSaver",
    "SegmentationSaver",
    "TeacherTargetsPrepareBatch",
    "TrainingTimeLimit",
    "camus_scores",
    "guard_resume",
    "latest_checkpoint",
    "outputs_written",
    "progress_bar",
    "resume_handlers",
    "stop_after",
    "uncertainty_error_stats",
]
