"""Teacher vs distilled students on real data (echo_dfkd_segmentation): train each student with the bundle's own
train.json, score the teacher and every student on EchoNet-Dynamic videos (Dice at the traced frames, aFD for ED and
ES, EF-proxy Pearson r, frames/s) and on CAMUS frames (LV Dice), and write results.json, results.md and a
parameters-vs-Dice plot (library: `echodiff.distillation.study`).

    python scripts/dfkd_study.py --students STUDENTS.json --teacher_path T.pt --echonet_dir E --camus_dir C \
        --camus_split testing --workdir runs/dfkd --out_dir bundles/echo_dfkd_segmentation/docs

STUDENTS.json: a list of {"name", "train_data" (words for the table), "dataset_dir", "overrides" (train.json keys,
e.g. k_blocks, n_layers, image_size, time_limit_minutes)}. A student whose training finished is not retrained (the
bundle resumes a killed one); `--train false` only evaluates; `--only "[NAME]"` trains and scores the named students
alone (runs side by side, each with its own --out_dir; then one `--train false` run over the whole file).
"""

from __future__ import annotations

import fire
from echodiff.distillation.study import compare_students
from echodiff.errors import run_cli

if __name__ == "__main__":
    run_cli(lambda: fire.Fire(compare_students))
