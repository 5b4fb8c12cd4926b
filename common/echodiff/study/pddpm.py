"""PD-DDPM study (Guo et al. 2022 on CAMUS; `scripts/pddpm_study.py` is its command line): Dice, Hausdorff and
seconds per image of the pre-segmentation alone, PD-DDPM over T' and ensemble sizes, the full T-step DDPM and DDIM
variants, all in one run, plus how well the ensemble uncertainty marks wrong pixels. Both models are trained with the
echo_pddpm_segmentation bundle's own configs; the methods then sample in this process on the same images with the same
seed. Writes `<workdir>/study.json` (rows with exactly ROW_KEYS; Dice x 100, Hausdorff in pixels of the label maps' own
grid or of metric_size), `<workdir>/study_uncertainty.json` (uncertainty vs error per sampled method) and
`<workdir>/study.md`.
"""


from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.bundle import run as bundle_run
from monai.data import DataLoader
from torch.utils.data import Subset

from echodiff.benchmarks.clock import synchronize
from echodiff.bundle import find_bundle_root
from echodiff.data.camus import holdout_view
from echodiff.data.phantom import make_phantom_camus
from echodiff.engines.segmentation_report import camus_scores, json_safe, uncertainty_error_stats
from echodiff.inferers import PDDPMInferer
from echodiff.io import atomic_write_text

__all__ = ["ROW_KEYS", "UNCERTAINTY_KEYS", "study", "study_plan"]

BUNDLE = "echo_pddpm_segmentation"
T_PRIMES = (50, 100, 200, 300, 500)
ENSEMBLES = (1, 3, 5, 10)
DDIM_VARIANTS = ((300, 10), (300, 50), (1000, 50), (1000, 100))  # (t_prime, steps) at T = 1000
ROW_KEYS = ("method", "t_prime", "ensemble", "steps", "dice_lv_endo", "dice_lv_epi", "dice_la", "dice_mean",
            "hd_lv_endo", "seconds_per_image", "device", "train_data", "eval_split", "n_images")
UNCERTAINTY_KEYS = ("uncertainty_auroc", "uncertainty_error_r", "uncertainty_wrong", "uncertainty_right")
TINY = {
    "image_size": [32, 32], "filters": [8, 16, 32], "num_train_timesteps": 10, "diffusion_channels": [8, 16],
    "attention_levels": [False, False], "num_res_blocks": 1, "num_head_channels": 8, "norm_num_groups": 8,
}


def _configs(*names: str) -> dict:
    root = Path(find_bundle_root(BUNDLE))
    return {"config_file": [str(root / "configs" / n) for n in names],
            "meta_file": str(root / "configs" / "metadata.json"), "logging_file": str(root / "configs" / "logging.conf")}


def _scaled(t_prime: int, num_train_timesteps: int) -> int:
    """A T' of the T = 1000 grid at another T (tiny runs), at least 1."""
    return max(1, round(t_prime * num_train_timesteps / 1000))


def study_plan(num_train_timesteps: int, t_primes=T_PRIMES, ensembles=ENSEMBLES, ddim=DDIM_VARIANTS) -> list[dict]:
    """The sampled methods: PD-DDPM over t_primes x ensembles (DDPM steps), plain DDPM (T' = T, ensemble 1 and the
    largest), DDIM (t_prime, steps) variants with the largest ensemble; T' values are scaled when T != 1000."""
    T = num_train_timesteps
    pddpm = sorted({_scaled(t, T) for t in t_primes} - {T})
    plan = [{"method": "pddpm", "t_prime": t, "ensemble": n, "step_rule": "ddpm", "steps": t}
            for t in pddpm for n in ensembles]
    plan += [{"method": "ddpm", "t_prime": T, "ensemble": n, "step_rule": "ddpm", "steps": T}
             for n in sorted({1, max(ensembles)})]
    for t, steps in ddim:
        t_prime = _scaled(t, T)
        plan.append({"method": "ddim", "t_prime": t_prime, "ensemble": max(ensembles), "step_rule": "ddim",
                     "steps": min(_scaled(steps, T), t_prime)})
    return list({json.dumps(p, sort_keys=True): p for p in plan}.values())


def _evaluate(predict, loader: DataLoader, device: torch.device) -> tuple[list[dict], float]:
    """Per-image scores of `predict(images) -> (class scores, uncertainty or None)` and its seconds per image."""
    rows, seconds = [], 0.0
    for batch in loader:
        images, labels = batch["image"].to(device), batch["label"]
        synchronize(device)
        started = time.perf_counter()
        scores, uncertainty = predict(images)
        synchronize(device)
        seconds += time.perf_counter() - started
        for i in range(images.shape[0]):
            row = camus_scores(scores[i].float(), labels[i])
            if uncertainty is not None:
                row.update(uncertainty_error_stats(uncertainty[i].float(), scores[i].float(), labels[i]))
            rows.append(row)
    return rows, seconds / max(len(rows), 1)


def _mean(rows: list[dict], key: str) -> float:
    values = np.asarray([row[key] for row in rows], dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _table(rows: list[dict], keys: tuple[str, ...]) -> str:
    header = ("method", "t_prime", "ensemble", "steps", *keys)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 4 + "---:|" * len(keys)]
    for row in rows:
        cells = [str(row[k]) if row[k] is not None else "-" for k in header[:4]]
        cells += [f"{row[k]:.3g}" if isinstance(row[k], float) else "-" for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def study(
    dataset_dir: str | None = None,
    workdir: str = "runs/pddpm_study",
    train_split: str = "training",
    eval_split: str = "validation",
    tiny: bool = False,
    segmenter_epochs: int = 100,
    pddpm_epochs: int = 500,
    batch_size: int = 8,
    max_images: int | None = None,
    metric_size: int | None = None,
    t_primes: tuple[int, ...] = T_PRIMES,
    ensembles: tuple[int, ...] | None = None,
    ddim: tuple[tuple[int, int], ...] = DDIM_VARIANTS,
    seed: int = 0,
    overrides: dict | None = None,
    pddpm_overrides: dict | None = None,
    num_workers: int = 2,
    holdout: int | None = None,
) -> list[dict]:
    """Train the segmenter and the mask diffusion model on `train_split` of `dataset_dir` (default: a phantom written
    into `workdir`), then score every method of `study_plan` on `eval_split`; print the tables, write the JSON files.

    `t_primes` and `ddim` (t_prime, steps) are given at T = 1000 and scaled to the scheduler's T. `tiny`: phantom,
    32 px, tiny networks, T = 10, one epoch each, ensembles (1, 3) unless given, 4 evaluation images unless given.
    `overrides`: config keys for both bundles' configs (e.g. `{"image_size": [64, 64], "filters": [16, 32, 64, 128]}`
    for a CPU run); `pddpm_overrides`: keys for the mask diffusion training only (e.g. its `learning_rate`).
    `holdout`: N patients of `train_split` held out for the segmenter's checkpoint selection, so that nothing is chosen
    on `eval_split` (`echodiff.data.camus.holdout_view` in `<workdir>/dataset`: training = the rest, validation = the N,
    testing = `eval_split`); without it the segmenter selects its best epoch on the bundle's `val_split`.
    """
    work = Path(workdir)
    overrides = {**(TINY if tiny else {}), **(overrides or {})}
    ensembles = tuple(ensembles or ((1, 3) if tiny else ENSEMBLES))
    if tiny:
        segmenter_epochs, pddpm_epochs, max_images = 1, 1, max_images or 4
    if dataset_dir is None:
        phantom = work / "phantom_camus"
        if not phantom.is_dir():
            make_phantom_camus(phantom, n_train=4, n_val=2, n_test=2, size=64, seed=seed)
        dataset_dir = str(phantom)
    train_data, evaluated = f"{Path(dataset_dir).name}/{train_split}", eval_split
    if holdout is not None:
        train_data += f" minus {holdout} held-out patients"
        dataset_dir = str(holdout_view(dataset_dir, work / "dataset", holdout, seed, train_split, eval_split))
        train_split, eval_split = "training", "testing"
    common = {"dataset_dir": dataset_dir, "num_workers": 0 if tiny else num_workers, **overrides}
    models = work / "models"
    bundle_run("training", **_configs("train.json"), ckpt_dir=str(models), output_dir=str(work / "eval"),
               train_split=train_split, max_epochs=segmenter_epochs, batch_size=batch_size, **common)
    bundle_run("training", **_configs("train_pddpm.json"), ckpt_dir=str(models), run_dir=str(work / "runs"),
               train_split=train_split, max_epochs=pddpm_epochs, batch_size=batch_size,
               **{**common, **(pddpm_overrides or {})})

    parser = ConfigParser()
    parser.read_config(_configs("inference.json", "inference_pddpm.json", "evaluate.json")["config_file"])
    grid = {} if metric_size is None else {"metric_size": [metric_size, metric_size]}  # default: the label maps' own
    parser.update({**common, **grid, "split": eval_split, "batch_size": batch_size,
                   "ckpt_path": str(models / "pddpm.pt"), "presegmentation_ckpt": str(models / "model.pt")})
    parser.parse()
    device = parser.get_parsed_content("device")
    segmenter, network = parser.get_parsed_content("presegmentation"), parser.get_parsed_content("network")
    for model, path in ((segmenter, models / "model.pt"), (network, models / "pddpm.pt")):
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.to(device).eval()
    scheduler = parser.get_parsed_content("noise_scheduler")
    dataset = parser.get_parsed_content("dataset")
    if max_images is not None and max_images < len(dataset):  # evenly spread over the split, not its first patients
        dataset = Subset(dataset, np.linspace(0, len(dataset) - 1, max_images).round().astype(int).tolist())
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=common["num_workers"])
    context = {
        "device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"cpu ({torch.get_num_threads()} threads)"),
        "train_data": train_data, "eval_split": evaluated,
    }

    def presegment(images: torch.Tensor) -> tuple[torch.Tensor, None]:
        with torch.no_grad():
            return torch.softmax(segmenter(images), dim=1), None

    methods = [({"method": "preseg", "t_prime": None, "ensemble": None, "steps": None}, presegment)]
    for entry in study_plan(scheduler.num_train_timesteps, t_primes, ensembles, ddim):
        inferer = PDDPMInferer(
            scheduler, presegmentation=segmenter, t_prime=entry["t_prime"], ensemble=entry["ensemble"],
            step_rule=entry["step_rule"], steps=entry["steps"], num_classes=parser["num_classes"],
            size_divisible=parser.get_parsed_content("size_divisible"), uncertainty=parser["uncertainty"],
        )
        generator = torch.Generator(device).manual_seed(seed)

        def sample(images: torch.Tensor, inferer: PDDPMInferer = inferer, generator: torch.Generator = generator):
            out = inferer(images, network, generator=generator)
            return out["pred"], out["uncertainty"]

        methods.append(({k: entry[k] for k in ("method", "t_prime", "ensemble", "steps")}, sample))

    rows, uncertainty_rows = [], []
    for settings, predict in methods:
        per_image, seconds = _evaluate(predict, loader, device)
        row = {**settings, **{k: _mean(per_image, k) for k in ROW_KEYS[4:9]}, "seconds_per_image": seconds,
               **context, "n_images": len(per_image)}
        rows.append({k: row[k] for k in ROW_KEYS})
        if settings["method"] != "preseg":
            uncertainty_rows.append({**settings, **{k: _mean(per_image, k) for k in UNCERTAINTY_KEYS}})
        print(json.dumps(json_safe(rows[-1])))

    report = (f"## PD-DDPM study: {context['train_data']} -> {evaluated}, {len(rows)} methods on "
              f"{rows[0]['n_images']} images, {context['device']}\n\n{_table(rows, ROW_KEYS[4:10])}\n\n"
              f"### Does high uncertainty mark wrong pixels? (per-image means)\n\n"
              f"{_table(uncertainty_rows, UNCERTAINTY_KEYS)}\n")
    for name, content in (("study.json", json.dumps(json_safe(rows), indent=2) + "\n"),
                          ("study_uncertainty.json", json.dumps(json_safe(uncertainty_rows), indent=2) + "\n"),
                          ("study.md", report)):
        atomic_write_text(work / name, content)
    print(report)
    return rows
