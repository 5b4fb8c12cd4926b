"""PD-DDPM study (Guo et al. 2022 on CAMUS): Dice, Hausdorff and seconds per image of the pre-segmentation alone,
PD-DDPM over T' and ensemble sizes, the full T-step DDPM and DDIM variants, all in one run, plus how well the ensemble
uncertainty marks wrong pixels. Both models are trained with the echo_pddpm_segmentation bundle's own configs; the
methods then sample in this process on the same images with the same seed (library: `echodiff.study.pddpm`).

    python scripts/pddpm_study.py --tiny --workdir /tmp/pddpm_study          # CPU, built-in phantom, tiny models
    python scripts/pddpm_study.py --dataset_dir ../shared/data/camus224 --workdir runs/pddpm_study --max_images 100

Writes `<workdir>/study.json` (rows with exactly ROW_KEYS; Dice x 100, Hausdorff in pixels of the label maps' own
grid or of metric_size), `<workdir>/study_uncertainty.json` (uncertainty vs error per sampled method) and `<workdir>/study.md`.
"""

from __future__ import annotations

import fire
from echodiff.errors import run_cli
from echodiff.study.pddpm import study

if __name__ == "__main__":
    run_cli(lambda: fire.Fire(study))
