"""Label fidelity of a label-to-image generator: does a generated image show the anatomy of its label map?

A segmenter trained on real images segments images generated from label maps; the CAMUS Dice (x 100) of its output
against the labels of those maps (LV endocardium, LV epicardium = cavity + myocardium, left atrium, their mean) is the
label fidelity. Stojanovski et al. 2024 rank their generators by the downstream segmenter trained on generated data;
label fidelity is the direct, cheap proxy, measured on a fixed set of maps with a fixed seed so that scores compare
across epochs and recipes. The same segmenter applied to the Gamma-VAE's reconstructions of real images gives the
ceiling any latent generator can reach through that autoencoder.

View fidelity asks the same of the view condition: the accuracy of a real-trained 2CH / 4CH view classifier on images
generated from label maps with their true view (a synthetic-only view classifier cannot beat generated images whose
view it cannot tell).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from monai.utils import convert_to_tensor
from torch import Tensor, nn
from torch.utils.data import Dataset

from echodiff.engines.segmentation_report import camus_scores
from echodiff.data.conditioning import camus_labels_of_condition
from echodiff.data.views import VIEW_CLASSES, view_indices
from echodiff.generation.training import unwrap
from echodiff.io import atomic_write

__all__ = ["DICE_KEYS", "LabelFidelityLogger", "fixed_condition_maps", "label_fidelity", "scores_table", "segment",
           "view_fidelity"]

DICE_KEYS = ("dice_lv_endo", "dice_lv_epi", "dice_la", "dice_mean")


def segment(segmenter: nn.Module, images: Tensor, batch_size: int = 32) -> Tensor:
    """(B, 1, H, W) CAMUS labels predicted by `segmenter` (class scores out) for images in [0, 1]."""
    device = next(itertools.chain(segmenter.parameters(), segmenter.buffers()), torch.empty(0)).device
    segmenter.eval()
    with torch.no_grad():
        out = [segmenter(images[i : i + batch_size].to(device)).argmax(1, keepdim=True).cpu()
               for i in range(0, len(images), batch_size)]  # fmt: skip
    return torch.cat(out)


def label_fidelity(segmenter: nn.Module, images: Tensor, cond_maps: Tensor) -> dict[str, float]:
    """Mean CAMUS Dice x 100 (`DICE_KEYS`) of `segmenter` on `images` against the labels of their condition maps."""
    labels = torch.as_tensor(camus_labels_of_condition(cond_maps.cpu().numpy()).astype(np.int64))
    pred = segment(segmenter, images.float())
    scores = [camus_scores(p, label) for p, label in zip(pred, labels)]
    return {key: float(np.mean([s[key] for s in scores])) for key in DICE_KEYS}


def view_fidelity(classifier: nn.Module, images: Tensor, views: Sequence[str], image_size: Sequence[int],
                  batch_size: int = 32) -> dict[str, float | int]:  # fmt: skip
    """Accuracy of a view `classifier` (2 class scores out, `VIEW_CLASSES`) on `images` in [0, 1], area-resized to
    its input `image_size` as `LoadResizedCAMUSd` resizes real frames, against `views` (the views they were asked
    for): {"accuracy", "accuracy_2CH", "accuracy_4CH" (nan when that view is absent), "n_images"}."""
    labels = view_indices(views, "views")
    device = next(itertools.chain(classifier.parameters(), classifier.buffers()), torch.empty(0)).device
    classifier.eval()
    with torch.no_grad():
        resized = F.interpolate(images.float(), size=tuple(image_size), mode="area")
        predicted = torch.cat([classifier(resized[i : i + batch_size].to(device)).argmax(1).cpu()
                               for i in range(0, len(resized), batch_size)])  # fmt: skip
    correct = (predicted == labels).float()
    per_view = {f"accuracy_{name}": float(correct[labels == index].mean()) if (labels == index).any() else float("nan")
                for index, name in VIEW_CLASSES.items()}  # fmt: skip
    return {"accuracy": float(correct.mean()), **per_view, "n_images": len(labels)}


def fixed_condition_maps(dataset: Dataset, num_images: int, cond_key: str = "cond", image_key: str = "image",
                         view_key: str = "view") -> tuple[Tensor, Tensor, list[str] | None]:  # fmt: skip
    """(condition maps, real images, views) of `num_images` items spread evenly over `dataset` (all when fewer); views
    None when the items have no `view_key`."""
    n = len(dataset)
    picks = np.unique(np.linspace(0, n - 1, min(num_images, n)).round().astype(int))
    items = [dataset[int(i)] for i in picks]
    cond = torch.stack([convert_to_tensor(item[cond_key], track_meta=False) for item in items]).long()
    images = torch.stack([convert_to_tensor(item[image_key], track_meta=False) for item in items]).float()
    views = [item[view_key] for item in items] if all(view_key in item for item in items) else None
    return cond, images, views


class LabelFidelityLogger:
    """Trainer handler: every `interval` epochs (and when training ends), label fidelity of the generator on
    `num_images` fixed, unaugmented condition maps of `dataset` with their views (seed `seed`, `sampler`/`steps` as in
    `LabelToImageGenerator.sample`), appended to the JSON list `output_file` and written to TensorBoard
    (`tensorboard_dir`, tags `label_fidelity/<key>`).

    `segmenter` is a real-trained segmenter (e.g. `echodiff.bundle.load_bundle_network` of echo_pddpm_segmentation)
    or None, which disables the handler. `network` (default: the trainer's) is what samples: pass the EMA copy.
    """

    def __init__(
        self,
        dataset: Dataset,
        segmenter: nn.Module | None,
        output_file: str | Path,
        tensorboard_dir: str | Path | None = None,
        num_images: int = 32,
        interval: int = 5,
        sampler: str | None = None,
        steps: int | None = None,
        seed: int = 0,
        network: nn.Module | None = None,
    ) -> None:
        self.dataset, self.segmenter, self.output_file = dataset, segmenter, Path(output_file)
        self.tensorboard_dir, self.num_images, self.interval = tensorboard_dir, num_images, interval
        self.sampler, self.steps, self.seed, self.network = sampler, steps, seed, network
        self._maps: Tensor | None = None
        self._views: list[str] | None = None
        self._writer = None
        self._last_epoch = -1

    def attach(self, engine: Engine) -> None:
        if self.segmenter is None:
            return
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if engine.state.epoch == self._last_epoch:
            return
        self._last_epoch = engine.state.epoch
        if self._maps is None:
            self._maps, _, self._views = fixed_condition_maps(self.dataset, self.num_images)
        network = unwrap(self.network if self.network is not None else engine.network)
        training = network.training
        network.eval()
        device = engine.state.device
        self.segmenter.to(device)
        start = time.perf_counter()
        with torch.no_grad():
            images, nfe = network.sample(
                self._maps.to(device), self.sampler, self.steps, None, torch.Generator(device).manual_seed(self.seed),
                views=self._views,
            )
        network.train(training)
        scores = label_fidelity(self.segmenter, images.cpu(), self._maps)
        row = {"epoch": engine.state.epoch, "iteration": engine.state.iteration, **scores, "nfe": nfe,
               "n_images": len(self._maps), "seconds": time.perf_counter() - start}  # fmt: skip
        rows = json.loads(self.output_file.read_text()) if self.output_file.is_file() else []
        rows = [r for r in rows if r["epoch"] < row["epoch"]] + [row]
        text = json.dumps(rows, indent=1) + "\n"
        atomic_write(self.output_file, lambda tmp: Path(tmp).write_text(text), suffix=".json")
        engine.logger.info(f"label fidelity at epoch {row['epoch']}: " + ", ".join(f"{k} {scores[k]:.1f}" for k in DICE_KEYS))
        if self.tensorboard_dir is not None:
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.tensorboard_dir))
            for key in DICE_KEYS:
                self._writer.add_scalar(f"label_fidelity/{key}", scores[key], engine.state.iteration)
            self._writer.flush()


def scores_table(rows: Sequence[dict]) -> str:
    """Markdown table of label-fidelity rows (epoch, Dice keys)."""
    lines = ["| epoch | " + " | ".join(DICE_KEYS) + " |", "|---" * (len(DICE_KEYS) + 1) + "|"]
    lines += [f"| {r['epoch']} | " + " | ".join(f"{r[k]:.1f}" for k in DICE_KEYS) + " |" for r in rows]
    return "\n".join(lines)
