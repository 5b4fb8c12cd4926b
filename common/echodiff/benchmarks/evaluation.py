"""Segmenter evaluation cost against inference of the same images, in one run (`scripts/benchmark_evaluation.py` is
its command line): echo_pddpm_segmentation's `inference.json` (label maps and overlays written per image) and
`inference.json` + `evaluate.json` (Dice, Hausdorff, report) over the same split with the same checkpoint, alternately
`repeats` times; the median seconds per image of each and `evaluation_over_inference` (target: at most 2)."""


from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch
from monai.bundle import run as bundle_run

from echodiff.bundle import find_bundle_root
from echodiff.data.camus import list_camus
from echodiff.data.phantom import make_phantom_camus
from echodiff.io import atomic_write_json

__all__ = ["evaluation_benchmark"]


def _bundle(run_id: str, configs: list[str], **overrides: object) -> float:
    """Wall-clock seconds of one `monai.bundle run` of the segmentation bundle's `configs`."""
    bundle = Path(find_bundle_root("echo_pddpm_segmentation"))
    start = time.perf_counter()
    bundle_run(run_id, config_file=[str(bundle / "configs" / name) for name in configs],
               meta_file=str(bundle / "configs" / "metadata.json"), bundle_root=str(bundle), **overrides)  # fmt: skip
    return time.perf_counter() - start


def evaluation_benchmark(
    dataset_dir: str | None = None,
    split: str = "testing",
    ckpt_path: str | None = None,
    image_size: int = 64,
    filters: tuple[int, ...] = (16, 32, 64, 128),
    phantom_patients: int = 25,
    train_epochs: int = 3,
    repeats: int = 2,
    batch_size: int = 16,
    num_workers: int = 0,
    workdir: str = "runs/benchmark_evaluation",
) -> list[dict]:
    """Time inference and evaluation of `split` of `dataset_dir` (default: a 224 px phantom with `phantom_patients`
    testing patients) with `ckpt_path` (default: trained here); write and print the table."""
    work = Path(workdir)
    if dataset_dir is None:
        phantom = work / "camus"
        dataset_dir = str(phantom if phantom.is_dir() else make_phantom_camus(phantom, n_train=8, n_val=2,
                                                                              n_test=phantom_patients, size=224))
    common = {"dataset_dir": dataset_dir, "image_size": [image_size, image_size], "filters": list(filters),
              "num_workers": num_workers, "batch_size": batch_size}  # fmt: skip
    if ckpt_path is None and not (work / "models" / "model.pt").is_file():
        _bundle("training", ["train.json"], ckpt_dir=str(work / "models"), output_dir=str(work / "train_eval"),
                max_epochs=train_epochs, **common)  # fmt: skip
    ckpt_path = ckpt_path or str(work / "models" / "model.pt")
    runs = {
        "inference": lambda: _bundle("run", ["inference.json"], split=split, ckpt_path=ckpt_path,
                                     output_dir=str(work / "inference"), **common),
        "evaluation": lambda: _bundle("evaluating", ["inference.json", "evaluate.json"], split=split,
                                      ckpt_path=ckpt_path, output_dir=str(work / "evaluation"), **common),
    }  # fmt: skip
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            seconds[name].append(run())
    n_images = len(list_camus(dataset_dir, split))
    median = {name: statistics.median(values) for name, values in seconds.items()}
    report = json.loads((work / "evaluation" / "segmentation_report.json").read_text())
    rows = [{
        "dataset_dir": dataset_dir, "split": split, "n_images": n_images, "image_size": image_size,
        "metric_size": report["metric_size"], "inference_s_per_image": median["inference"] / n_images,
        "evaluation_s_per_image": median["evaluation"] / n_images,
        "evaluation_over_inference": median["evaluation"] / median["inference"], "repeats": repeats,
        "torch_threads": torch.get_num_threads(), "num_workers": num_workers, "machine": platform.processor() or
        platform.machine(),
    }]  # fmt: skip
    atomic_write_json(work / "benchmark_evaluation.json", rows)
    print("| images | grid (metric_size) | inference s/image | evaluation s/image | evaluation / inference |")
    print("|---:|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['n_images']} | {row['metric_size']} | {row['inference_s_per_image']:.4f} | "
              f"{row['evaluation_s_per_image']:.4f} | {row['evaluation_over_inference']:.2f} |")  # fmt: skip
    return rows
