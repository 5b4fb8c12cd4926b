"""Generation cost of the six generators (Stojanovski et al. 2024, Table 1 setting), model x sampler x steps, in one
run (`scripts/benchmark_generation.py` is its command line).

Each row is one configuration: `nfe` (network calls per image, as `LabelToImageGenerator.sample` itself returns it),
`gflops_per_image` = nfe x one network call + one decoder call (each counted for one image,
`echodiff.benchmarks.flops`), and `ratio_vs_sdm1000` = GFLOPs of SDM with its 1000 DDPM steps / GFLOPs of the row,
i.e. how many times cheaper than SDM-1000 the row is (the paper's target: EDM-L64 at N = 5 at least 1000x). Timed rows
(`echodiff.benchmarks.clock`, the clock of the study's evaluation too) add `seconds_per_image`, `images_per_s`,
`outside_network_fraction` (share of the sampling time spent outside the network and the decoder, timed by forward
hooks that synchronise CUDA at both ends), `peak_memory_mb` (`memory_measure` says which: CUDA max_memory_allocated,
or the process's peak RSS on CPU) and `device`. SDM-1000 is timed over its first `sdm_timed_steps` network calls and
extrapolated to all of them (`timed_network_calls` < nfe says so). FLOP-only runs count on the meta device (no
compute, no GPU): `device` and the timings are null. SDM is always included, as the reference.
"""

from __future__ import annotations

import contextlib
import json
import platform
import resource
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from echodiff.benchmarks.clock import NetworkClock, clocked_sampling
from echodiff.benchmarks.flops import count_nfe, network_and_decoder_flops, network_of
from echodiff.bundle.location import REPO_BUNDLES
from echodiff.data.conditioning import condition_map
from echodiff.data.phantom import phantom_frame
from echodiff.errors import ConfigKeyError, ConfigValueError
from echodiff.generation.generator import LabelToImageGenerator
from echodiff.generation.models import GENERATOR_MODELS, LATENT_MODELS, build_generator
from echodiff.generation.synthesis import generator_fn
from echodiff.io import atomic_write
from echodiff.samplers import SAMPLERS, ChurnSpec

__all__ = ["benchmark", "markdown_table", "target_summary", "time_sampling"]

DEFAULT_OUT = REPO_BUNDLES / "echo_ldm_generation" / "docs" / "benchmark.json"
REFERENCE = "sdm"
PAPER_IMAGE_SIZE, TINY_IMAGE_SIZE = 256, 32
PAPER_SDM_TIMED_STEPS = 50
# dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets; the first matching name wins
DENSE_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0}


class _StopSampling(Exception):
    """Raised from the sampling callback once the timed steps are done."""


def time_sampling(
    generator: LabelToImageGenerator,
    cond: torch.Tensor,
    sampler: str,
    steps: int | None,
    churn: ChurnSpec | None,
    nfe: int,
    *,
    repeats: int = 1,
    bf16: bool = False,
    timed_steps: int | None = None,
) -> dict[str, Any]:
    """`clocked_sampling` of `repeats` batches of `cond` (after its warm-up call); with `timed_steps` < nfe, stop each
    call after that many network calls and extrapolate the time to all `nfe` of them."""
    device = cond.device
    modules = [network_of(generator)] + ([generator.autoencoder.decoder] if generator.autoencoder is not None else [])

    def stop_after_timed_steps(i: int, *_: Any) -> None:
        if timed_steps is not None and i + 1 >= timed_steps:
            raise _StopSampling

    generate = generator_fn(generator, sampler, steps, churn, device, callback=stop_after_timed_steps)

    def sample(maps: torch.Tensor, seeds: Sequence[int]) -> tuple[torch.Tensor | None, int]:
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast, contextlib.suppress(_StopSampling):
            return generate(maps, seeds)
        return None, nfe

    def reset() -> None:
        clock.reset()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    with NetworkClock(modules, device) as clock:
        run = clocked_sampling(sample, cond.repeat(repeats, 1, 1, 1), batch_size=cond.shape[0], keep_images=False,
                               after_warmup=reset)  # fmt: skip
    network_calls = clock.calls[0] / repeats
    seconds_per_image = run.seconds / run.n_images * nfe / network_calls
    if device.type == "cuda":
        peak, measure = torch.cuda.max_memory_allocated(device) / 2**20, "torch.cuda.max_memory_allocated"
    else:
        peak, measure = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS (ru_maxrss)"
    return {
        "seconds_per_image": seconds_per_image,
        "images_per_s": 1 / seconds_per_image,
        "outside_network_fraction": min(max(1 - clock.seconds / run.seconds, 0.0), 1.0),
        "peak_memory_mb": peak,
        "memory_measure": measure,
        "timed_network_calls": int(network_calls),
    }


def benchmark_condition_map(image_size: int, batch_size: int, seed: int = 0) -> torch.Tensor:
    """A (B, 1, S, S) conditioning map of a phantom 4CH frame (sector, LV, myocardium, LA), repeated B times."""
    image, label = phantom_frame("4CH", "ED", image_size, seed)
    cond = torch.as_tensor(condition_map(image, label))
    return cond[None, None].repeat(batch_size, 1, 1, 1)


def prepare(generator: LabelToImageGenerator, device: torch.device, channels_last: bool, compile_networks: bool
            ) -> LabelToImageGenerator:
    """Move to `device`; optionally channels_last weights and torch.compile'd network and decoder forwards (the
    timing hooks stay outside the compiled code)."""
    generator = generator.to(device)
    if channels_last:
        generator = generator.to(memory_format=torch.channels_last)
    if compile_networks:
        modules = [network_of(generator)] + ([generator.autoencoder.decoder] if generator.autoencoder else [])
        for module in modules:
            module.forward = torch.compile(module.forward)
    return generator


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def peak_bf16_tflops(device: torch.device) -> float | None:
    """The card's dense bf16 peak from `DENSE_BF16_TFLOPS` (None on CPU or for an unlisted card)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in DENSE_BF16_TFLOPS.items() if key in name), None)


def _names(values: Sequence[Any] | Any) -> tuple:
    return tuple(values) if isinstance(values, (list, tuple)) else (values,)


def benchmark(
    paper_scale: bool = False,
    device: str = "cpu",
    models: Sequence[str] | str = GENERATOR_MODELS,
    samplers: Sequence[str] | str = tuple(SAMPLERS),
    steps: Sequence[int] | int = (5, 10, 25, 50),
    batch_size: int = 1,
    bf16: bool = False,
    channels_last: bool = False,
    compile: bool = False,  # noqa: A002  (the CLI flag the issue names)
    flops_only: bool = False,
    repeats: int = 1,
    stochastic: bool = False,
    image_size: int | None = None,
    sdm_timed_steps: int | None = None,
    peak_tflops: float | None = None,
    seed: int = 0,
    network: dict | None = None,
    autoencoder: dict | None = None,
    label: str | None = None,
    append: bool = False,
    out: str | None = str(DEFAULT_OUT),
) -> list[dict[str, Any]]:
    """Benchmark rows for every model x sampler x steps (SDM: DDPM over its T = 1000 steps), written to `out`.

    `image_size` defaults to 256 with `paper_scale` (the paper's networks, `PAPER_SCALE_NETWORKS`), else 32 (small
    networks). `stochastic` adds the paper's churn to the EDM-family samplers. `sdm_timed_steps` times only that many
    SDM steps (default 50 at paper scale, all of them otherwise). `peak_tflops` overrides the card's dense bf16 peak
    used for `peak_fraction`. `network` / `autoencoder` override the UNet / Gamma-VAE arguments of every model (as
    `build_generator` takes them; the autoencoder only for latent models), e.g. the study's CPU recipe. `label` names
    the run in every row; `append` keeps the rows of `out` with other labels (e.g. the paper-scale FLOP rows) and
    replaces those with this label. `out=None` writes nothing.
    """
    models, samplers, step_counts = _names(models), _names(samplers), _names(steps)
    unknown = [m for m in models if m not in GENERATOR_MODELS]
    if unknown:
        raise ConfigKeyError(f"unknown models {unknown}; expected some of {', '.join(GENERATOR_MODELS)}")
    torch_device = torch.device("meta" if flops_only else device)
    if bf16 and torch_device.type != "cuda":
        raise ConfigValueError(f"bf16=True on device {device!r}: this benchmark times bf16 on CUDA only; "
                               "scripts/benchmark_precision.py compares float32 and bf16 on the CPU")
    if batch_size < 1 or repeats < 1:
        raise ConfigValueError(f"batch_size={batch_size} and repeats={repeats} must be at least 1")
    image_size = image_size or (PAPER_IMAGE_SIZE if paper_scale else TINY_IMAGE_SIZE)
    if sdm_timed_steps is None and paper_scale:
        sdm_timed_steps = PAPER_SDM_TIMED_STEPS
    peak_tflops = peak_tflops or peak_bf16_tflops(torch_device)
    cond = benchmark_condition_map(image_size, batch_size, seed)

    rows = []
    for model in dict.fromkeys((REFERENCE, *models)):
        torch.manual_seed(seed)
        generator = build_generator(model, image_size, paper_scale=paper_scale, network=network,
                                    autoencoder=autoencoder if model in LATENT_MODELS else None).eval()
        edm_family = generator.scheduler is None
        churn = ChurnSpec.paper_defaults() if stochastic and edm_family else None
        configs = [(s, n) for s in samplers for n in step_counts] if edm_family else [("ddpm", None)]
        nfes = [count_nfe(generator, cond, sampler, n, churn) for sampler, n in configs]
        generator = prepare(generator, torch_device, channels_last, compile)
        network_flops, decoder_flops = network_and_decoder_flops(generator)
        for (sampler, n), nfe in zip(configs, nfes):
            row = {
                "label": label, "model": model, "sampler": sampler, "steps": n or nfe, "nfe": nfe,
                "stochastic": churn is not None,
                "device": None if flops_only else device_name(torch_device), "paper_scale": paper_scale,
                "image_size": image_size, "batch_size": batch_size,
                "gflops_per_image": (nfe * network_flops + decoder_flops) / 1e9,
                "network_gflops_per_call": network_flops / 1e9, "decoder_gflops": decoder_flops / 1e9,
                "seconds_per_image": None, "images_per_s": None, "outside_network_fraction": None,
                "peak_memory_mb": None, "bf16": bf16, "channels_last": channels_last, "compile": compile,
            }  # fmt: skip
            if not flops_only:
                timed = sdm_timed_steps if not edm_family and sdm_timed_steps else None
                row.update(time_sampling(generator, cond.to(torch_device), sampler, n, churn, nfe, repeats=repeats,
                                         bf16=bf16, timed_steps=timed))  # fmt: skip
                row["achieved_tflops"] = row["gflops_per_image"] * row["images_per_s"] / 1e3
                row["peak_fraction"] = row["achieved_tflops"] / peak_tflops if peak_tflops and bf16 else None
            rows.append(row)
        del generator
    add_ratios(rows)
    print(markdown_table(rows))
    print(target_summary(rows))
    if out is not None:
        kept = [r for r in json.loads(Path(out).read_text()) if r.get("label") != label] if append and Path(
            out).is_file() else []  # fmt: skip
        text = json.dumps(kept + rows, indent=2) + "\n"
        atomic_write(Path(out), lambda tmp: Path(tmp).write_text(text), suffix=".json")
    return rows


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """`ratio_vs_sdm1000` (FLOPs) and, for timed rows, `time_ratio_vs_sdm1000`: SDM-1000's cost over the row's."""
    reference = next(r for r in rows if r["model"] == REFERENCE and r["sampler"] == "ddpm")
    for row in rows:
        row["ratio_vs_sdm1000"] = reference["gflops_per_image"] / row["gflops_per_image"]
        timed = row["seconds_per_image"] is not None
        row["time_ratio_vs_sdm1000"] = reference["seconds_per_image"] / row["seconds_per_image"] if timed else None


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a markdown table, cost ratios against SDM-1000 included."""
    lines = [
        "| model | sampler | steps | NFE | GFLOP/image | x cheaper (FLOPs) | s/image | images/s | x cheaper (time) "
        "| outside network | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        outside = None if r["outside_network_fraction"] is None else f"{100 * r['outside_network_fraction']:.2f} %"
        lines.append(
            f"| {r['model']} | {r['sampler']} | {r['steps']} | {r['nfe']} | {r['gflops_per_image']:.4g} "
            f"| {r['ratio_vs_sdm1000']:.4g} | {_fmt(r['seconds_per_image'], '.4g')} | {_fmt(r['images_per_s'], '.4g')} "
            f"| {_fmt(r['time_ratio_vs_sdm1000'], '.4g')} | {_fmt(outside, '')} | {_fmt(r['peak_memory_mb'], '.0f')} |"
        )
    return "\n".join(lines)


def target_summary(rows: Sequence[dict[str, Any]]) -> str:
    """The issue's targets: EDM-L64 at N = 5 (Heun) >= 1000x cheaper than SDM-1000; sampler overhead < 2 % of the
    network time; achieved share of the card's bf16 peak."""
    lines = []
    headline = [r for r in rows if r["model"] == "edm_l64" and r["sampler"] == "heun" and r["steps"] == 5]
    for r in headline:
        verdict = "meets" if r["ratio_vs_sdm1000"] >= 1000 else "MISSES"
        lines.append(
            f"EDM-L64 Heun N=5 vs SDM-1000: {r['ratio_vs_sdm1000']:.0f}x fewer FLOPs ({verdict} the 1000x target)"
        )
    timed = [r for r in rows if r["outside_network_fraction"] is not None]
    if timed:
        worst = max(timed, key=lambda r: r["outside_network_fraction"])
        f = worst["outside_network_fraction"]
        overhead = f / (1 - f) if f < 1 else float("inf")
        verdict = "meets" if overhead < 0.02 else "MISSES"
        lines.append(f"largest sampler overhead: {100 * overhead:.2f} % of the network time ({worst['model']} "
                     f"{worst['sampler']} N={worst['steps']}; {verdict} the 2 % target)")
    fractions = [r for r in rows if r.get("peak_fraction") is not None]
    if fractions:
        best = max(fractions, key=lambda r: r["peak_fraction"])
        lines.append(
            f"best bf16 throughput: {best['achieved_tflops']:.1f} TFLOP/s = {100 * best['peak_fraction']:.1f} % of "
            f"the card's dense peak ({best['model']} {best['sampler']} N={best['steps']})"
        )
    return "\n".join(lines)
