"""End-to-end study on a CAMUS-layout folder (default: the built-in phantom), through the bundles' own configs.

    python scripts/pipeline.py study                      # phantom: every stage, tiny scale, a few minutes on a CPU
    python scripts/pipeline.py study --dataset_dir ../shared/data/camus224 --test_dir ../shared/data/camus224 \\
        --test_split validation --budget_minutes 120 --workdir runs/study_camus224
    python scripts/pipeline.py study ... --force diffusion          # rerun one stage (and what depends on it)
    python scripts/pipeline.py study ... --seeds 3                  # real baselines with 3 seeds: the noise floor
    python scripts/pipeline.py study ... --tracking mlflow          # every stage an MLflow run in W/mlruns.db

    python scripts/pipeline.py compare --dataset_dir ... --test_dir ... --test_split validation \\
        --budget_minutes 100 --models edm,edm_l64 --workdir runs/compare   # generators side by side (compare.json)

Stages: real-trained segmenter and view classifier -> Gamma-VAE -> latent diffusion (label fidelity logged) ->
synthetic CAMUS folder -> synthetic-only segmenter and view classifier -> evaluation on --test_dir/--test_split ->
report (W/report/report.json, report.md, PNGs). Rerunning reuses every stage whose inputs did not change.
`echodiff.study.run_study` documents every option (`--paper_scale true` = `--scale paper`;
`--overrides '{"diffusion": {"learning_rate": 3e-4}}'` changes bundle settings of one stage).
"""

from __future__ import annotations

import fire
from echodiff.errors import run_cli
from echodiff.study import run_compare, run_study

if __name__ == "__main__":
    run_cli(lambda: fire.Fire({"study": run_study, "compare": run_compare}, serialize=lambda result: None))
