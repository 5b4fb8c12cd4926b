"""Generation cost of the six generators (issue echo_ldm_generation, section 5), model x sampler x steps, in one run.

    python scripts/benchmark_generation.py                                     # tiny networks, timed on CPU
    python scripts/benchmark_generation.py --paper_scale --flops_only          # paper sizes at 256 px, FLOPs only
    python scripts/benchmark_generation.py --paper_scale --device cuda --bf16 --channels_last --compile

Each row is one configuration: NFE, GFLOPs per image (FlopCounterMode: matrix products, convolutions and attention),
the FLOP ratio against SDM with its 1000 DDPM steps and, unless `--flops_only` (meta device, no compute), images/s from
the same clock as the study's evaluation (`echodiff.benchmarks.clock`), the share of time outside the network, and
peak memory. `echodiff.benchmarks.generation` documents every column and option. Writes the rows as JSON (default
bundles/echo_ldm_generation/docs/benchmark.json) and prints a markdown table.
"""

from __future__ import annotations

import fire
from echodiff.benchmarks import benchmark
from echodiff.errors import run_cli

if __name__ == "__main__":
    run_cli(lambda: fire.Fire(benchmark, serialize=lambda rows: None))  # the table is printed, the rows are in `out`
