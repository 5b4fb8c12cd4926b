"""End-to-end study on a CAMUS-layout folder (default: the built-in phantom), through the bundles' own configs.

    python scripts/pipeline.py study                      # phantom: every stage, tiny scale, a few minutes on a CPU
    python scripts/pipeline.py study --dataset_dir ../shared/data/camus224 --test_dir ../shared/data/camus224 \\
        --test_split validation --budget_minutes 120 --workdir runs/study_camus224
    python scripts/pipeline.py study ... --force diffusion          # rerun one stage (and what depends on it)

Stages: real-trained segmenter and view classifier -> Gamma-VAE -> latent diffusion (label fidelity logged) ->
synthetic CAMUS folder -> synthetic-only segmenter and view classifier -> evaluation on --test_dir/--test_split ->
report (W/report/report.json, report.md, PNGs). Rerunning reuses every stage whose inputs did not change.
`echodiff.study.run_study` documents every option.
"""

from __future__ import annotations

import json

import fire
from echodiff.errors import run_cli
from echodiff.study import run_study


def study(
    workdir: str = "runs/study",
    dataset_dir: str | None = None,
    test_dir: str | None = None,
    test_split: str = "testing",
    train_split: str = "training",
    budget_minutes: float = 120.0,
    scale: str | None = None,
    paper_scale: bool = False,
    holdout: int | None = None,
    k: int = 5,
    sampler: str = "heun",
    steps: int = 5,
    seed: int = 0,
    device: str | None = None,
    force: str | list[str] | None = None,
    quiet: bool = True,
    overrides: str | dict | None = None,
) -> None:
    """Run or resume the study (see `echodiff.study.run_study`); `--paper_scale true` = `--scale paper`;
    `--overrides '{"diffusion": {"learning_rate": 3e-4}}'` changes bundle settings of one stage."""
    if isinstance(overrides, str):
        overrides = json.loads(overrides)
    run_study(
        workdir=workdir, dataset_dir=dataset_dir, test_dir=test_dir, test_split=test_split, train_split=train_split,
        budget_minutes=budget_minutes, scale="paper" if paper_scale else scale, holdout=holdout, k=k,
        sampler=sampler, steps=steps, seed=seed, device=device, force=force, quiet=quiet, overrides=overrides,
    )  # fmt: skip


if __name__ == "__main__":
    run_cli(lambda: fire.Fire({"study": study}))
