"""Synthesize a CAMUS-layout training set from a trained label-to-image generator (echodiff.generation.synthesis).

    python scripts/synthesize.py --checkpoint G.pt --source_dir D --out_dir O --k 5 --sampler heun --steps 5 --seed 0
    python scripts/synthesize.py ... --privacy_filter VIEW_CLASSIFIER.pt   # drop images that copy a training image
    torchrun --nproc_per_node 4 scripts/synthesize.py --checkpoint G.pt --source_dir D --out_dir O   # one GPU per rank

Run it again with the same arguments to resume a killed run. Under torchrun (WORLD_SIZE set) each rank joins a
process group (NCCL on GPUs, else Gloo), samples its share on its own device, and rank 0 writes the manifest.
"""

from __future__ import annotations

import os

import fire
from echodiff.errors import run_cli
import torch
import torch.distributed as dist
from echodiff.generation.checkpoints import load_generator
from echodiff.generation.synthesis import generator_fn, synthesize_dataset
from echodiff.metrics.realism import camus_privacy_filter
from echodiff.samplers import ChurnSpec


def main(
    checkpoint: str,
    source_dir: str,
    out_dir: str,
    k: int = 5,
    sampler: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    split: str | list[str] = ("training", "validation"),
    stochastic: bool = False,
    augment: bool = True,
    resize: bool = True,
    batch_size: int = 8,
    device: str | None = None,
    progress: bool = True,
    privacy_filter: str | None = None,
    privacy_training_split: str = "training",
    privacy_heldout_split: str = "testing",
    privacy_image_size: int | None = None,
    privacy_percentile: float = 5.0,
) -> dict:
    """K augmented label maps per `split` map of `source_dir`, one generated image each, written to `out_dir`.

    `split` defaults to both the training and the validation split: the synthetic folder keeps them apart (synthetic
    validation images are made from the source's validation maps), so the downstream training configs, which select
    their best model on `validation`, run on it unchanged. `--split training` writes the training split only.

    `sampler` / `steps` default to the model's (Heun, 5 steps for the EDM family; DDPM over all T steps for sdm).
    `--stochastic` adds the paper's churn to the EDM-family samplers (`ChurnSpec.paper_defaults()`: S_churn 40,
    S_min 0.02, S_max 100, S_noise 1.003); the default samples the deterministic ODE, as the bundle's inference
    config does. `resize` brings the maps to the generator's image size (nearest); `--noresize` refuses maps of
    another size. `device` defaults to this rank's GPU, else CPU.

    `--privacy_filter CKPT` (off by default) drops every generated image closer to a training image than the
    `privacy_percentile`-th percentile of the real held-out images' distances, in the penultimate-layer features of
    the real-trained view classifier CKPT (echo_view_classification; input `privacy_image_size` px, default the
    generator's): training images = `privacy_training_split` of `source_dir` (the generator's training images),
    held-out = `privacy_heldout_split` (never trained on). The summary counts the dropped images (`dropped`).
    """
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if device is None and torch.cuda.is_available():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    device = device or "cpu"
    try:
        generator = load_generator(checkpoint, map_location=device)
        churn = ChurnSpec.paper_defaults() if stochastic and generator.scheduler is None else None
        generate = generator_fn(generator, sampler=sampler, steps=steps, churn=churn, device=device)
        privacy, privacy_info = None, None
        if privacy_filter is not None:
            privacy, privacy_info = camus_privacy_filter(
                privacy_filter, source_dir, privacy_image_size or generator.image_size, privacy_training_split,
                privacy_heldout_split, privacy_percentile, device=device,
            )
        return synthesize_dataset(
            source_dir, out_dir, generate, split=list(split) if not isinstance(split, str) else split, k=k, seed=seed, batch_size=batch_size, augment=augment,
            image_size=generator.image_size if resize else None, progress=progress,
            info={**generate.info, "checkpoint": os.path.abspath(checkpoint)}, privacy_filter=privacy,
            privacy_info=privacy_info,
        )
    finally:
        if distributed:
            dist.destroy_process_group()


if __name__ == "__main__":
    run_cli(lambda: fire.Fire(main))
