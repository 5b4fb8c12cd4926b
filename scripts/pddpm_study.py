"""PD-DDPM study (Guo et al. 2022 on CAMUS): Dice, Hausdorff, network calls and seconds per image of the
pre-segmentation alone, PD-DDPM over T' and ensemble sizes, the full T-step DDPM and DDIM variants, all in one run, plus
how well the ensemble uncertainty marks wrong pixels; with `--holdout N`, T' and the ensemble size are chosen on N
held-out training patients and the chosen row is marked `"selected": true` (library: `echodiff.study.pddpm`).

    python scripts/pddpm_study.py --tiny --workdir /tmp/pddpm_study          # CPU, built-in phantom, tiny models
    python scripts/pddpm_study.py --dataset_dir ../shared/data/camus224 --workdir runs/pddpm_study --holdout 40

Writes `<workdir>/study.json` (rows with exactly ROW_KEYS; Dice x 100, Hausdorff in pixels of the label maps' own
grid or of metric_size), `study_selection.json` (with --holdout), `study_uncertainty.json` and `study.md`; the bundle
README gives the command for camus224 on a CPU.
"""

from __future__ import annotations

import fire
from echodiff.errors import run_cli
from echodiff.study.pddpm import study

if __name__ == "__main__":
    run_cli(lambda: fire.Fire(study))
