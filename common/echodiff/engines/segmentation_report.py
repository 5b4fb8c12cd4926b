"""CAMUS segmentation scores for MONAI evaluators: a key metric (mean Dice) and a report handler (JSON + markdown).

Protocol (Stojanovski et al. 2024; docs/methods.md section 4): Dice x 100 for LV endo (label 1), LV epi (1 u 2), LA (3) and their mean, LV-endo
Hausdorff distance in pixels of the label map's grid; mean and std over images. A predicted label map is resized
(nearest) to its reference's grid before scoring, so predictions made at the network size score against labels at
the evaluation size.
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from ignite.engine import Engine
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce
from scipy.stats import rankdata

from echodiff.engines.run_report import RunReport
from echodiff.errors import ShapeMismatchError
from echodiff.io import atomic_write_text
from echodiff.metrics.segmentation import camus_dice_batch, lv_endo_hausdorff_batch, markdown_table, summarize

DICE_KEYS = {"lv_endo": "dice_lv_endo", "lv_epi": "dice_lv_epi", "la": "dice_la", "mean": "dice_mean"}


def label_map_at(pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (1, H, W) label map of grid `size` from `pred`: class scores (C, h, w) are argmaxed, then resized (nearest)."""
    pred = torch.as_tensor(pred).detach().cpu()
    if pred.ndim != 3:
        raise ShapeMismatchError(
            f"pred has shape {tuple(pred.shape)}; expected class scores (C, h, w) or labels (1, h, w)"
        )
    labels = pred.argmax(dim=0, keepdim=True) if pred.shape[0] > 1 else pred.round()
    if tuple(labels.shape[1:]) != tuple(size):
        labels = F.interpolate(labels[None].float(), size=tuple(size), mode="nearest")[0]
    return labels.long()


def map_at(values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (1, H, W) float map of grid `size` from (1, h, w) `values` (bilinear), e.g. an uncertainty map."""
    values = torch.as_tensor(values).detach().cpu().float()
    if tuple(values.shape[1:]) != tuple(size):
        values = F.interpolate(values[None], size=tuple(size), mode="bilinear")[0]
    return values


def _reference(label: torch.Tensor) -> torch.Tensor:
    label = torch.as_tensor(label).detach().cpu()
    if label.ndim != 3 or label.shape[0] != 1:
        raise ShapeMismatchError(f"label has shape {tuple(label.shape)}; expected a label map (1, H, W)")
    return label.long()


def camus_scores(pred: torch.Tensor, label: torch.Tensor) -> dict[str, float]:
    """Dice x 100 (dice_lv_endo, dice_lv_epi, dice_la, dice_mean) and hd_lv_endo (pixels) of one image."""
    label_map = _reference(label)[None]
    pred_map = label_map_at(pred, label_map.shape[2:])[None]
    dice = camus_dice_batch(pred_map, label_map)
    scores = {DICE_KEYS[name]: 100 * float(values[0]) for name, values in dice.items()}
    scores["hd_lv_endo"] = float(lv_endo_hausdorff_batch(pred_map, label_map)[0])
    return scores


def uncertainty_error_stats(uncertainty: torch.Tensor, pred: torch.Tensor, label: torch.Tensor) -> dict[str, float]:
    """How well an uncertainty map marks wrong pixels (pred != label) of one image, on `label`'s grid.

    uncertainty_auroc: AUROC of the uncertainty as a detector of wrong pixels (Mann-Whitney U over average ranks;
    0.5 chance, 1 every wrong pixel more uncertain than every right one); uncertainty_error_r: Pearson r between
    uncertainty and the error indicator; uncertainty_wrong / uncertainty_right: mean uncertainty on each set.
    Undefined values (no wrong or no right pixel, constant uncertainty) are nan.
    """
    label = _reference(label)
    wrong = (label_map_at(pred, label.shape[1:]) != label).flatten().numpy()
    values = map_at(uncertainty, label.shape[1:]).flatten().double().numpy()
    n_wrong, n_right = int(wrong.sum()), int((~wrong).sum())
    stats = {
        "uncertainty_auroc": float("nan"),
        "uncertainty_error_r": float("nan"),
        "uncertainty_wrong": float(values[wrong].mean()) if n_wrong else float("nan"),
        "uncertainty_right": float(values[~wrong].mean()) if n_right else float("nan"),
    }
    if n_wrong and n_right:
        ranks = rankdata(values)
        stats["uncertainty_auroc"] = float((ranks[wrong].sum() - n_wrong * (n_wrong + 1) / 2) / (n_wrong * n_right))
        if values.std() > 0:
            stats["uncertainty_error_r"] = float(np.corrcoef(values, wrong.astype(np.float64))[0, 1])
    return stats


class CamusMeanDice(Metric):
    """Mean over images of the CAMUS mean Dice x 100 (LV endo, LV epi, LA), for `key_val_metric`; summed over ranks
    under DDP. Takes (preds, labels) lists of (C or 1, h, w) and (1, H, W), e.g. `from_engine(['pred', 'label'])`."""

    @reinit__is_reduced
    def reset(self) -> None:
        self._sum = torch.zeros((), dtype=torch.float64, device=self._device)
        self._count = torch.zeros((), dtype=torch.float64, device=self._device)

    @reinit__is_reduced
    def update(self, output: tuple[list[torch.Tensor], list[torch.Tensor]]) -> None:
        for pred, label in zip(*output):
            self._sum += camus_scores(pred, label)["dice_mean"]
            self._count += 1

    @sync_all_reduce("_sum", "_count")
    def compute(self) -> float:
        return float(self._sum / self._count.clamp(min=1))


class SegmentationReportSaver(RunReport):
    """Evaluator handler: per-image CAMUS scores (and, when the output holds an uncertainty map, how well it marks wrong
    pixels), then mean/std to `output_file` (JSON with per-image rows) and a markdown table beside it (.md).

    `extra` entries (dataset, split, device...) are copied into the JSON; `seconds_per_image` is the run's wall time
    (data loading included) over the number of images.
    """

    def __init__(
        self,
        output_file: str,
        extra: dict | None = None,
        pred_key: str = "pred",
        label_key: str = "label",
        uncertainty_key: str = "uncertainty",
        source_key: str = "source",
        title: str = "CAMUS segmentation",
    ) -> None:
        super().__init__(output_file, extra)
        self.pred_key, self.label_key = pred_key, label_key
        self.uncertainty_key, self.source_key, self.title = uncertainty_key, source_key, title
        self.rows: list[dict] = []
        self._started = 0.0

    def _reset(self, engine: Engine) -> None:
        self.rows, self._started = [], time.perf_counter()

    def _collect(self, engine: Engine) -> None:
        for item, batch_item in zip(engine.state.output, engine.state.batch):
            pred, label = item[self.pred_key], item[self.label_key]
            row = {"image": str(batch_item.get(self.source_key, len(self.rows))), **camus_scores(pred, label)}
            if self.uncertainty_key in item:
                row.update(uncertainty_error_stats(item[self.uncertainty_key], pred, label))
            self.rows.append(row)

    def _report(self, engine: Engine) -> None:
        seconds = time.perf_counter() - self._started
        metrics = [key for key in self.rows[0] if key != "image"] if self.rows else []
        summary = summarize({key: [row[key] for row in self.rows] for key in metrics})
        result = {
            **self.extra,
            "n_images": len(self.rows),
            "seconds_per_image": seconds / max(len(self.rows), 1),
            "metrics": summary,
            "per_image": self.rows,
        }
        table = f"## {self.title}\n\n{markdown_table(summary, digits=2)}\n"
        atomic_write_text(self.output_file, json.dumps(json_safe(result), indent=2) + "\n")
        atomic_write_text(self.output_file.with_suffix(".md"), table)
        self.logger.info("segmentation report -> %s", self.output_file)
        print(table)


def json_safe(value: object) -> object:
    """`value` with every nan/inf float replaced by None, so the JSON written is strict (no NaN tokens)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value
