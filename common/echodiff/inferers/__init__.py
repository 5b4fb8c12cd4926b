"""Inferers: PD-DDPM sampling (pre-segmentation -> forward noise to T' -> reverse steps -> ensemble, uncertainty)."""

from __future__ import annotations

from echodiff.inferers.pddpm import (
    STEP_RULES,
    UNCERTAINTIES,
    PDDPMInferer,
    ensemble_uncertainty,
    load_presegmentation,
    mask_to_x0,
    x0_to_probabilities,
)

__all__ = [
    "STEP_RULES",
    "UNCERTAINTIES",
    "PDDPMInferer",
    "ensemble_uncertainty",
    "load_presegmentation",
    "mask_to_x0",
    "x0_to_probabilities",
]
