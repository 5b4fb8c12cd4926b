"""Segmenter evaluation cost against inference of the same images, in one run (issue 10, item 9).

    python scripts/benchmark_evaluation.py                   # built-in phantom at 224 px, a briefly trained segmenter
    python scripts/benchmark_evaluation.py --dataset_dir ../shared/data/camus224 --split validation \\
        --ckpt_path M/model.pt --image_size 128 --filters '[32,64,128,256,320]'

Runs echo_pddpm_segmentation's `inference.json` (label maps and overlays written per image) and `inference.json` +
`evaluate.json` (Dice, Hausdorff, report) over the same split with the same checkpoint, alternately `repeats` times,
and reports the median seconds per image of each and `evaluation_over_inference` (target: at most 2). Without
`--ckpt_path` a segmenter is first trained for `train_epochs` on the training split (untimed; it stays in
`<workdir>/models` for the next run), so the predictions have the shapes a real model makes (an untrained one makes
noise whose Hausdorff distance is no test). Writes the rows as JSON (`<workdir>/benchmark_evaluation.json`) and prints
a markdown table.
"""

from __future__ import annotations

import fire
from echodiff.benchmarks.evaluation import evaluation_benchmark
from echodiff.errors import run_cli

if __name__ == "__main__":
    run_cli(lambda: fire.Fire(evaluation_benchmark, serialize=lambda rows: None))
