"""Inferers: PD-DDPM sampling (pre-segmentation -> forward noise to T' -> reverse steps -> ensemble, uncertainty);
a video network on still frames and in windows over whole videos."""

from __future__ import annotations

from echodiff.inferers.frames import ClipWindowInferer, FrameAsClipInferer
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
    "ClipWindowInferer",
    "FrameAsClipInferer",
    "STEP_RULES",
    "UNCERTAINTIES",
    "PDDPMInferer",
    "ensemble_uncertainty",
    "load_presegmentation",
    "mask_to_x0",
    "x0_to_probabilities",
]
