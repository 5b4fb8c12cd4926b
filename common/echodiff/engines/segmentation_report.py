"""CAMUS segmentation scores for MONAI evaluators: a postprocessing transform that scores each image once
(`CamusScoresd`), key metrics over those scores or straight from predictions (`MeanImageScore`, `CamusMeanDice`) and a
report handler (JSON + markdown).

Protocol (Stojanovski et al. 2024; docs/methods.md section 4): Dice x 100 for LV endo (label 1), LV epi (1 u 2), LA (3) and their mean, LV-endo
Hausdorff distance in pixels of the label map's grid; mean and std over images, and a 95 % interval from resampling
the patients (`echodiff.metrics.patient_bootstrap`). A predicted label map is resized
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
from monai.transforms import Transform
from monai.utils import convert_to_tensor
from scipy.stats import rankdata

from echodiff.engines.run_report import RunReport
from echodiff.errors import ShapeMismatchError
from echodiff.io import atomic_write_text
from echodiff.metrics.bootstrap import patient_bootstrap
from echodiff.metrics.segmentation import camus_dice_batch, camus_scores_batch, markdown_table, summarize

DICE_KEYS = {"lv_endo": "dice_lv_endo", "lv_epi": "dice_lv_epi", "la": "dice_la", "mean": "dice_mean"}


def label_map_at(pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (1, H, W) label map of grid `size` from `pred`: class scores (C, h, w) are argmaxed, then resized (nearest)."""
    pred = _plain(pred)
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
    values = _plain(values).float()
    if tuple(values.shape[1:]) != tuple(size):
        values = F.interpolate(values[None], size=tuple(size), mode="bilinear")[0]
    return values


def _plain(values: torch.Tensor) -> torch.Tensor:
    """A plain CPU tensor: MetaTensors cost far more per operation than the scoring itself."""
    return convert_to_tensor(values, track_meta=False).detach().cpu()


def _reference(label: torch.Tensor) -> torch.Tensor:
    label = _plain(label)
    if label.ndim != 3 or label.shape[0] != 1:
        raise ShapeMismatchError(f"label has shape {tuple(label.shape)}; expected a label map (1, H, W)")
    return label.long()


def _label_maps(pred: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(prediction, reference) as (1, 1, H, W) label maps on the reference's grid."""
    label_map = _reference(label)[None]
    return label_map_at(pred, label_map.shape[2:])[None], label_map


def camus_scores(pred: torch.Tensor, label: torch.Tensor) -> dict[str, float]:
    """Dice x 100 (dice_lv_endo, dice_lv_epi, dice_la, dice_mean) and hd_lv_endo (pixels) of one image."""
    scores = camus_scores_batch(*_label_maps(pred, label))
    distance = float(scores.pop("hd_lv_endo")[0])
    return {**{DICE_KEYS[name]: 100 * float(values[0]) for name, values in scores.items()}, "hd_lv_endo": distance}


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


class CamusScoresd(Transform):
    """Evaluator postprocessing: `camus_scores` of one image (and `uncertainty_error_stats` when the item holds an
    uncertainty map) into `item[scores_key]`, so the key metric and the report read them instead of each scoring the
    image again."""

    def __init__(self, pred_key: str = "pred", label_key: str = "label", uncertainty_key: str = "uncertainty",
                 scores_key: str = "scores") -> None:  # fmt: skip
        self.pred_key, self.label_key, self.uncertainty_key = pred_key, label_key, uncertainty_key
        self.scores_key = scores_key

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        pred, label = d[self.pred_key], d[self.label_key]
        scores = camus_scores(pred, label)
        if self.uncertainty_key in d:
            scores.update(uncertainty_error_stats(d[self.uncertainty_key], pred, label))
        d[self.scores_key] = scores
        return d


class _MeanOverImages(Metric):
    """Mean of one value per image over a run; summed over ranks under DDP."""

    @reinit__is_reduced
    def reset(self) -> None:
        self._sum = torch.zeros((), dtype=torch.float64, device=self._device)
        self._count = torch.zeros((), dtype=torch.float64, device=self._device)

    def _add(self, values: list[float]) -> None:
        self._sum += sum(values)
        self._count += len(values)

    @sync_all_reduce("_sum", "_count")
    def compute(self) -> float:
        return float(self._sum / self._count.clamp(min=1))


class MeanImageScore(_MeanOverImages):
    """Mean over images of one `CamusScoresd` score (default `dice_mean`), for `key_val_metric`. Takes the evaluator's
    output, a list of items holding `scores_key`."""

    def __init__(self, score: str = "dice_mean", scores_key: str = "scores", **kwargs: object) -> None:
        self.score, self.scores_key = score, scores_key
        super().__init__(**kwargs)

    @reinit__is_reduced
    def update(self, output: list[dict]) -> None:
        self._add([item[self.scores_key][self.score] for item in output])


class CamusMeanDice(_MeanOverImages):
    """Mean over images of the CAMUS mean Dice x 100 (LV endo, LV epi, LA), for a training run's `key_val_metric`
    (Dice only: no Hausdorff distance). Takes (preds, labels) lists of (C or 1, h, w) and (1, H, W), e.g.
    `from_engine(['pred', 'label'])`. Training validates with it rather than with `CamusScoresd` + `MeanImageScore`
    (evaluation's per-image scores): a checkpoint is selected on Dice alone, and Hausdorff distances, the slow part of
    the scores, would cost every validation."""

    @reinit__is_reduced
    def update(self, output: tuple[list[torch.Tensor], list[torch.Tensor]]) -> None:
        self._add([100 * float(camus_dice_batch(*_label_maps(pred, label))["mean"][0]) for pred, label in zip(*output)])


class SegmentationReportSaver(RunReport):
    """Evaluator handler: the per-image scores of `CamusScoresd` (the evaluator's postprocessing puts them at
    `scores_key`), then mean/std and the patient-level 95 % interval (`echodiff.metrics.patient_bootstrap`, `n_draws`
    draws seeded with `seed`) to `output_file` (JSON with per-image rows: image, patient, scores) and a markdown table
    beside it (.md).

    `extra` entries (dataset, split, device...) are copied into the JSON; `seconds_per_image` is the run's wall time
    (data loading included) over the number of images. An item without `patient_key` counts as its own patient.
    """

    def __init__(
        self,
        output_file: str,
        extra: dict | None = None,
        scores_key: str = "scores",
        source_key: str = "source",
        patient_key: str = "patient",
        title: str = "CAMUS segmentation",
        n_draws: int = 1000,
        seed: int = 0,
    ) -> None:
        super().__init__(output_file, extra)
        self.scores_key, self.source_key, self.patient_key, self.title = scores_key, source_key, patient_key, title
        self.n_draws, self.seed = n_draws, seed
        self.rows: list[dict] = []
        self._started = 0.0

    def _reset(self, engine: Engine) -> None:
        self.rows, self._started = [], time.perf_counter()

    def _collect(self, engine: Engine) -> None:
        for item, batch_item in zip(engine.state.output, engine.state.batch):
            image = str(batch_item.get(self.source_key, len(self.rows)))
            patient = str(batch_item.get(self.patient_key, image))
            self.rows.append({"image": image, "patient": patient, **item[self.scores_key]})

    def _report(self, engine: Engine) -> None:
        seconds = time.perf_counter() - self._started
        metrics = [key for key in self.rows[0] if key not in ("image", "patient")] if self.rows else []
        summary = summarize({key: [row[key] for row in self.rows] for key in metrics})
        patients = [row["patient"] for row in self.rows]
        for key in metrics:
            values = [row[key] for row in self.rows]
            summary[key]["ci95"] = patient_bootstrap(values, patients, self.n_draws, self.seed)["ci95"]
        result = {
            **self.extra,
            "n_images": len(self.rows),
            "seconds_per_image": seconds / max(len(self.rows), 1),
            "n_patients": len(set(patients)),
            "metrics": summary,
            "per_image": self.rows,
        }
        table = f"## {self.title}\n\n{markdown_table(summary, digits=2)}\n"
        atomic_write_text(self.output_file, json.dumps(json_safe(result), indent=2) + "\n")
        atomic_write_text(self.output_file.with_suffix(".md"), table)
        print(table)
        self.logger.info("segmentation report written to %s (table: .md beside it)", self.output_file)


def json_safe(value: object) -> object:
    """`value` with every nan/inf float replaced by None, so the JSON written is strict (no NaN tokens)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value
