"""Generation benchmark (echodiff.benchmarks, scripts/benchmark_generation.py): FLOP counts, exact NFE, FLOP ratios,
keys, tiny CPU run, and the one sampling clock shared with the study's evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import echodiff.benchmarks.generation as bench
import pytest
import torch
from echodiff.benchmarks import clock, flops
from echodiff.errors import ConfigKeyError, ConfigValueError
from echodiff.generation import build_generator
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

REQUIRED_KEYS = {
    "model", "sampler", "steps", "nfe", "device", "seconds_per_image", "images_per_s", "gflops_per_image",
    "outside_network_fraction", "peak_memory_mb", "ratio_vs_sdm1000", "paper_scale",
}
SIZE = 32  # the smallest image all small networks take (edm_l64: 8 x 8 latent, halved twice by the UNet to 2 x 2)


def test_flop_counter_gives_the_analytic_count_of_a_convolution_and_a_linear_layer():
    conv, x = nn.Conv2d(3, 8, kernel_size=3, padding=1), torch.randn(2, 3, 16, 16)
    assert flops.count_flops(conv, x) == 2 * 2 * 8 * 16 * 16 * 3 * 3 * 3  # 2 FLOPs per multiply-add
    assert flops.count_flops(nn.Linear(10, 6), torch.randn(4, 10)) == 2 * 4 * 10 * 6


@pytest.mark.parametrize("model, sampler, steps, views", [("edm_l64", "heun", 2, False), ("sdm", "ddpm", None, False),
                                                          ("edm_l64", "heun", 2, True)])  # fmt: skip
def test_meta_count_equals_a_real_cpu_count_and_the_flops_of_a_whole_sample(model, sampler, steps, views):
    torch.manual_seed(0)
    generator = build_generator(model, SIZE, diffusion={"num_train_timesteps": 4} if model == "sdm" else None,
                                view_condition=views).eval()  # fmt: skip
    cond = bench.benchmark_condition_map(SIZE, 1)
    on_cpu = flops.network_and_decoder_flops(generator)
    with FlopCounterMode(display=False) as counter:
        _, nfe = generator.sample(cond, sampler=sampler, steps=steps, views="4CH" if views else None)
    assert nfe == flops.count_nfe(generator, cond, sampler, steps, None) == {"edm_l64": 3, "sdm": 4}[model]
    assert counter.get_total_flops() == nfe * on_cpu[0] + on_cpu[1]
    assert (on_cpu[1] > 0) == (model == "edm_l64")
    assert flops.network_and_decoder_flops(generator.to("meta")) == on_cpu


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], Path]:
    out = tmp_path_factory.mktemp("benchmark") / "benchmark.json"
    rows = bench.benchmark(models="edm_l64", samplers=("heun", "euler", "dpmpp_2m"), steps=(1, 2), image_size=SIZE,
                           sdm_timed_steps=2, out=str(out))
    return rows, out


def test_tiny_cpu_run_writes_one_row_per_configuration_with_the_required_keys(tiny_run):
    rows, out = tiny_run
    assert json.loads(out.read_text()) == rows
    configs = [(r["model"], r["sampler"], r["steps"]) for r in rows]
    assert configs == [("sdm", "ddpm", 1000)] + [
        ("edm_l64", s, n) for s in ("heun", "euler", "dpmpp_2m") for n in (1, 2)]
    assert all(REQUIRED_KEYS <= set(r) for r in rows)
    assert all(r["paper_scale"] is False and r["device"].startswith("cpu") for r in rows)


def test_nfe_is_exact_for_every_sampler(tiny_run):
    rows, _ = tiny_run
    expected = {"ddpm": lambda n: 1000, "heun": lambda n: 2 * n - 1, "euler": lambda n: n, "dpmpp_2m": lambda n: n}
    assert [r["nfe"] for r in rows] == [expected[r["sampler"]](r["steps"]) for r in rows]


def test_ratio_vs_sdm1000_is_the_flop_ratio_and_flops_add_network_calls_and_one_decode(tiny_run):
    rows, _ = tiny_run
    sdm = rows[0]
    assert sdm["ratio_vs_sdm1000"] == 1.0 and sdm["decoder_gflops"] == 0
    for r in rows:
        assert r["gflops_per_image"] == pytest.approx(r["nfe"] * r["network_gflops_per_call"] + r["decoder_gflops"])
        assert r["ratio_vs_sdm1000"] == pytest.approx(sdm["gflops_per_image"] / r["gflops_per_image"])
    assert rows[1]["ratio_vs_sdm1000"] > 100  # one latent call + one decode against 1000 pixel-space calls


def test_timings_are_consistent_and_sdm1000_is_extrapolated_from_its_timed_steps(tiny_run):
    rows, _ = tiny_run
    for r in rows:
        assert 0.0 <= r["outside_network_fraction"] <= 1.0
        assert r["seconds_per_image"] > 0 and r["images_per_s"] == pytest.approx(1 / r["seconds_per_image"])
        assert r["peak_memory_mb"] > 0 and r["memory_measure"] == "process peak RSS (ru_maxrss)"
    assert rows[0]["timed_network_calls"] == 2 < rows[0]["nfe"]
    assert all(r["timed_network_calls"] == r["nfe"] for r in rows[1:])


def test_flops_only_counts_on_the_meta_device_and_leaves_timings_null():
    rows = bench.benchmark(models="edm", samplers="heun", steps=1, image_size=SIZE, flops_only=True, out=None)
    assert [(r["model"], r["nfe"], r["device"], r["seconds_per_image"]) for r in rows] == [
        ("sdm", 1000, None, None), ("edm", 1, None, None)]
    assert rows[1]["ratio_vs_sdm1000"] == pytest.approx(1000.0)  # same small UNet in pixel space, 1 call vs 1000


def test_unknown_models_and_bf16_on_cpu_are_refused():
    with pytest.raises(ConfigKeyError, match=r"unknown models \['edm_l32'\]; expected some of sdm, vp"):
        bench.benchmark(models="edm_l32", out=None)
    with pytest.raises(ConfigValueError, match="bf16=True on device 'cpu': this benchmark times bf16 on CUDA only"):
        bench.benchmark(models="edm", bf16=True, out=None)


def test_clocked_sampling_warms_up_once_then_samples_every_map_with_its_own_seed_in_batches():
    calls = []

    def generate(maps, seeds):
        calls.append((len(maps), list(seeds)))
        return maps.float(), 3

    cond = torch.arange(5).reshape(5, 1, 1, 1)
    run = clock.clocked_sampling(generate, cond, batch_size=2, seed=10)
    assert calls == [(2, [10, 11]), (2, [10, 11]), (2, [12, 13]), (1, [14])]  # warm-up, then the timed batches
    assert torch.equal(run.images, cond.float()) and run.nfe == 3 and run.n_images == 5 and run.seconds > 0
    assert run.images_per_s == pytest.approx(5 / run.seconds)
    calls.clear()
    assert clock.clocked_sampling(generate, cond, batch_size=5, warmup=False, keep_images=False).images is None
    assert calls == [(5, [0, 1, 2, 3, 4])]


def test_benchmark_and_study_evaluation_report_images_per_s_of_the_same_clock(monkeypatch):
    """Not a timing test: both paths hand the same kind of sampling call to `clocked_sampling`, with the same batch
    and warm-up, and report the images/s it measured."""
    from echodiff.generation import GeneratorFn
    from echodiff.study import stages

    assert stages.clocked_sampling is bench.clocked_sampling is clock.clocked_sampling
    assert stages.generator_fn is bench.generator_fn  # the sampling call: GeneratorFn, no autograd, per-image seeds
    runs = []

    def spy(generate, cond, **kwargs):
        run = clock.clocked_sampling(generate, cond, **kwargs)
        runs.append((generate, len(cond), kwargs.get("batch_size"), kwargs.get("warmup", True), run))
        return run

    monkeypatch.setattr(bench, "clocked_sampling", spy)
    monkeypatch.setattr(stages, "clocked_sampling", spy)
    torch.manual_seed(0)
    generator = build_generator("edm", SIZE).eval()
    cond = bench.benchmark_condition_map(SIZE, 2)
    row = bench.time_sampling(generator, cond, "euler", 2, None, 2)
    _, nfe, images_per_s = stages.sample_maps(generator, cond, ["2CH", "4CH"], "euler", 2, seed=0, batch_size=2)
    (bench_fn, bench_n, bench_batch, bench_warmup, bench_run), (study_fn, study_n, study_batch, study_warmup,
                                                                 study_run) = runs  # fmt: skip
    assert isinstance(study_fn, GeneratorFn)  # the benchmark's call wraps one in its bf16 / early-stop context
    assert (bench_n, bench_batch, bench_warmup) == (study_n, study_batch, study_warmup) == (2, 2, True)
    assert row["images_per_s"] == pytest.approx(bench_run.images_per_s)
    assert images_per_s == study_run.images_per_s and nfe == row["timed_network_calls"] == 2
