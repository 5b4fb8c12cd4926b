"""Evaluator outputs of the view classifier: bootstrap accuracy (generator paper protocol) and its patient-level 95 %
interval, printed and saved as JSON with per-image rows; predictions as CSV with a header row."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch
from ignite.engine import Engine
from monai.data import CSVSaver

from echodiff.engines.run_report import RunReport
from echodiff.io import atomic_write_json
from echodiff.metrics.bootstrap import patient_bootstrap
from echodiff.metrics.classification import bootstrap_accuracy


class BootstrapAccuracySaver(RunReport):
    """Collects argmax(pred) == label over an evaluation run, then writes bootstrap accuracy statistics to `output_file`
    (1000 draws of 80 % of the images by default; docs/methods.md section 4), the accuracy over all images with its
    95 % interval from resampling the patients (`echodiff.metrics.patient_bootstrap`, the same draws and seed), and one
    row per image (image, patient, correct). An item without `patient_key` counts as its own patient."""

    def __init__(
        self,
        output_file: str,
        n_draws: int = 1000,
        fraction: float = 0.8,
        seed: int = 0,
        extra: dict | None = None,
        pred_key: str = "pred",
        label_key: str = "label",
        source_key: str = "source",
        patient_key: str = "patient",
    ) -> None:
        super().__init__(output_file, extra)
        self.n_draws, self.fraction, self.seed = n_draws, fraction, seed
        self.pred_key, self.label_key, self.source_key, self.patient_key = pred_key, label_key, source_key, patient_key
        self.rows: list[dict] = []

    def _reset(self, engine: Engine) -> None:
        self.rows = []

    def _collect(self, engine: Engine) -> None:
        for item, batch_item in zip(engine.state.output, engine.state.batch):
            pred, label = torch.as_tensor(item[self.pred_key]), torch.as_tensor(item[self.label_key])
            pred_class = int(pred.argmax()) if pred.numel() > 1 else int(pred)
            label_class = int(label.argmax()) if label.numel() > 1 else int(label)
            image = str(batch_item.get(self.source_key, len(self.rows)))
            self.rows.append({"image": image, "patient": str(batch_item.get(self.patient_key, image)),
                              "correct": pred_class == label_class})  # fmt: skip

    def _report(self, engine: Engine) -> None:
        correct = [row["correct"] for row in self.rows]
        patients = [row["patient"] for row in self.rows]
        stats = bootstrap_accuracy(correct, self.n_draws, self.fraction, self.seed)
        result = {
            **self.extra,
            "n_images": len(correct),
            "n_patients": len(set(patients)),
            "accuracy": sum(correct) / max(len(correct), 1),
            "accuracy_ci95": patient_bootstrap(correct, patients, self.n_draws, self.seed)["ci95"],
            "accuracy_mean": stats["mean"],
            "accuracy_median": stats["median"],
            "accuracy_std": stats["std"],
            "n_draws": self.n_draws,
            "fraction": self.fraction,
            "per_image": self.rows,
        }
        atomic_write_json(self.output_file, result)
        summary = {key: value for key, value in result.items() if key != "per_image"}
        self.logger.info("bootstrap accuracy %s -> %s", json.dumps(summary), self.output_file)
        print(json.dumps(summary, indent=2))


class HeaderCSVSaver(CSVSaver):
    """MONAI's CSVSaver (one row per image: file name, then the values) with a header row, so the file reads by column
    name, e.g. ``header=("image", "p_2CH", "p_4CH")`` for the view classifier's predictions.csv."""

    def __init__(self, header: Sequence[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header = list(header)

    def finalize(self) -> None:
        if not self._filepath.exists() or self._filepath.stat().st_size == 0:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self._filepath.write_text(self.delimiter.join(self.header) + "\n")
        super().finalize()
