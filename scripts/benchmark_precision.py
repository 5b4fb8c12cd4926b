"""float32 against bf16 autocast for the study's generator recipes, in one run (`echodiff.benchmarks.precision`).

    python scripts/benchmark_precision.py                                  # pixel EDM and EDM-L64, cpu recipe, CPU
    python scripts/benchmark_precision.py --models edm --device cuda       # on a GPU

Prints a markdown table (seconds per training step, sampling images/s, each as a ratio to float32) and writes the rows
as JSON (default bundles/echo_ldm_generation/docs/precision_benchmark.json).
"""

from __future__ import annotations

import fire
from echodiff.benchmarks.precision import DEFAULT_OUT, precision_benchmark, precision_table
from echodiff.errors import run_cli
from echodiff.io import atomic_write_json


def main(out: str = str(DEFAULT_OUT), **kwargs) -> None:
    rows = precision_benchmark(**kwargs)
    atomic_write_json(out, rows)
    print(precision_table(rows))
    print(f"rows: {out}")


if __name__ == "__main__":
    run_cli(lambda: fire.Fire(main))
