"""End-to-end pipeline on a CAMUS-layout folder (default: the built-in phantom), through the bundles' own configs.

    python scripts/pipeline.py demo                      # phantom -> train view classifier -> bootstrap accuracy
    python scripts/pipeline.py demo --dataset_dir DIR    # the same on a real or synthetic CAMUS folder

Each stage is exactly what a user runs with `python -m monai.bundle run ...`; this script only chains them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import fire
from echodiff.bundle import find_bundle_root
from echodiff.data.phantom import make_phantom_camus
from monai.bundle import run as bundle_run


def _bundle_configs(bundle: str, *names: str) -> dict[str, str]:
    root = Path(find_bundle_root(bundle))
    return {
        "config_file": [str(root / "configs" / n) for n in names],
        "meta_file": str(root / "configs" / "metadata.json"),
        "logging_file": str(root / "configs" / "logging.conf"),
    }


def view_classification(
    dataset_dir: str, workdir: str, image_size: int = 64, epochs: int = 10, batch_size: int = 16,
    eval_split: str = "testing",
) -> dict:
    """Train echo_view_classification on the `training` split (best model by `validation` accuracy), then report
    bootstrap accuracy on `eval_split`."""
    common = {"dataset_dir": dataset_dir, "image_size": [image_size, image_size], "batch_size": batch_size}
    ckpt_dir, out_dir = f"{workdir}/view_classification/models", f"{workdir}/view_classification/eval"
    bundle_run("training", **_bundle_configs("echo_view_classification", "train.json"),
               ckpt_dir=ckpt_dir, output_dir=out_dir, max_epochs=epochs, **common)
    bundle_run("evaluating", **_bundle_configs("echo_view_classification", "inference.json", "evaluate.json"),
               ckpt_path=f"{ckpt_dir}/model.pt", output_dir=out_dir, split=eval_split, **common)
    return json.loads(Path(out_dir, "bootstrap_accuracy.json").read_text())


def demo(workdir: str = "runs/demo", dataset_dir: str | None = None, image_size: int = 64, epochs: int = 20,
         batch_size: int = 8, seed: int = 0) -> None:
    """Run the whole pipeline on `dataset_dir` (default: a phantom built in `workdir`) and print a summary table."""
    start = time.time()
    if dataset_dir is None:
        dataset_dir = str(make_phantom_camus(f"{workdir}/phantom_camus", n_train=24, n_val=6, n_test=8,
                                             size=image_size, seed=seed))
    results = {"view_classification": view_classification(dataset_dir, workdir, image_size=image_size, epochs=epochs,
                                                         batch_size=batch_size)}
    vc = results["view_classification"]
    print("\n| stage | split | n | accuracy mean | median | std |\n|---|---|---|---|---|---|")
    print(f"| view classification | {vc['split']} | {vc['n_images']} | {vc['accuracy_mean']:.3f} "
          f"| {vc['accuracy_median']:.3f} | {vc['accuracy_std']:.3f} |")
    print(f"\ndone in {time.time() - start:.0f} s; outputs under {workdir}")
    Path(workdir, "summary.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    fire.Fire({"demo": demo, "view_classification": view_classification})
