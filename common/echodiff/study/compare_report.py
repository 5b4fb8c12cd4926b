"""`compare.md` and the comparison's plots (`echodiff.study.compare`), from compare.json:

- `realism_vs_dice.png`: the Frechet distance (with the real-against-real range over the splits shaded) and the
  two-sample test's accuracy (0.5: indistinguishable from real) against the synthetic-only segmenter's Dice, one point
  per generator (does realism predict usefulness?);
- `cost_frontier.png`: synthetic-only Dice against CPU seconds per synthesised image (log scale);
- `solvers.png`: label fidelity on the held-out training patients against NFE, one line per generator and solver.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from echodiff.io import atomic_write  # noqa: E402
from echodiff.study.tables import fmt_value, interval_text, markdown_table, verdict_text  # noqa: E402

__all__ = ["PLOTS", "write_compare_report"]

PLOTS = ("realism_vs_dice.png", "cost_frontier.png", "solvers.png")
MIXED_CODE_MARK = " (other code)"


def _save(fig: plt.Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"), suffix=".png")
    plt.close(fig)


def _scatter(ax: plt.Axes, rows: list[Mapping], x: str, xlabel: str, real: float | None, log: bool = False,
             reference: tuple[float, float] | None = None, reference_label: str = "") -> None:  # fmt: skip
    """Synthetic-only Dice against `x`, one point per generator; `reference` (low, high) shades what real images
    score on `x`."""
    for row in rows:
        if row.get(x) is not None:
            ax.scatter(row[x], row["seg_synthetic_dice_mean"], color="tab:blue")
            ax.annotate(row["model"], (row[x], row["seg_synthetic_dice_mean"]), textcoords="offset points",
                        xytext=(4, 3), fontsize=8)  # fmt: skip
    if reference is not None:
        ax.axvspan(reference[0], reference[1], color="tab:green", alpha=0.25, label=reference_label)
    if real is not None:
        ax.axhline(real, color="grey", linestyle="--", linewidth=1, label="trained on real")
    ax.margins(x=0.15, y=0.25)  # room for the labels of points on the edge of the data
    if real is not None or reference is not None:
        ax.legend(loc="best", fontsize=7)
    ax.set(xlabel=xlabel, ylabel="synthetic-only segmenter, mean Dice", xscale="log" if log else "linear")


def _solver_plot(path: Path, solvers: list[Mapping]) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for model in dict.fromkeys(r["model"] for r in solvers):
        for sampler, style in zip(dict.fromkeys(r["sampler"] for r in solvers), ("o-", "s--", "^:")):
            rows = sorted((r for r in solvers if r["model"] == model and r["sampler"] == sampler), key=lambda r: r["nfe"])
            if rows:
                ax.plot([r["nfe"] for r in rows], [r["dice_mean"] for r in rows], style, label=f"{model} {sampler}")
    ax.set(xscale="log", xlabel="network calls per image (NFE)", ylabel="label fidelity (held-out), mean Dice",
           title="label fidelity vs NFE per solver")  # fmt: skip
    ax.legend(fontsize=7)
    _save(fig, path)


def write_compare_report(folder: Path, compare: Mapping) -> list[str]:
    """Write compare.md and `PLOTS` to `folder`; returns the file names written."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = compare["generators"]
    real = compare.get("real", {})
    real_dice = real.get("segmentation", {}).get("dice_mean")
    checks = compare.get("realism_checks")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    real_fd = (min(checks["real_vs_real"]["fd_splits"]), max(checks["real_vs_real"]["fd_splits"])) if checks else None
    _scatter(left, rows, "realism_fd", "Frechet distance to real test images (view-classifier features)", real_dice,
             reference=real_fd, reference_label="real vs real (range over splits)")  # fmt: skip
    _scatter(right, rows, "realism_c2st_accuracy", "two-sample test accuracy (0.5 = indistinguishable)", real_dice,
             reference=(0.5, checks["real_vs_real"]["c2st_accuracy"]) if checks else None,
             reference_label="real vs real")  # fmt: skip
    fig.suptitle("does realism predict usefulness?")
    _save(fig, folder / PLOTS[0])
    fig, ax = plt.subplots(figsize=(5, 3.6))
    _scatter(ax, rows, "seconds_per_image", "CPU seconds per synthesised image (log)", real_dice, log=True)
    ax.set_title("cost frontier")
    _save(fig, folder / PLOTS[1])
    _solver_plot(folder / PLOTS[2], compare.get("solvers", []))

    table = [{
        "generator": row["model"] + (MIXED_CODE_MARK if row.get("code_differs") else ""),
        "train min": row["train_minutes"], "steps": row["optimizer_steps"],
        "sampler": f"{row['sampler']} {row['steps']}", "NFE": row["nfe"],
        "synthetic images (per map)": f"{row['n_synthetic_images']} ({row['synthesis_k']})",
        "GFLOPs/image": row["gflops_per_image"], "s/image": row["seconds_per_image"],
        "label fidelity": row["label_fidelity"]["dice_mean"],
        "held-out fidelity": row["label_fidelity_holdout"]["dice_mean"], "FD": row["realism_fd"],
        "MMD": row["realism_mmd"], "C2ST acc": row["realism_c2st_accuracy"], "MS-SSIM": row["diversity_msssim"],
        "copy rate": row["copy_rate"],
        "seg Dice (synthetic)": row["seg_synthetic_dice_mean"],
        "seg 95 % CI": interval_text(row["seg_synthetic"]["ci95"]["dice_mean"], 1),
        "view acc (synthetic)": row["view_synthetic_accuracy"],
    } for row in rows]  # fmt: skip
    keys = list(table[0]) if table else ["generator"]
    md = ["# Generator comparison", "", markdown_table(table, keys, digits=3), ""]
    if real:
        seg, cls = real["segmentation"], real["view_classification"]
        md += [f"Trained on real images: segmenter mean Dice {fmt_value(seg['dice_mean'])} "
               f"{interval_text(seg['ci95']['dice_mean'], 1)}, view classifier accuracy {fmt_value(cls['accuracy'], 3)} "
               f"{interval_text(cls['ci95']['accuracy'], 3)} (95 % patient-level intervals).", ""]  # fmt: skip
    for row in rows:
        if "ddpm1000" in row:
            d = row["ddpm1000"]
            md += [f"SDM with its own 1000-step DDPM, on {d['n_maps']} test maps (40 CPU minutes): label fidelity "
                   f"{fmt_value(d['label_fidelity']['dice_mean'])}, FD {fmt_value(d['realism_fd'])}, "
                   f"{fmt_value(d['seconds_per_image'])} s per image. Its row above samples with DDIM at {row['steps']} "
                   "steps, as its synthetic training set was made.", ""]  # fmt: skip
    if checks:
        rr, rb = checks["real_vs_real"], checks["real_vs_blurred_real"]
        md += [f"Realism figures on real images, measured as the generators' are (FD and MMD between halves of the test "
               f"patients of {rr['half_sizes'][0]} / {rr['half_sizes'][1]} images, mean over {rr['splits']} random "
               f"splits, range in brackets; the two-sample test trained on halves of the training patients): real vs "
               f"real FD {fmt_value(rr['fd'])} [{fmt_value(min(rr['fd_splits']))}, {fmt_value(max(rr['fd_splits']))}], "
               f"MMD {fmt_value(rr['mmd'], 3)}, two-sample accuracy {fmt_value(rr['c2st_accuracy'], 3)}; real vs real "
               f"blurred by a Gaussian of {checks['blur_sigma']} px FD {fmt_value(rb['fd'])}, MMD {fmt_value(rb['mmd'], 3)}, "
               f"two-sample accuracy {fmt_value(rb['c2st_accuracy'], 3)}.", ""]  # fmt: skip
    plus = compare.get("real_plus_synthetic")
    if plus:
        gap = plus["minus_real"]
        md += [f"## Real plus synthetic ({plus['model']})", "",
               markdown_table([{"metric": k, "value": plus["segmentation"][k] if k != "accuracy"
                        else plus["view_classification"]["accuracy"], "minus real": gap[k]["difference"],
                        "95 % CI": interval_text(gap[k]["ci95"], 3 if k == "accuracy" else 1), "verdict": verdict_text(gap[k])}
                       for k in gap], ["metric", "value", "minus real", "95 % CI", "verdict"], digits=3), ""]  # fmt: skip
    if compare.get("solver_downstream"):
        md += ["## Synthetic-only segmenter of the best generator against its solver", "",
               markdown_table([{**r, "seg Dice": r["seg_synthetic"]["dice_mean"]} for r in compare["solver_downstream"]],
                      ["model", "sampler", "steps", "nfe", "seconds_per_image", "label_fidelity_holdout", "seg Dice"],
                      digits=3), ""]  # fmt: skip
    if compare.get("solvers"):
        md += ["## Solvers (label fidelity on held-out training patients)", "",
               markdown_table(compare["solvers"], ["model", "sampler", "steps", "nfe", "dice_mean", "seconds_per_image"],
                      digits=3), ""]  # fmt: skip
    md += [f"Best by held-out label fidelity: {compare['best']}.", "",
           f"Identity of every row: {compare['identity']}; code: {compare['code']}.", "",
           "Figures: " + ", ".join(PLOTS), ""]
    text = "\n".join(md)
    atomic_write(folder / "compare.md", lambda tmp: Path(tmp).write_text(text), suffix=".md")
    return ["compare.md", *PLOTS]
