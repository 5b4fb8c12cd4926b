"""float32 against bf16 autocast for the study's generator recipes, in one run (`echodiff.benchmarks.precision`).

    python scripts/benchmark_precision.py                                  # pixel EDM and EDM-L64, cpu recipe, CPU
    python scripts/benchmark_precision.py --study_dir runs/study_l64       # + label fidelity of that study's generator
    python scripts/benchmark_precision.py --models edm --device cuda       # on a GPU

Prints markdown tables (seconds per training step and sampling images/s, each as a ratio to float32; with
`--study_dir`, the label fidelity of the study's trained generator sampled in each precision on held-out training
patients' maps) and writes the rows as JSON (default bundles/echo_ldm_generation/docs/precision_benchmark.json).
"""

from __future__ import annotations

import fire
from echodiff.benchmarks.precision import DEFAULT_OUT, precision_benchmark, precision_fidelity, precision_table
from echodiff.errors import run_cli
from echodiff.io import atomic_write_json


def main(out: str = str(DEFAULT_OUT), study_dir: str | None = None, n_maps: int = 64, **kwargs) -> None:
    rows = {"timing": precision_benchmark(**kwargs)}
    print(precision_table(rows["timing"]))
    if study_dir is not None:
        rows["fidelity"] = precision_fidelity(study_dir, n_maps=n_maps, device=kwargs.get("device", "cpu"))
        print(precision_table(rows["fidelity"]))
    atomic_write_json(out, rows)
    print(f"rows: {out}")


if __name__ == "__main__":
    run_cli(lambda: fire.Fire(main))
