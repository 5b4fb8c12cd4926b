"""The study's report: `report.json` (the keys below), `report.md` and PNG figures in `<workdir>/report/`.

report.json: budget_minutes, hardware, dataset_dir, test_dir, test_split, image_size, code (echodiff version and
source digest, torch, MONAI), stages (name -> seconds over all sittings), stage_threads (name -> torch threads), generator (model, sampler, steps, nfe,
images_per_s, train_minutes, label_fidelity, view_fidelity: accuracy, accuracy_2CH, accuracy_4CH and n_images of the
real-trained view classifier on the generated test images, each asked for in its map's true view), fidelity_vs_steps (rows sampler, steps, nfe, dice_mean), segmentation
(real / synthetic: dice_lv_endo, dice_lv_epi, dice_la, dice_mean, hd_lv_endo, n_images, ci95 {Dice key: [low, high]};
real also seeds [one such row per seed, with its seed] and across_seeds {key: mean, std, min, max}; synthetic_minus_real
{Dice key: difference, ci95, tie}), view_classification (real / synthetic: accuracy, accuracy_mean, accuracy_std,
n_images, ci95 {accuracy}; real.seeds, real.across_seeds and synthetic_minus_real {accuracy} likewise), plus
autoencoder_ceiling, autoencoder_health and autoencoder_health_curve (empty for a pixel-space generator),
label_fidelity_curve, fingerprints, runs (stage -> run id) and
settings. Dice x 100; Hausdorff in pixels of the test label grid. Intervals: patient-level bootstrap
(`echodiff.metrics.patient_bootstrap`); "real" is the first seed's model, the paired differences pair the same images.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from echodiff.engines.segmentation_report import json_safe  # noqa: E402
from echodiff.generation.fidelity import DICE_KEYS  # noqa: E402
from echodiff.io import atomic_write  # noqa: E402
from echodiff.metrics.bootstrap import is_tie, patient_bootstrap  # noqa: E402
from echodiff.study.tables import fmt_value, interval_text, markdown_table, verdict_text  # noqa: E402

__all__ = ["SEGMENTATION_KEYS", "classification_row", "paired_difference", "segmentation_row", "write_report"]

SEGMENTATION_KEYS = (*DICE_KEYS, "hd_lv_endo")
VIEW_FIDELITY_KEYS = ("accuracy", "accuracy_2CH", "accuracy_4CH", "n_images")
CLASSIFICATION_KEYS = ("accuracy", "accuracy_mean", "accuracy_std")


def segmentation_row(report: Mapping) -> dict:
    metrics = report["metrics"]
    return {**{key: metrics[key]["mean"] for key in SEGMENTATION_KEYS}, "n_images": report["n_images"],
            "ci95": {key: metrics[key]["ci95"] for key in DICE_KEYS}}  # fmt: skip


def classification_row(report: Mapping) -> dict:
    return {**{key: report[key] for key in (*CLASSIFICATION_KEYS, "n_images")},
            "ci95": {"accuracy": report["accuracy_ci95"]}}  # fmt: skip


def _with_seeds(rows: list[dict], seeds: list[int], keys: tuple[str, ...]) -> dict:
    """The first seed's row, with every seed's row (`seeds`) and the mean / std / min / max of `keys` over seeds."""
    across = {}
    for key in keys:
        values = np.array([row[key] for row in rows], dtype=np.float64)
        across[key] = {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
                       "max": float(values.max())}  # fmt: skip
    return {**rows[0], "seeds": [{"seed": seed, **row} for seed, row in zip(seeds, rows)], "across_seeds": across}


def paired_difference(real: list[dict], synthetic: list[dict], key: str) -> dict:
    """Synthetic minus real `key` on the same test images (per-image rows with image and patient), its patient-level
    95 % interval, and whether that interval contains 0 (a tie)."""
    real_by_image = {row["image"]: row for row in real}
    differences = [_number(row[key]) - _number(real_by_image[row["image"]][key]) for row in synthetic]
    interval = patient_bootstrap(differences, [row["patient"] for row in synthetic])
    return {"difference": interval["mean"], "ci95": interval["ci95"], "tie": is_tie(interval["ci95"])}


def _number(value: object) -> float:
    """A per-image value as a float: a correct/wrong flag as 1/0, a JSON null (nan written strictly) as nan."""
    return float("nan") if value is None else float(value)


def _save(fig: plt.Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"), suffix=".png")
    plt.close(fig)


def _figures(folder: Path, report: dict) -> list[str]:
    written = []
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for sampler in dict.fromkeys(r["sampler"] for r in report["fidelity_vs_steps"]):
        rows = [r for r in report["fidelity_vs_steps"] if r["sampler"] == sampler]
        ax.plot([r["nfe"] for r in rows], [r["dice_mean"] for r in rows], "o-", label=sampler)
    ax.set(xscale="log", xlabel="network calls per image (NFE)", ylabel="label fidelity, mean Dice",
           title="label fidelity vs sampler steps")  # fmt: skip
    ax.legend()
    _save(fig, folder / "fidelity_vs_steps.png")
    written.append("fidelity_vs_steps.png")

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    width = 0.38
    for i, source in enumerate(("real", "synthetic")):
        values = [report["segmentation"][source][k] for k in DICE_KEYS]
        ax.bar([j + (i - 0.5) * width for j in range(len(DICE_KEYS))], values, width, label=f"trained on {source}")
    ax.set_xticks(range(len(DICE_KEYS)), [k.replace("dice_", "") for k in DICE_KEYS])
    ax.set(ylabel="Dice x 100 on the test split", ylim=(0, 100), title="segmenter: real vs synthetic training data")
    ax.legend(loc="lower right")
    _save(fig, folder / "segmentation_dice.png")
    written.append("segmentation_dice.png")

    curve = report["label_fidelity_curve"]
    if curve:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for key in DICE_KEYS:
            ax.plot([r["iteration"] for r in curve], [r[key] for r in curve], label=key)
        ax.set(xlabel="diffusion training iteration", ylabel="label fidelity (Dice x 100)",
               title="label fidelity during generator training")  # fmt: skip
        ax.legend()
        _save(fig, folder / "label_fidelity_curve.png")
        written.append("label_fidelity_curve.png")
    return written


def _reference_section(report: Mapping) -> list[str]:
    """Markdown lines: label fidelity of the real test images (reference) and, for a latent generator, of the
    Gamma-VAE's reconstructions (its ceiling) with the share of latents the diffusion mapping clips."""
    ceiling = report["autoencoder_ceiling"]
    if not ceiling:
        return ["Reference: the real test images through the same segmenter:", "",
                markdown_table([{"input": "real image", **report["real_images_fidelity"]}], ["input", *DICE_KEYS]), ""]
    return [
        "Ceiling and reference: the Gamma-VAE's reconstructions of the real test images, and the real images "
        "themselves, through the same segmenter:",
        "",
        markdown_table([{"input": "Gamma-VAE reconstruction", **ceiling}, {"input": "real image", **report["real_images_fidelity"]}],
               ["input", "psnr", *DICE_KEYS]),
        "",
        "Share of in-sector Gamma-VAE latents clipped by the diffusion mapping (z > 1): "
        f"{fmt_value(ceiling.get('latent_clipped_fraction'), 4)}",
        "",
        *_health_lines(report.get("autoencoder_health", {})),
    ]  # fmt: skip


def _health_lines(health: Mapping) -> list[str]:
    """Markdown lines: the kept Gamma-VAE's latent health on the held-out training patients' images."""
    if not health:
        return []
    return [
        "Latent health of the kept Gamma-VAE on the held-out training patients' images "
        "(`echodiff.generation.latent_health`; limits checked before latent diffusion): PSNR "
        f"{fmt_value(health['psnr'], 1)} dB, clipped fraction {fmt_value(health['latent_clipped_fraction'], 4)}, per-channel "
        f"spread {', '.join(fmt_value(v, 3) for v in health['channel_spread'])}, per-channel mean "
        f"{', '.join(fmt_value(v, 3) for v in health['channel_mean'])}, saturated encoder outputs "
        f"{fmt_value(health['saturated_fraction'], 3)}",
        "",
    ]


def _digits(result: str) -> int:
    return 3 if "accuracy" in result else 1


def _comparison_section(report: Mapping, seeds: list[int]) -> list[str]:
    """Markdown lines: synthetic minus real on the same images with patient-level intervals, and (with several seeds)
    the real-trained baselines per seed, the noise floor of the comparison."""
    seg, cls = report["segmentation"], report["view_classification"]
    gaps = [{"metric": key, "difference": fmt_value(gap["difference"], _digits(key)),
             "95 % CI": interval_text(gap["ci95"], _digits(key)), "verdict": verdict_text(gap)}
            for key, gap in [*seg["synthetic_minus_real"].items(), *cls["synthetic_minus_real"].items()]]  # fmt: skip
    lines = ["## Synthetic minus real (paired on the test images, test patients resampled: a tie when the 95 % "
             "interval contains 0)", "", markdown_table(gaps, ["metric", "difference", "95 % CI", "verdict"]), ""]
    if len(seeds) > 1:
        rows = [{"seed": row["seed"], "segmenter dice_mean": row["dice_mean"],
                 "view classifier accuracy": fmt_value(cls_row["accuracy"], 3)}
                for row, cls_row in zip(seg["real"]["seeds"], cls["real"]["seeds"])]  # fmt: skip
        seg_spread, cls_spread = seg["real"]["across_seeds"]["dice_mean"], cls["real"]["across_seeds"]["accuracy"]
        rows.append({"seed": "mean (std)",
                     "segmenter dice_mean": f"{seg_spread['mean']:.1f} ({seg_spread['std']:.1f})",
                     "view classifier accuracy": f"{cls_spread['mean']:.3f} ({cls_spread['std']:.3f})"})  # fmt: skip
        lines += [f"## Real-trained baselines over {len(seeds)} seeds (the noise floor; seed {seeds[0]}'s models are "
                  "the \"real\" ones above and the label-fidelity segmenter)", "",
                  markdown_table(rows, ["seed", "segmenter dice_mean", "view classifier accuracy"]), ""]  # fmt: skip
    return lines


def write_report(folder: Path, context: Mapping, records: Mapping, evaluation: Mapping) -> dict:
    """Write report.json, report.md and the figures to `folder`; returns {"report", "markdown_table", ...}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator_eval = evaluation["generator"]
    diffusion = records["diffusion"].result
    vae = records["autoencoder"].result if "autoencoder" in records else {}  # pixel-space generators have none
    seeds = [context["seed"] + i for i in range(context["seeds"])]
    seg_eval, cls_eval = evaluation["segmentation"], evaluation["view_classification"]
    report = {
        **{key: context[key] for key in ("budget_minutes", "hardware", "dataset_dir", "test_dir", "test_split",
                                         "image_size", "code")},
        "stages": {name: record.seconds for name, record in records.items()},
        "stage_threads": {name: record.result.get("torch_threads") for name, record in records.items()
                          if isinstance(record.result, dict)},
        "stage_images_per_s": {name: record.result.get("images_per_s") for name, record in records.items()
                               if isinstance(record.result, dict) and "images_per_s" in record.result},
        "generator": {
            "model": context["settings"]["model"], "sampler": context["sampler"], "steps": context["steps"],
            "nfe": generator_eval["nfe"], "images_per_s": generator_eval["images_per_s"],
            "synthesis_images_per_s": records["synthesis"].result["images_per_s"],
            "synthesis_k": records["synthesis"].result.get("k", context["k"]),
            "train_minutes": sum(records[s].seconds for s in ("autoencoder", "diffusion") if s in records) / 60,
            "label_fidelity": generator_eval["label_fidelity"], "view_fidelity": generator_eval["view_fidelity"],
            "n_maps": generator_eval["n_maps"],
            "autoencoder_iterations": vae.get("iterations"), "diffusion_iterations": diffusion.get("iterations"),
        },
        "fidelity_vs_steps": [{k: row[k] for k in ("sampler", "steps", "nfe", "dice_mean")}
                              for row in generator_eval["fidelity_vs_steps"]],
        "segmentation": {
            "real": _with_seeds([segmentation_row(r) for r in (seg_eval["real"], *seg_eval["real_seeds"])], seeds,
                                SEGMENTATION_KEYS),
            "synthetic": segmentation_row(seg_eval["synthetic"]),
            "synthetic_minus_real": {key: paired_difference(seg_eval["real"]["per_image"],
                                                             seg_eval["synthetic"]["per_image"], key)
                                     for key in DICE_KEYS},
        },
        "view_classification": {
            "real": _with_seeds([classification_row(r) for r in (cls_eval["real"], *cls_eval["real_seeds"])], seeds,
                                CLASSIFICATION_KEYS),
            "synthetic": classification_row(cls_eval["synthetic"]),
            "synthetic_minus_real": {"accuracy": paired_difference(cls_eval["real"]["per_image"],
                                                                    cls_eval["synthetic"]["per_image"], "correct")},
        },
        "autoencoder_ceiling": generator_eval["autoencoder_ceiling"],
        "autoencoder_health": vae.get("health", {}),
        "autoencoder_health_curve": vae.get("health_curve", []),
        "real_images_fidelity": generator_eval["real_images_fidelity"],
        "label_fidelity_curve": diffusion.get("label_fidelity_curve", []),
        "synthetic_images": records["synthesis"].result["images"],
        "fingerprints": {name: record.fingerprint for name, record in records.items()},
        "runs": {name: record.run for name, record in records.items()},
        "settings": {key: context[key] for key in ("scale", "holdout", "k", "train_split", "shares", "settings",
                                                   "seed", "seeds")},
    }  # fmt: skip
    report = json_safe(report)
    figures = _figures(folder, report)
    for name in ("grid.png", "grid_public.png"):  # written by the evaluation stage
        shutil.copyfile(Path(context["workdir"]) / "evaluation" / name, folder / name)

    seg, cls, gen = report["segmentation"], report["view_classification"], report["generator"]
    seg_gap, cls_gap = seg["synthetic_minus_real"]["dice_mean"], cls["synthetic_minus_real"]["accuracy"]
    headline = [
        {"result": "label fidelity (mean Dice, generated test maps)", "value": gen["label_fidelity"]["dice_mean"]},
        {"result": "view fidelity (real-trained view classifier accuracy, generated test maps)",
         "value": gen["view_fidelity"]["accuracy"]},
        {"result": "segmenter trained on real: mean Dice", "value": seg["real"]["dice_mean"],
         "ci95": seg["real"]["ci95"]["dice_mean"]},
        {"result": "segmenter trained on synthetic only: mean Dice", "value": seg["synthetic"]["dice_mean"],
         "ci95": seg["synthetic"]["ci95"]["dice_mean"]},
        {"result": "segmenter, synthetic minus real: mean Dice", "value": seg_gap["difference"],
         "ci95": seg_gap["ci95"], "verdict": verdict_text(seg_gap)},
        {"result": "view classifier trained on real: accuracy", "value": cls["real"]["accuracy"],
         "ci95": cls["real"]["ci95"]["accuracy"]},
        {"result": "view classifier trained on synthetic only: accuracy", "value": cls["synthetic"]["accuracy"],
         "ci95": cls["synthetic"]["ci95"]["accuracy"]},
        {"result": "view classifier, synthetic minus real: accuracy", "value": cls_gap["difference"],
         "ci95": cls_gap["ci95"], "verdict": verdict_text(cls_gap)},
    ]  # fmt: skip
    table = markdown_table([{**r, "value": fmt_value(r["value"], _digits(r["result"])),
                     "95 % CI (patients)": interval_text(r.get("ci95"), _digits(r["result"]))} for r in headline],
                   ["result", "value", "95 % CI (patients)", "verdict"])  # fmt: skip
    md = [
        f"# echodiff study: {Path(report['dataset_dir']).name} -> {Path(report['test_dir']).name} "
        f"({report['test_split']}), {report['image_size']} px, budget {report['budget_minutes']:g} min",
        "",
        table,
        "",
        "## Segmentation on the test split (Dice x 100 and Hausdorff in pixels, both on each test image's own label grid: "
        "predictions are resized back to it)",
        "",
        markdown_table([{"trained on": s, **seg[s], "dice_mean 95 % CI": interval_text(seg[s]["ci95"]["dice_mean"], 1)}
                for s in ("real", "synthetic")],
               ["trained on", *SEGMENTATION_KEYS, "dice_mean 95 % CI", "n_images"]),
        "",
        "## View classification on the test split (accuracy over all images; bootstrap accuracy of the paper: mean and "
        "std over 1000 draws of 80 % of the images)",
        "",
        markdown_table([{"trained on": s, **cls[s], "accuracy 95 % CI": interval_text(cls[s]["ci95"]["accuracy"], 3)}
                for s in ("real", "synthetic")],
               ["trained on", "accuracy", "accuracy 95 % CI", "accuracy_mean", "accuracy_std", "n_images"], digits=3),
        "",
        *_comparison_section(report, seeds),
        f"## Generator: {gen['model']}, {gen['sampler']} {gen['steps']} steps ({gen['nfe']} network calls per image)",
        "",
        f"Label fidelity on {gen['n_maps']} unaugmented test maps (the real-trained segmenter on generated images; Dice on "
        f"the generator's {report['image_size']} px grid, where the maps are resized by nearest neighbour):",
        "",
        markdown_table([gen["label_fidelity"]], list(DICE_KEYS)),
        "",
        "View fidelity on the same generated images, each asked for in its map's true view (the real-trained view "
        "classifier's accuracy):",
        "",
        markdown_table([gen["view_fidelity"]], list(VIEW_FIDELITY_KEYS), digits=3),
        "",
        *_reference_section(report),
        "Label fidelity against sampler steps:",
        "",
        markdown_table(report["fidelity_vs_steps"], ["sampler", "steps", "nfe", "dice_mean"]),
        "",
        f"Sampling speed: {gen['images_per_s']:.1f} images/s (batch 32); synthesis of "
        f"{report['synthetic_images']} images ({gen['synthesis_k']} per map) wrote {fmt_value(gen['synthesis_images_per_s'])} images/s.",
        "",
        "## Stages (wall-clock seconds; training images/s = iterations x batch / seconds)",
        "",
        markdown_table([{"stage": k, "seconds": v, "images/s": report["stage_images_per_s"].get(k)}
                for k, v in report["stages"].items()], ["stage", "seconds", "images/s"], digits=1),
        "",
        f"Hardware: {report['hardware']}",
        "",
        "Figures: " + ", ".join(figures + ["grid.png (condition map | generated | real)"]),
        "",
    ]
    text = "\n".join(md)
    atomic_write(folder / "report.md", lambda tmp: Path(tmp).write_text(text), suffix=".md")
    json_text = json.dumps(report, indent=2) + "\n"
    atomic_write(folder / "report.json", lambda tmp: Path(tmp).write_text(json_text), suffix=".json")
    return {"report": str(folder / "report.json"), "markdown_table": table, "figures": figures}
