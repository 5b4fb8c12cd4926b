"""The study's report: `report.json` (the keys below), `report.md` and PNG figures in `<workdir>/report/`.

report.json: budget_minutes, hardware, dataset_dir, test_dir, test_split, image_size, stages (name -> seconds),
generator (model, sampler, steps, nfe, images_per_s, train_minutes, label_fidelity, view_fidelity: accuracy,
accuracy_2CH, accuracy_4CH and n_images of the real-trained view classifier on the generated test images, each asked
for in its map's true view), fidelity_vs_steps (rows sampler,
steps, nfe, dice_mean), segmentation (real / synthetic: dice_lv_endo, dice_lv_epi, dice_la, dice_mean, hd_lv_endo,
n_images), view_classification (real / synthetic: accuracy_mean, accuracy_std, n_images), plus autoencoder_ceiling,
autoencoder_health and autoencoder_health_curve (empty for a pixel-space generator), label_fidelity_curve, fingerprints and settings. Dice x 100; Hausdorff in pixels of the test label grid.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from echodiff.engines.segmentation_report import json_safe  # noqa: E402
from echodiff.generation.fidelity import DICE_KEYS  # noqa: E402
from echodiff.io import atomic_write  # noqa: E402

__all__ = ["SEGMENTATION_KEYS", "write_report"]

SEGMENTATION_KEYS = (*DICE_KEYS, "hd_lv_endo")
VIEW_FIDELITY_KEYS = ("accuracy", "accuracy_2CH", "accuracy_4CH", "n_images")


def _segmentation_row(report: Mapping) -> dict:
    metrics = report["metrics"]
    return {**{key: metrics[key]["mean"] for key in SEGMENTATION_KEYS}, "n_images": report["n_images"]}


def _classification_row(report: Mapping) -> dict:
    return {key: report[key] for key in ("accuracy_mean", "accuracy_std", "n_images")}


def _fmt(value: object, digits: int = 1) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def _table(rows: list[dict], keys: list[str], digits: int = 1) -> str:
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(row.get(k), digits) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


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
                _table([{"input": "real image", **report["real_images_fidelity"]}], ["input", *DICE_KEYS]), ""]
    return [
        "Ceiling and reference: the Gamma-VAE's reconstructions of the real test images, and the real images "
        "themselves, through the same segmenter:",
        "",
        _table([{"input": "Gamma-VAE reconstruction", **ceiling}, {"input": "real image", **report["real_images_fidelity"]}],
               ["input", "psnr", *DICE_KEYS]),
        "",
        "Share of in-sector Gamma-VAE latents clipped by the diffusion mapping (z > 1): "
        f"{_fmt(ceiling.get('latent_clipped_fraction'), 4)}",
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
        f"{_fmt(health['psnr'], 1)} dB, clipped fraction {_fmt(health['latent_clipped_fraction'], 4)}, per-channel "
        f"spread {', '.join(_fmt(v, 3) for v in health['channel_spread'])}, per-channel mean "
        f"{', '.join(_fmt(v, 3) for v in health['channel_mean'])}, saturated encoder outputs "
        f"{_fmt(health['saturated_fraction'], 3)}",
        "",
    ]


def write_report(folder: Path, context: Mapping, records: Mapping, evaluation: Mapping) -> dict:
    """Write report.json, report.md and the figures to `folder`; returns {"report", "markdown_table", ...}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator_eval = evaluation["generator"]
    diffusion = records["diffusion"].result
    vae = records["autoencoder"].result if "autoencoder" in records else {}  # pixel-space generators have none
    report = {
        **{key: context[key] for key in ("budget_minutes", "hardware", "dataset_dir", "test_dir", "test_split",
                                         "image_size")},
        "stages": {name: record.seconds for name, record in records.items()},
        "stage_images_per_s": {name: record.result.get("images_per_s") for name, record in records.items()
                               if isinstance(record.result, dict) and "images_per_s" in record.result},
        "generator": {
            "model": context["settings"]["model"], "sampler": context["sampler"], "steps": context["steps"],
            "nfe": generator_eval["nfe"], "images_per_s": generator_eval["images_per_s"],
            "synthesis_images_per_s": records["synthesis"].result["images_per_s"],
            "train_minutes": sum(records[s].seconds for s in ("autoencoder", "diffusion") if s in records) / 60,
            "label_fidelity": generator_eval["label_fidelity"], "view_fidelity": generator_eval["view_fidelity"],
            "n_maps": generator_eval["n_maps"],
            "autoencoder_iterations": vae.get("iterations"), "diffusion_iterations": diffusion.get("iterations"),
        },
        "fidelity_vs_steps": [{k: row[k] for k in ("sampler", "steps", "nfe", "dice_mean")}
                              for row in generator_eval["fidelity_vs_steps"]],
        "segmentation": {source: _segmentation_row(evaluation["segmentation"][source])
                         for source in ("real", "synthetic")},
        "view_classification": {source: _classification_row(evaluation["view_classification"][source])
                                for source in ("real", "synthetic")},
        "autoencoder_ceiling": generator_eval["autoencoder_ceiling"],
        "autoencoder_health": vae.get("health", {}),
        "autoencoder_health_curve": vae.get("health_curve", []),
        "real_images_fidelity": generator_eval["real_images_fidelity"],
        "label_fidelity_curve": diffusion.get("label_fidelity_curve", []),
        "synthetic_images": records["synthesis"].result["images"],
        "fingerprints": {name: record.fingerprint for name, record in records.items()},
        "settings": {key: context[key] for key in ("scale", "holdout", "k", "train_split", "shares", "settings")},
    }  # fmt: skip
    report = json_safe(report)
    figures = _figures(folder, report)
    for name in ("grid.png", "grid_public.png"):  # written by the evaluation stage
        shutil.copyfile(Path(context["workdir"]) / "evaluation" / name, folder / name)

    seg, cls, gen = report["segmentation"], report["view_classification"], report["generator"]
    headline = [
        {"result": "label fidelity (mean Dice, generated test maps)", "value": gen["label_fidelity"]["dice_mean"]},
        {"result": "view fidelity (real-trained view classifier accuracy, generated test maps)",
         "value": gen["view_fidelity"]["accuracy"]},
        {"result": "segmenter trained on real: mean Dice", "value": seg["real"]["dice_mean"]},
        {"result": "segmenter trained on synthetic only: mean Dice", "value": seg["synthetic"]["dice_mean"]},
        {"result": "view classifier trained on real: accuracy", "value": cls["real"]["accuracy_mean"]},
        {"result": "view classifier trained on synthetic only: accuracy", "value": cls["synthetic"]["accuracy_mean"]},
    ]
    table = _table([{**r, "value": _fmt(r["value"], 3 if "accuracy" in r["result"] else 1)} for r in headline],
                   ["result", "value"])  # fmt: skip
    md = [
        f"# echodiff study: {Path(report['dataset_dir']).name} -> {Path(report['test_dir']).name} "
        f"({report['test_split']}), {report['image_size']} px, budget {report['budget_minutes']:g} min",
        "",
        table,
        "",
        "## Segmentation on the test split (Dice x 100, Hausdorff in label-grid pixels)",
        "",
        _table([{"trained on": s, **seg[s]} for s in ("real", "synthetic")], ["trained on", *SEGMENTATION_KEYS,
                                                                              "n_images"]),
        "",
        "## View classification on the test split (bootstrap accuracy)",
        "",
        _table([{"trained on": s, **cls[s]} for s in ("real", "synthetic")],
               ["trained on", "accuracy_mean", "accuracy_std", "n_images"], digits=3),
        "",
        f"## Generator: {gen['model']}, {gen['sampler']} {gen['steps']} steps ({gen['nfe']} network calls per image)",
        "",
        f"Label fidelity on {gen['n_maps']} unaugmented test maps (the real-trained segmenter on generated images):",
        "",
        _table([gen["label_fidelity"]], list(DICE_KEYS)),
        "",
        "View fidelity on the same generated images, each asked for in its map's true view (the real-trained view "
        "classifier's accuracy):",
        "",
        _table([gen["view_fidelity"]], list(VIEW_FIDELITY_KEYS), digits=3),
        "",
        *_reference_section(report),
        "Label fidelity against sampler steps:",
        "",
        _table(report["fidelity_vs_steps"], ["sampler", "steps", "nfe", "dice_mean"]),
        "",
        f"Sampling speed: {gen['images_per_s']:.1f} images/s (batch 32); synthesis of "
        f"{report['synthetic_images']} images wrote {_fmt(gen['synthesis_images_per_s'])} images/s.",
        "",
        "## Stages (wall-clock seconds; training images/s = iterations x batch / seconds)",
        "",
        _table([{"stage": k, "seconds": v, "images/s": report["stage_images_per_s"].get(k)}
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
