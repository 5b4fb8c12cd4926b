"""Costs and timings: FLOPs per generated image (`flops`), the one sampling clock (`clock`: images/s, used by the
generation benchmark and the study's evaluation alike), the generators' model x sampler x steps benchmark
(`generation`, `scripts/benchmark_generation.py`) and the segmenter's evaluation-vs-inference cost (`evaluation`,
`scripts/benchmark_evaluation.py`)."""

from __future__ import annotations

from echodiff.benchmarks.clock import NetworkClock, SamplingRun, clocked_sampling, synchronize
from echodiff.benchmarks.evaluation import evaluation_benchmark
from echodiff.benchmarks.flops import count_flops, count_nfe, network_and_decoder_flops, network_of
from echodiff.benchmarks.generation import benchmark, markdown_table, target_summary, time_sampling

__all__ = [
    "NetworkClock",
    "SamplingRun",
    "benchmark",
    "clocked_sampling",
    "count_flops",
    "count_nfe",
    "evaluation_benchmark",
    "markdown_table",
    "network_and_decoder_flops",
    "network_of",
    "synchronize",
    "target_summary",
    "time_sampling",
]
