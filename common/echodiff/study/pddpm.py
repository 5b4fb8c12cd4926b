"""PD-DDPM study (Guo et al. 2022 on CAMUS; `scripts/pddpm_study.py` is its command line): Dice, Hausdorff, network
calls and seconds per image of the pre-segmentation alone, PD-DDPM over T' and ensemble sizes, the full T-step DDPM and
DDIM variants, all in one run, plus how well the ensemble uncertainty marks wrong pixels. Both models are trained with
the echo_pddpm_segmentation bundle's own configs; the methods then sample in this process on the same images with the
same seed. With held-out training patients (`holdout`), T' and the ensemble size are chosen on them, never on the
evaluated split, and every row is then scored once on the evaluated split. Writes `<workdir>/study.json` (rows with
exactly ROW_KEYS; Dice x 100, Hausdorff in pixels of the label maps' own grid or of metric_size; the chosen row has
`"selected": true`), `<workdir>/study_selection.json` (the held-out scores the choice was made on),
`<workdir>/study_uncertainty.json` (uncertainty vs error per sampled method) and `<workdir>/study.md`.
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
from echodiff.errors import ConfigValueError, MissingFileError, as_flag
from echodiff.inferers import PDDPMInferer
from echodiff.io import atomic_write_text

__all__ = ["ROW_KEYS", "SELECTION_KEYS", "UNCERTAINTY_KEYS", "network_calls", "select_setting", "study", "study_plan"]

BUNDLE = "echo_pddpm_segmentation"
T_PRIMES = (50, 100, 200, 300, 500)
ENSEMBLES = (1, 3, 5, 10)
DDIM_VARIANTS = ((300, 10), (300, 50), (1000, 50), (1000, 100))  # (t_prime, steps) at T = 1000
SETTING_KEYS = ("method", "t_prime", "ensemble", "steps", "network_calls")
SCORE_KEYS = ("dice_lv_endo", "dice_lv_epi", "dice_la", "dice_mean", "hd_lv_endo")
ROW_KEYS = (*SETTING_KEYS, *SCORE_KEYS, "uncertainty_auroc", "seconds_per_image", "device", "train_data", "eval_split",
            "n_images", "selected")
UNCERTAINTY_KEYS = ("uncertainty_auroc", "uncertainty_error_r", "uncertainty_wrong", "uncertainty_right")
SELECTION_KEYS = (*SETTING_KEYS, "dice_mean", "uncertainty_auroc", "n_images", "selected")
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


def study_plan(
    num_train_timesteps: int, t_primes=T_PRIMES, ensembles=ENSEMBLES, ddim=DDIM_VARIANTS, ddpm_ensembles=None
) -> list[dict]:
    """The sampled methods: PD-DDPM over t_primes x ensembles (DDPM steps), plain DDPM (T' = T, `ddpm_ensembles`,
    default ensemble 1 and the largest), DDIM (t_prime, steps) variants with the largest ensemble; T' values are scaled
    when T != 1000."""
    T = num_train_timesteps
    pddpm = sorted({_scaled(t, T) for t in t_primes} - {T})
    plan = [{"method": "pddpm", "t_prime": t, "ensemble": n, "step_rule": "ddpm", "steps": t}
            for t in pddpm for n in ensembles]
    plan += [{"method": "ddpm", "t_prime": T, "ensemble": n, "step_rule": "ddpm", "steps": T}
             for n in sorted(ddpm_ensembles or {1, max(ensembles)})]
    for t, steps in ddim:
        t_prime = _scaled(t, T)
        plan.append({"method": "ddim", "t_prime": t_prime, "ensemble": max(ensembles), "step_rule": "ddim",
                     "steps": min(_scaled(steps, T), t_prime)})
    return list({json.dumps(p, sort_keys=True): p for p in plan}.values())


def network_calls(entry: dict, num_train_timesteps: int, conditioned: bool = False) -> int:
    """Network evaluations per image of a `study_plan` entry: ensemble x steps of the mask denoiser, plus one of the
    pre-segmentation network when the method uses it (T' < T, or a denoiser conditioned on it)."""
    uses_presegmentation = entry["t_prime"] < num_train_timesteps or conditioned
    return entry["ensemble"] * entry["steps"] + int(uses_presegmentation)


def select_setting(rows: list[dict]) -> dict:
    """The PD-DDPM row chosen on held-out training patients: the highest mean Dice, ties to fewer network calls, among
    the ensembles of at least 2 samples (PD-DDPM's output is an ensemble mean and its spread the uncertainty map,
    Guo et al. 2022), or among all PD-DDPM rows when none has 2."""
    pddpm = [row for row in rows if row["method"] == "pddpm"]
    candidates = [row for row in pddpm if row["ensemble"] >= 2] or pddpm
    if not candidates:
        raise ConfigValueError("no PD-DDPM row to select from; expected t_primes with at least one T' below T")
    return max(candidates, key=lambda row: (np.nan_to_num(row["dice_mean"], nan=-np.inf), -row["network_calls"]))


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


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "**yes**" if value else ""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _table(rows: list[dict], keys: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(keys) + " |", "|" + "".join("---|" if k in SETTING_KEYS else "---:|" for k in keys)]
    lines += ["| " + " | ".join(_cell(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def _parsed(updates: dict) -> ConfigParser:
    """The bundle's PD-DDPM evaluation configs (inference + inference_pddpm + evaluate) with `updates`, parsed."""
    parser = ConfigParser()
    parser.read_config(_configs("inference.json", "inference_pddpm.json", "evaluate.json")["config_file"])
    parser.update(updates)
    parser.parse()
    return parser


def _loader(parser: ConfigParser, max_images: int | None, batch_size: int, num_workers: int) -> DataLoader:
    """The images of the parsed config's `split`; `max_images` of them evenly spread over it (not its first
    patients) when given, else all."""
    dataset = parser.get_parsed_content("dataset")
    if max_images is not None and max_images < len(dataset):
        dataset = Subset(dataset, np.linspace(0, len(dataset) - 1, max_images).round().astype(int).tolist())
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def study(
    dataset_dir: str | None = None,
    workdir: str = "runs/pddpm_study",
    train_split: str = "training",
    eval_split: str = "validation",
    tiny: bool = False,
    segmenter_epochs: int = 100,
    pddpm_epochs: int = 500,
    segmenter_minutes: float | None = None,
    pddpm_minutes: float | None = None,
    batch_size: int = 8,
    max_images: int | None = None,
    max_selection_images: int | None = None,
    metric_size: int | None = None,
    t_primes: tuple[int, ...] = T_PRIMES,
    ensembles: tuple[int, ...] | None = None,
    ddpm_ensembles: tuple[int, ...] | None = None,
    ddim: tuple[tuple[int, int], ...] = DDIM_VARIANTS,
    seed: int = 0,
    overrides: dict | None = None,
    pddpm_overrides: dict | None = None,
    num_workers: int = 2,
    holdout: int | None = None,
    train: bool = True,
) -> list[dict]:
    """Train the segmenter and the mask diffusion model on `train_split` of `dataset_dir` (default: a phantom written
    into `workdir`), then score every method of `study_plan` on all images of `eval_split`; print the tables, write
    the JSON files.

    `t_primes` and `ddim` (t_prime, steps) are given at T = 1000 and scaled to the scheduler's T. `tiny`: phantom,
    32 px, tiny networks, T = 10, one epoch each, ensembles (1, 3) unless given, 4 evaluation images unless given.
    `segmenter_minutes` / `pddpm_minutes`: wall-clock budget of each training (the bundles' `time_limit_minutes`: it
    stops at an epoch boundary; the epochs are then a ceiling). `max_images`: score only that many images of
    `eval_split`, evenly spread (default: all; `n_images` in every row says how many).
    `overrides`: config keys for both bundles' configs (e.g. `{"image_size": [64, 64], "filters": [16, 32, 64, 128]}`
    for a CPU run); `pddpm_overrides`: keys of the mask diffusion model, for its training and its sampling (e.g.
    `{"learning_rate": 3e-4, "refine_presegmentation": true}`).
    `holdout`: N patients of `train_split` held out (`echodiff.data.camus.holdout_view` in `<workdir>/dataset`:
    training = the rest, validation = the N, testing = `eval_split`). The segmenter picks its best epoch on them, and
    T' and the ensemble size are chosen on them (`select_setting` over the PD-DDPM rows, `max_selection_images` of
    their images, default all); then every method is scored once on `eval_split` and the chosen row is marked
    `"selected": true`. Without it the segmenter selects on the bundle's `val_split` and no row is selected.
    `train=False` samples with the models an earlier run left in `<workdir>/models` (a rerun with training would resume
    it, and a time-limited one train for another budget).
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
    pddpm = {**common, **(pddpm_overrides or {})}
    models = work / "models"
    if as_flag(train, "train"):
        bundle_run("training", **_configs("train.json"), ckpt_dir=str(models), output_dir=str(work / "eval"),
                   train_split=train_split, max_epochs=segmenter_epochs, time_limit_minutes=segmenter_minutes,
                   batch_size=batch_size, **common)
        bundle_run("training", **_configs("train_pddpm.json"), ckpt_dir=str(models), run_dir=str(work / "runs"),
                   train_split=train_split, max_epochs=pddpm_epochs, time_limit_minutes=pddpm_minutes,
                   batch_size=batch_size, **pddpm)
    for path in (models / "model.pt", models / "pddpm.pt"):
        if not path.is_file():
            raise MissingFileError(f"{path} does not exist; expected the models of an earlier run (or --train true)")

    grid = {} if metric_size is None else {"metric_size": [metric_size, metric_size]}  # default: the label maps' own
    updates = {**pddpm, **grid, "batch_size": batch_size, "ckpt_path": str(models / "pddpm.pt"),
               "presegmentation_ckpt": str(models / "model.pt")}
    parser = _parsed({**updates, "split": eval_split})
    device = parser.get_parsed_content("device")
    segmenter, network = parser.get_parsed_content("presegmentation"), parser.get_parsed_content("network")
    for model, path in ((segmenter, models / "model.pt"), (network, models / "pddpm.pt")):
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.to(device).eval()
    scheduler = parser.get_parsed_content("noise_scheduler")
    conditioned = bool(parser.get_parsed_content("refine_presegmentation"))
    T = scheduler.num_train_timesteps
    context = {
        "device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"cpu ({torch.get_num_threads()} threads)"),
        "train_data": train_data, "eval_split": evaluated,
    }

    def presegment(images: torch.Tensor) -> tuple[torch.Tensor, None]:
        with torch.no_grad():
            return torch.softmax(segmenter(images), dim=1), None

    def sampler(entry: dict):
        """`predict` of one plan entry, with a fresh generator seeded with `seed` (every method sees the same noise)."""
        inferer = PDDPMInferer(
            scheduler, presegmentation=segmenter, t_prime=entry["t_prime"], ensemble=entry["ensemble"],
            step_rule=entry["step_rule"], steps=entry["steps"], num_classes=parser["num_classes"],
            size_divisible=parser.get_parsed_content("size_divisible"), uncertainty=parser["uncertainty"],
            condition_on_presegmentation=conditioned,
        )
        generator = torch.Generator(device).manual_seed(seed)

        def sample(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = inferer(images, network, generator=generator)
            return out["pred"], out["uncertainty"]

        return sample

    plan = [{**entry, "network_calls": network_calls(entry, T, conditioned)}
            for entry in study_plan(T, t_primes, ensembles, ddim, ddpm_ensembles)]
    selection_rows, chosen = [], None
    if holdout is not None:
        held_out = _loader(_parsed({**updates, "split": "validation"}), max_selection_images, batch_size,
                           common["num_workers"])
        for entry in (e for e in plan if e["method"] == "pddpm"):
            per_image, _ = _evaluate(sampler(entry), held_out, device)
            selection_rows.append({**{k: entry[k] for k in SETTING_KEYS}, "dice_mean": _mean(per_image, "dice_mean"),
                                   "uncertainty_auroc": _mean(per_image, "uncertainty_auroc"),
                                   "n_images": len(per_image), "selected": False})
            print(json.dumps(json_safe(selection_rows[-1])))
        chosen = select_setting(selection_rows)
        chosen["selected"] = True

    methods = [({"method": "preseg", "t_prime": None, "ensemble": None, "steps": None, "network_calls": 1}, presegment)]
    methods += [({k: entry[k] for k in SETTING_KEYS}, sampler(entry)) for entry in plan]
    loader = _loader(parser, max_images, batch_size, common["num_workers"])
    rows, uncertainty_rows = [], []
    for settings, predict in methods:
        per_image, seconds = _evaluate(predict, loader, device)
        sampled = settings["method"] != "preseg"
        row = {**settings, **{k: _mean(per_image, k) for k in SCORE_KEYS},
               "uncertainty_auroc": _mean(per_image, "uncertainty_auroc") if sampled else None,
               "seconds_per_image": seconds, **context, "n_images": len(per_image),
               "selected": chosen is not None and all(chosen[k] == settings[k] for k in SETTING_KEYS)}
        rows.append({k: row[k] for k in ROW_KEYS})
        if sampled:
            uncertainty_rows.append({**settings, **{k: _mean(per_image, k) for k in UNCERTAINTY_KEYS}})
        print(json.dumps(json_safe(rows[-1])))

    selection = ("no held-out patients (`holdout`): no row selected" if chosen is None else
                 f"T' = {chosen['t_prime']}, ensemble {chosen['ensemble']} (the `selected` row), chosen on "
                 f"{chosen['n_images']} images of {holdout} held-out training patients:\n\n"
                 f"{_table(selection_rows, SELECTION_KEYS)}")
    report = (f"## PD-DDPM study: {context['train_data']} -> {evaluated}, {len(rows)} methods on "
              f"{rows[0]['n_images']} images, {context['device']}\n\n"
              f"{_table(rows, (*SETTING_KEYS, *SCORE_KEYS, 'uncertainty_auroc', 'seconds_per_image', 'selected'))}\n\n"
              f"### Selection\n\n{selection}\n\n"
              f"### Does high uncertainty mark wrong pixels? (per-image means)\n\n"
              f"{_table(uncertainty_rows, (*SETTING_KEYS, *UNCERTAINTY_KEYS))}\n")
    files = {"study.json": rows, "study_uncertainty.json": uncertainty_rows}
    if chosen is not None:
        files["study_selection.json"] = [{k: row[k] for k in SELECTION_KEYS} for row in selection_rows]
    for name, content in files.items():
        atomic_write_text(work / name, json.dumps(json_safe(content), indent=2) + "\n")
    atomic_write_text(work / "study.md", report)
    print(report)
    return rows
