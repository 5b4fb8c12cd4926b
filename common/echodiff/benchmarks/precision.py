"""float32 against bfloat16 autocast for the study's generator recipes: seconds per training step and sampling images/s
of the same networks in one run, with the ratio to float32 (`scripts/benchmark_precision.py`).

bf16 autocast runs matrix products and convolutions in bfloat16 (CPUs with AVX-512 BF16 or AMX, and CUDA) and keeps
reductions, losses and the Gamma-VAE's posterior parameters in float32 (`GammaVAE.posterior`). Training uses it where a
config's `use_amp` is true (`echodiff.generation.training`). Whether it pays off depends on the CPU and the layer
sizes, so a recipe should adopt it only where this benchmark shows it faster and label fidelity
(`echodiff.generation.label_fidelity`) no worse.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import torch

from echodiff.benchmarks.clock import clocked_sampling, synchronize
from echodiff.bundle.location import REPO_BUNDLES
from echodiff.benchmarks.generation import benchmark_condition_map
from echodiff.bundle import load_bundle_network
from echodiff.errors import ConfigKeyError, MissingFileError
from echodiff.generation.checkpoints import load_generator
from echodiff.generation.fidelity import label_fidelity
from echodiff.generation.models import GENERATOR_MODELS, LATENT_MODELS, build_generator
from echodiff.generation.synthesis import generator_fn
from echodiff.study.recipes import scale_settings
from echodiff.study.stages import SEGMENTER, frame_maps, segmenter_shape

__all__ = ["PRECISIONS", "precision_autocast", "precision_benchmark", "precision_fidelity", "precision_table"]

PRECISIONS = ("float32", "bfloat16")
DEFAULT_OUT = REPO_BUNDLES / "echo_ldm_generation" / "docs" / "precision_benchmark.json"


def precision_autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device` for "bfloat16", nothing for "float32"."""
    if precision not in PRECISIONS:
        raise ConfigKeyError(f"precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bfloat16" else contextlib.nullcontext()


def recipe_generator(model: str, scale: str = "cpu", seed: int = 0) -> tuple[torch.nn.Module, int]:
    """The untrained generator of the study's `scale` recipe for `model` (its denoiser and Gamma-VAE sizes, view
    condition) and the recipe's training batch size."""
    settings = scale_settings(scale, model)
    diffusion = settings["diffusion"]
    torch.manual_seed(seed)
    generator = build_generator(
        model, settings["image_size"], network=diffusion.get("network_args") or None,
        autoencoder=settings["autoencoder"].get("autoencoder_args") if model in LATENT_MODELS else None,
        paper_scale=bool(diffusion.get("paper_scale", False)), view_condition=bool(diffusion.get("view_condition")),
    )  # fmt: skip
    return generator, int(diffusion.get("batch_size", 16))


def time_training_steps(generator: torch.nn.Module, cond: torch.Tensor, views: Sequence[str], precision: str,
                        steps: int) -> float:  # fmt: skip
    """Seconds per optimizer step (Adam on the denoiser) of `generator.training_loss` on random in-sector images, after
    one untimed step."""
    device = cond.device
    images = torch.rand(cond.shape, device=device) * (cond > 0)
    optimizer = torch.optim.Adam(generator.denoiser.parameters(), lr=1e-4)
    generator.train()
    seconds = 0.0
    for step in range(steps + 1):
        synchronize(device)
        start = time.perf_counter()
        with precision_autocast(device, precision):
            loss = generator.training_loss(images, cond, views=views)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        if step:
            seconds += time.perf_counter() - start
    generator.eval()
    return seconds / steps


def precision_benchmark(
    models: Sequence[str] | str = ("edm", "edm_l64"),
    scale: str = "cpu",
    sampler: str = "dpmpp_2m",
    steps: int = 10,
    train_steps: int = 5,
    sample_batch: int = 32,
    device: str = "cpu",
    precisions: Sequence[str] | str = PRECISIONS,
) -> list[dict[str, Any]]:
    """One row per model x precision (of `precisions`, float32 first): training seconds per step at the recipe's batch
    size, sampling images/s at `sample_batch` (`clocked_sampling`, `sampler` with `steps`), and both as ratios to the
    model's first precision (> 1: faster)."""
    torch_device = torch.device(device)
    precisions = [precisions] if isinstance(precisions, str) else list(precisions)
    if not precisions or any(p not in PRECISIONS for p in precisions):
        raise ConfigKeyError(f"--precisions {precisions}; expected some of {', '.join(PRECISIONS)}")
    precisions = [p for p in PRECISIONS if p in precisions]
    models = [models] if isinstance(models, str) else list(models)
    unknown = [model for model in models if model not in GENERATOR_MODELS]
    if unknown:
        raise ConfigKeyError(f"--models {unknown}; expected some of {', '.join(GENERATOR_MODELS)}")
    rows = []
    for model in models:
        for precision in precisions:
            generator, batch_size = recipe_generator(model, scale)
            generator = generator.to(torch_device)
            size = generator.image_size
            train_cond = benchmark_condition_map(size, batch_size).to(torch_device)
            train_s = time_training_steps(generator, train_cond, ["4CH"] * batch_size, precision, train_steps)
            generate = generator_fn(generator, sampler=sampler, steps=steps, device=torch_device)

            def sample(maps, seeds, views, generate=generate, precision=precision):
                with precision_autocast(torch_device, precision):
                    return generate(maps, seeds, views)

            cond = benchmark_condition_map(size, sample_batch).to(torch_device)
            run = clocked_sampling(sample, cond, batch_size=sample_batch, keep_images=False, device=torch_device,
                                   views=["4CH"] * sample_batch)  # fmt: skip
            rows.append({"model": model, "precision": precision, "batch_size": batch_size,
                         "train_s_per_step": train_s, "sample_images_per_s": run.images_per_s,
                         "sampler": sampler, "steps": steps, "threads": torch.get_num_threads()})  # fmt: skip
    for row in rows:
        base = next(r for r in rows if r["model"] == row["model"])
        row["train_speedup"] = base["train_s_per_step"] / row["train_s_per_step"]
        row["sample_speedup"] = row["sample_images_per_s"] / base["sample_images_per_s"]
    return rows


def _stage_result(workdir: Path, stage: str) -> dict:
    path = workdir / stage / "stage.json"
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist; expected a finished study stage {stage!r} in {workdir}")
    return json.loads(path.read_text())["result"]


def precision_fidelity(study_dir: str | Path, n_maps: int = 64, sampler: str = "dpmpp_2m", steps: int = 10,
                       seed: int = 0, device: str = "cpu") -> list[dict[str, Any]]:  # fmt: skip
    """Label fidelity of a finished study's generator sampled in each precision on `n_maps` maps of the held-out
    training patients (the study's validation split of its training view: nothing was selected on the test split),
    scored by the study's real-trained segmenter in float32. One row per precision: the Dice keys and their
    difference to float32."""
    workdir, torch_device = Path(study_dir), torch.device(device)
    diffusion, segmenter = _stage_result(workdir, "diffusion"), _stage_result(workdir, "segmenter_real")
    generator = load_generator(diffusion["model"], map_location=torch_device).eval()
    segmenter_net = load_bundle_network(SEGMENTER, segmenter["model"], segmenter_shape(segmenter["overrides"]))
    cond, _, views = frame_maps(_stage_result(workdir, "data")["train_dir"], "validation", generator.image_size,
                                n_maps)  # fmt: skip
    generate = generator_fn(generator, sampler=sampler, steps=steps, device=torch_device)
    rows = []
    for precision in PRECISIONS:
        with precision_autocast(torch_device, precision):
            images, _ = generate(cond, list(range(seed, seed + len(cond))), views)
        rows.append({"precision": precision, "n_maps": len(cond), "sampler": sampler, "steps": steps,
                     **label_fidelity(segmenter_net, images.float().cpu(), cond)})  # fmt: skip
    for row in rows:
        row["dice_mean_minus_float32"] = row["dice_mean"] - rows[0]["dice_mean"]
    return rows


def precision_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of `precision_benchmark` rows."""
    keys = [key for key in ("model", "precision", "batch_size", "train_s_per_step", "train_speedup",
                            "sample_images_per_s", "sample_speedup", "n_maps", "dice_mean", "dice_mean_minus_float32")
            if key in rows[0]]  # fmt: skip
    lines = ["| " + " | ".join(keys) + " |", "|---" * len(keys) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[k]:.3g}" if isinstance(row[k], float) else str(row[k]) for k in keys)
                     + " |")  # fmt: skip
    return "\n".join(lines)
