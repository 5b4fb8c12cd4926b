"""The end-to-end experiment: real-trained baselines, generator, synthetic dataset, synthetic-only downstream models,
evaluation on real test patients and a report, as cached stages within a wall-clock budget (`run_study`); several
generators side by side on the same data and budget (`run_compare`)."""

from __future__ import annotations

from echodiff.study.cache import StageRecord, fingerprint, run_cached
from echodiff.study.recipes import BUDGET_SHARES, MIN_STAGE_MINUTES, SCALES
from echodiff.study.run import STAGES, check_budget, hardware, run_study
from echodiff.study.compare import run_compare

__all__ = [
    "BUDGET_SHARES",
    "MIN_STAGE_MINUTES",
    "SCALES",
    "STAGES",
    "StageRecord",
    "check_budget",
    "fingerprint",
    "hardware",
    "run_cached",
    "run_compare",
    "run_study",
]
