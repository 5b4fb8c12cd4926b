"""The study's stages. Each trains or evaluates through a bundle's own configs (`monai.bundle.run`, exactly what a
user runs by hand) and returns a small JSON-able result; `echodiff.study.run` chains and caches them.

| stage                  | bundle / code                                   | output                                   |
|------------------------|-------------------------------------------------|------------------------------------------|
| `data`                 | checks, `holdout_view`                          | training view: train minus held-out      |
| `segmenter_real`       | echo_pddpm_segmentation `train.json`            | real-trained segmenter                   |
| `classifier_real`      | echo_view_classification `train.json`           | real-trained view classifier             |
| `autoencoder`          | echo_ldm_generation `train_autoencoder.json`    | Gamma-VAE (latent generators only)       |
| `diffusion`            | `train_autoencoder.json` + `train_diffusion.json` | generator (EMA), label-fidelity curve  |
| `synthesis`            | `echodiff.generation.synthesize_dataset`        | synthetic CAMUS folder (train + val)     |
| `segmenter_synthetic`  | echo_pddpm_segmentation `train.json`            | synthetic-only segmenter                 |
| `classifier_synthetic` | echo_view_classification `train.json`          | synthetic-only view classifier           |
| `evaluation`           | `inference.json` + `evaluate.json` of both      | scores on the test split, label and view fidelity |
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.bundle import run as bundle_run

from echodiff.benchmarks.clock import clocked_sampling
from echodiff.bundle import find_bundle_root, load_bundle_network
from echodiff.data.camus import holdout_view, list_camus
from echodiff.engines.checkpoints import latest_checkpoint
from echodiff.errors import ConfigValueError, EmptySplitError, MissingFileError
from echodiff.generation.fidelity import fixed_condition_maps, label_fidelity, view_fidelity
from echodiff.generation.checkpoints import load_autoencoder, load_generator
from echodiff.generation.grids import image_grid, label_overlay, write_png
from echodiff.generation.latent_health import encode_and_reconstruct, health_figures, health_problems, latent_health
from echodiff.generation.synthesis import generator_fn, synthesize_dataset

__all__ = ["BUNDLE_CONFIGS", "StudyContext", "bundle_config_files"]

SEGMENTER, CLASSIFIER, GENERATOR = "echo_pddpm_segmentation", "echo_view_classification", "echo_ldm_generation"
BUNDLE_CONFIGS = {
    "segmenter": (SEGMENTER, ("train.json",)),
    "classifier": (CLASSIFIER, ("train.json",)),
    "autoencoder": (GENERATOR, ("train_autoencoder.json",)),
    "diffusion": (GENERATOR, ("train_autoencoder.json", "train_diffusion.json")),
    "segmenter_eval": (SEGMENTER, ("inference.json", "evaluate.json")),
    "classifier_eval": (CLASSIFIER, ("inference.json", "evaluate.json")),
}
STEP_GRID = {"heun": (2, 3, 5, 10, 25), "dpmpp_2m": (2, 3, 5, 10, 25)}  # the EDM family's label fidelity vs steps
SDM_STEP_GRID = {"ddim": (10, 25, 50)}
QUIET_LOGGING = """[loggers]
keys=root
[handlers]
keys=file
[formatters]
keys=plain
[logger_root]
level=INFO
handlers=file
[handler_file]
class=FileHandler
level=INFO
formatter=plain
args=({path!r}, "a")
[formatter_plain]
format=%(asctime)s %(levelname)s %(name)s: %(message)s
"""


@dataclass
class StudyContext:
    """Everything the stages need: folders, splits, the scale's settings, the budget and the sampling choice."""

    workdir: Path
    dataset_dir: Path
    test_dir: Path
    test_split: str
    train_split: str
    holdout: int
    settings: dict
    budget_minutes: float
    shares: Mapping[str, float]
    k: int
    sampler: str
    steps: int
    seed: int
    device: str | None
    quiet: bool
    synthesis_minutes: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        return int(self.settings["image_size"])

    def minutes(self, stage: str) -> float:
        """Wall-clock minutes of training given to `stage` (its share of the budget)."""
        return self.shares[stage] * self.budget_minutes

    def training_bound(self, stage: str, kind: str) -> str:
        """What stops training `stage` (bundle run `kind`): its `max_epochs` (the scale's, else the bundle config's) or
        its minutes, whichever comes first."""
        epochs = self.settings[kind].get("max_epochs")
        if epochs is None:
            epochs = ConfigParser.load_config_files([str(p) for p in bundle_config_files(kind)])["max_epochs"]
        return f"up to {epochs} epochs or {self.minutes(stage):.1f} min, whichever comes first"

    def training_controls(self, stage: str, seed: int | None = None) -> dict:
        """Overrides of training `stage`: its share of the budget, the bundle seed (default the study's) and, when
        quiet, one progress bar over the run (no per-iteration log lines, no bars of the dataset caches)."""
        return {"time_limit_minutes": self.minutes(stage), "seed": self.seed if seed is None else seed,
                "progress_bar": self.quiet, "train#dataset#progress": not self.quiet,
                "validate#dataset#progress": not self.quiet}  # fmt: skip

    def common_overrides(self) -> dict:
        """Overrides every bundle run gets: device and, when quiet, a progress bar instead of per-iteration logs."""
        out: dict[str, Any] = {}
        if self.device is not None:
            out["device"] = f"$torch.device({self.device!r})"
        return out

    def logging_file(self, bundle: str, folder: Path) -> str:
        """The bundle's own logging.conf, or when quiet one that sends the whole log to `folder/log.txt`."""
        if not self.quiet:
            return str(Path(find_bundle_root(bundle)) / "configs" / "logging.conf")
        path = folder / "logging.conf"
        path.write_text(QUIET_LOGGING.format(path=str(folder / "log.txt")))
        return str(path)


def bundle_config_files(kind: str) -> list[Path]:
    """Config files of the bundle run `kind` (see `BUNDLE_CONFIGS`)."""
    bundle, names = BUNDLE_CONFIGS[kind]
    root = Path(find_bundle_root(bundle))
    return [root / "configs" / name for name in names]


@contextlib.contextmanager
def _output_to(log_file: Path | None) -> Iterator[None]:
    """With a `log_file`: print() output, warnings and the stdout handlers of MONAI's own loggers (`get_logger`) go to
    that file, progress bars (stderr) stay on the terminal; without: nothing changes."""
    if log_file is None:
        yield
        return
    with open(log_file, "a") as out, contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _move_handlers(sys.__stdout__, out)
        try:
            yield
        finally:
            _move_handlers(out, sys.__stdout__)


def _move_handlers(old: Any, new: Any) -> None:
    """Point every logging StreamHandler writing to `old` at `new` (MONAI's get_logger binds sys.stdout at creation;
    while this runs under redirect_stdout, sys.stdout is still the log file, hence the explicit streams)."""
    for lg in [logging.root, *logging.root.manager.loggerDict.values()]:
        for handler in getattr(lg, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(new)


def _run_bundle(ctx: StudyContext, folder: Path, kind: str, run_id: str, **overrides: Any) -> None:
    """`monai.bundle.run(run_id)` of the configs of `kind` with `overrides`; quiet: its output goes to folder/log.txt."""
    bundle, _ = BUNDLE_CONFIGS[kind]
    root = Path(find_bundle_root(bundle))
    folder.mkdir(parents=True, exist_ok=True)
    with _output_to(folder / "log.txt" if ctx.quiet else None):
        bundle_run(
            run_id,
            config_file=[str(p) for p in bundle_config_files(kind)],
            meta_file=str(root / "configs" / "metadata.json"),
            logging_file=ctx.logging_file(bundle, folder),
            **ctx.common_overrides(),
            **overrides,
        )


def _patients(dataset_dir: Path, split: str) -> list[str]:
    return list(dict.fromkeys(item["patient"] for item in list_camus(dataset_dir, split, require_label=False)))


def prepare_data(ctx: StudyContext, folder: Path) -> dict:
    """Check the inputs and write the training view: `train_split` minus `holdout` patients (training) and those
    held-out patients (validation, for model selection). The test split must be labelled and share no patient with
    the training data."""
    for where, root, split in (("--dataset_dir", ctx.dataset_dir, ctx.train_split), ("--test_dir", ctx.test_dir,
                                                                                       ctx.test_split)):
        try:
            items = list_camus(root, split, require_label=False)
        except EmptySplitError as err:
            raise EmptySplitError(f"{where} {root}: {err}") from err
        unlabelled = [item["image"] for item in items if "label" not in item]
        if unlabelled:
            raise MissingFileError(
                f"{where} {root} split {split!r}: {len(unlabelled)} of {len(items)} images have no label map, e.g. "
                f"{unlabelled[0]} (expected {Path(unlabelled[0]).name.replace('.nii.gz', '_gt.nii.gz')}); the study "
                "trains and evaluates on labelled images only"
            )
    train, test = _patients(ctx.dataset_dir, ctx.train_split), _patients(ctx.test_dir, ctx.test_split)
    shared = sorted(set(train) & set(test))
    if shared:
        raise ConfigValueError(
            f"--test_dir {ctx.test_dir} split {ctx.test_split!r} shares {len(shared)} patients with the training data "
            f"(--dataset_dir {ctx.dataset_dir} split {ctx.train_split!r}), e.g. {shared[0]}; the test set must be "
            "unseen: pass a split of other patients"
        )
    view = holdout_view(ctx.dataset_dir, folder / "camus", ctx.holdout, seed=ctx.seed, train_split=ctx.train_split,
                        eval_split=None)  # fmt: skip
    return {"train_dir": str(view), "n_train_patients": len(train) - ctx.holdout, "n_holdout_patients": ctx.holdout,
            "n_test_patients": len(test), "n_test_images": len(list_camus(ctx.test_dir, ctx.test_split))}  # fmt: skip


def _training_summary(ckpt_dir: Path, seconds: float, batch_size: int) -> dict:
    """Epochs, iterations and training images/s read from the newest resume checkpoint in `ckpt_dir`."""
    path = latest_checkpoint(ckpt_dir)
    if path is None:
        return {"epochs": 0, "iterations": 0, "images_per_s": None}
    state = torch.load(path, map_location="cpu", weights_only=True)
    trainer = state.get("trainer", {})
    iterations = int(trainer.get("iteration", 0))
    epoch_length = int(trainer.get("epoch_length") or 1)
    return {"epochs": iterations / epoch_length, "iterations": iterations,
            "images_per_s": iterations * batch_size / seconds if seconds > 0 else None}  # fmt: skip


def segmenter_shape(overrides: dict) -> dict:
    """The overrides that rebuild a trained segmenter's network (image size, filters) from its stage's overrides."""
    return {k: overrides[k] for k in ("image_size", "filters") if k in overrides}


def _require(path: Path, stage: str) -> str:
    if not path.is_file():
        raise MissingFileError(
            f"stage {stage} finished without writing {path}: its time share ended before the first validated epoch; "
            "raise --budget_minutes"
        )
    return str(path)


def train_downstream(ctx: StudyContext, folder: Path, dataset_dir: str, stage: str, kind: str,
                     seed: int | None = None) -> dict:  # fmt: skip
    """The `kind` ("segmenter": echo_pddpm_segmentation, "classifier": echo_view_classification) `train.json` on
    `dataset_dir`: training split, best epoch on the validation split, within the share of the budget of `stage`, with
    bundle seed `seed` (default the study's)."""
    overrides = dict(ctx.settings[kind])
    start = time.perf_counter()
    _run_bundle(ctx, folder, kind, "training", dataset_dir=dataset_dir, ckpt_dir=str(folder / "models"),
                output_dir=str(folder / "eval"), **ctx.training_controls(stage, seed), **overrides)  # fmt: skip
    seconds = time.perf_counter() - start
    return {"model": _require(folder / "models" / "model.pt", stage), "overrides": overrides,
            **_training_summary(folder / "models", seconds, overrides.get("batch_size", 16))}  # fmt: skip


def train_autoencoder(ctx: StudyContext, folder: Path, dataset_dir: str, segmenter: dict) -> dict:
    """echo_ldm_generation `train_autoencoder.json`: the Gamma-VAE (best epoch by validation MSE), its latent health
    logged at every validation (with the label fidelity of its reconstructions through the real-trained segmenter),
    and the health of the kept (best) autoencoder on the held-out patients' images (`latent_health`), which the study
    checks before it trains latent diffusion."""
    seg = segmenter["overrides"]
    overrides = {"model": ctx.settings["model"], "image_size": ctx.image_size, **ctx.settings["autoencoder"]}
    start = time.perf_counter()
    _run_bundle(ctx, folder, "autoencoder", "training", dataset_dir=dataset_dir, ckpt_dir=str(folder / "models"),
                output_dir=str(folder / "eval"), **ctx.training_controls("autoencoder"),
                fidelity_segmenter_path=segmenter["model"],
                fidelity_segmenter_overrides=segmenter_shape(seg), **overrides)  # fmt: skip
    seconds = time.perf_counter() - start
    model = _require(folder / "models" / "autoencoder.pt", "autoencoder")
    cond, images, _ = test_maps(ctx, int(ctx.settings["fidelity_images"]), dataset_dir, "validation")
    curve = folder / "eval" / "latent_health.json"
    return {"model": model, "overrides": overrides,
            "health": latent_health(load_autoencoder(model, map_location=ctx.device or "cpu"), images,
                                    (cond > 0).float()),
            "health_curve": json.loads(curve.read_text()) if curve.is_file() else [],
            **_training_summary(folder / "models" / "autoencoder_training", seconds, overrides.get("batch_size", 16))}


def check_latent_health(autoencoder: dict, allow_unhealthy: bool = False) -> None:
    """Refuse to train latent diffusion on a broken Gamma-VAE latent: a `ConfigValueError` naming each health figure
    of the autoencoder stage outside `echodiff.generation.latent_health.HEALTH_LIMITS`, unless `allow_unhealthy`."""
    problems = health_problems(autoencoder["health"])
    if problems and not allow_unhealthy:
        raise ConfigValueError(
            f"the Gamma-VAE latent of stage autoencoder is broken ({'; '.join(problems)} on the held-out images), so "
            "latent diffusion would learn a clipped or dead latent: retrain it with other settings (e.g. --overrides "
            "'{\"autoencoder\": {\"loss#latent_weight\": 1.0}}') or pass --allow_unhealthy_latent true"
        )


def train_diffusion(ctx: StudyContext, folder: Path, dataset_dir: str, autoencoder: str | None,
                    segmenter: dict) -> dict:  # fmt: skip
    """echo_ldm_generation `train_diffusion.json` (on the trained Gamma-VAE `autoencoder` for a latent model; None for a
    pixel model), logging label fidelity with the real-trained segmenter; the saved generator samples with the EMA
    weights."""
    seg = segmenter["overrides"]
    overrides = {"model": ctx.settings["model"], "image_size": ctx.image_size,
                 **{k: v for k, v in ctx.settings["diffusion"].items()}}  # fmt: skip
    if autoencoder is not None:
        overrides = {"autoencoder_args": ctx.settings["autoencoder"].get("autoencoder_args", {}),
                     "autoencoder_path": autoencoder, **overrides}  # fmt: skip
        if "paper_scale" in ctx.settings["autoencoder"]:
            overrides.setdefault("paper_scale", ctx.settings["autoencoder"]["paper_scale"])
    start = time.perf_counter()
    _run_bundle(
        ctx, folder, "diffusion", "training", dataset_dir=dataset_dir, ckpt_dir=str(folder / "models"),
        output_dir=str(folder / "eval"), **ctx.training_controls("diffusion"),
        fidelity_segmenter_path=segmenter["model"], fidelity_segmenter_overrides=segmenter_shape(seg), **overrides,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    model = ctx.settings["model"]
    curve = folder / "eval" / "label_fidelity.json"
    return {"model": _require(folder / "models" / f"generator_{model}.pt", "diffusion"), "overrides": overrides,
            "label_fidelity_curve": json.loads(curve.read_text()) if curve.is_file() else [],
            **_training_summary(folder / "models" / f"{model}_training", seconds, overrides.get("batch_size", 16))}


def synthesis_copies(ctx: StudyContext, generator: torch.nn.Module, source_dir: str, n_maps: int) -> dict:
    """How many augmented copies of each of `n_maps` maps the synthesis makes: `ctx.k`, or with `ctx.synthesis_minutes`
    as many (at least 1) as those minutes allow at the sampling speed measured on 32 training maps (the set is then
    smaller than K per map, and says so)."""
    if ctx.synthesis_minutes is None:
        return {"k": ctx.k}
    cond, _, views = frame_maps(source_dir, "training", ctx.image_size, 32)
    _, _, images_per_s = sample_maps(generator, cond, views, ctx.sampler, ctx.steps, ctx.seed)
    fits = int(ctx.synthesis_minutes * 60 * images_per_s // n_maps)
    return {"k": max(1, min(ctx.k, fits)), "k_requested": ctx.k, "synthesis_minutes": ctx.synthesis_minutes,
            "probe_images_per_s": images_per_s}  # fmt: skip


def synthesize(ctx: StudyContext, folder: Path, source_dir: str, generator_path: str) -> dict:
    """K augmented maps per map of the training view's training and validation (held-out patients) splits, one
    image each, into a CAMUS folder whose splits mirror the source's (fewer copies within `ctx.synthesis_minutes`:
    `synthesis_copies`)."""
    device = ctx.device or "cpu"
    generator = load_generator(generator_path, map_location=device)
    splits = ["training", "validation"]
    copies = synthesis_copies(ctx, generator, source_dir,
                              sum(len(list_camus(source_dir, split)) for split in splits))  # fmt: skip
    generate = generator_fn(generator, sampler=ctx.sampler, steps=ctx.steps, device=device)
    summary = synthesize_dataset(
        source_dir, folder / "camus", generate, split=splits, k=copies["k"], seed=ctx.seed,
        batch_size=32, augment=True, image_size=generator.image_size, progress=True,
        info={**generate.info, "checkpoint": generator_path},
    )  # fmt: skip
    if not summary["complete"]:
        raise MissingFileError(f"synthesis into {folder / 'camus'} did not complete")
    return {"dataset_dir": str(folder / "camus"), "images": summary["cases"], "generated": summary["generated"],
            "images_per_s": summary["images_per_s"], "seconds": summary["seconds"], **copies}  # fmt: skip


def evaluate_segmenter(ctx: StudyContext, folder: Path, model: dict, name: str) -> dict:
    """echo_pddpm_segmentation `evaluate.json` on the test split, Dice / Hausdorff on the native label grid (its
    default `metric_size`)."""
    out = folder / name
    seg = model["overrides"]
    _run_bundle(ctx, out, "segmenter_eval", "evaluating", dataset_dir=str(ctx.test_dir), split=ctx.test_split,
                ckpt_path=model["model"], output_dir=str(out),
                **segmenter_shape(seg))  # fmt: skip
    return json.loads((out / "segmentation_report.json").read_text())


def evaluate_classifier(ctx: StudyContext, folder: Path, model: dict, name: str) -> dict:
    """echo_view_classification `evaluate.json` on the test split: bootstrap accuracy."""
    out = folder / name
    _run_bundle(ctx, out, "classifier_eval", "evaluating", dataset_dir=str(ctx.test_dir), split=ctx.test_split,
                ckpt_path=model["model"], output_dir=str(out), image_size=model["overrides"]["image_size"])
    return json.loads((out / "bootstrap_accuracy.json").read_text())


def frame_maps(dataset_dir: str | Path, split: str, image_size: int, n: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(condition maps, real images, views) of `n` frames spread over `split` of `dataset_dir` at `image_size`,
    preprocessed by the generator bundle's own validation transforms (never augmented)."""
    root = Path(find_bundle_root(GENERATOR))
    parser = ConfigParser()
    parser.read_config([str(root / "configs" / "train_autoencoder.json")])
    parser.update({"dataset_dir": str(dataset_dir), "val_split": split, "image_size": image_size, "num_workers": 0,
                   "validate#dataset#_target_": "Dataset"})  # fmt: skip
    parser["validate#dataset"].pop("num_workers", None)
    parser["validate#dataset"].pop("cache_rate", None)
    return fixed_condition_maps(parser.get_parsed_content("validate#dataset"), n)


def test_maps(ctx: StudyContext, n: int, dataset_dir: str | Path | None = None,
              split: str | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:  # fmt: skip
    """`frame_maps` of the test split (default) or of `split` of `dataset_dir`, at the study's image size."""
    return frame_maps(dataset_dir or ctx.test_dir, split or ctx.test_split, ctx.image_size, n)


def sample_maps(generator: torch.nn.Module, cond: torch.Tensor, views: list[str], sampler: str, steps: int, seed: int,
            batch_size: int = 32, warmup: bool = True) -> tuple[torch.Tensor, int, float]:  # fmt: skip
    """Images of `cond` in their `views` (per-image seeds, batched), NFE per image and images/s, from the clock of the
    generation benchmark (`echodiff.benchmarks.clock.clocked_sampling`)."""
    device = next(generator.parameters()).device
    fn = generator_fn(generator, sampler=sampler, steps=steps, device=device)
    run = clocked_sampling(fn, cond, batch_size=batch_size, seed=seed, warmup=warmup, device=device, views=views)
    return run.images, run.nfe, run.images_per_s


def evaluate_generator(ctx: StudyContext, folder: Path, generator_path: str, segmenter: dict, classifier: dict) -> dict:
    """Label fidelity on unaugmented test maps (the generator never saw them; nothing is selected on them) at the
    study's sampler, against the step count (`STEP_GRID`), the Gamma-VAE ceiling (latent models) and the sample
    grid; view fidelity: the real-trained view `classifier` on the same generated images, asked for in the maps' true
    views."""
    device = ctx.device or "cpu"
    seg = segmenter["overrides"]
    segmenter_net = load_bundle_network(SEGMENTER, segmenter["model"],
                                        segmenter_shape(seg)).to(device)
    classifier_size = classifier["overrides"]["image_size"]
    classifier_net = load_bundle_network(CLASSIFIER, classifier["model"], {"image_size": classifier_size}).to(device)
    generator = load_generator(generator_path, map_location=device).eval()
    cond, real, views = test_maps(ctx, int(ctx.settings["fidelity_images"]))
    images, nfe, images_per_s = sample_maps(generator, cond, views, ctx.sampler, ctx.steps, ctx.seed)
    fidelity = label_fidelity(segmenter_net, images, cond)
    views_fidelity = view_fidelity(classifier_net, images, views, classifier_size)
    rows = []
    for sampler, grid in (SDM_STEP_GRID if generator.model == "sdm" else STEP_GRID).items():
        for steps in grid:
            generated, n, _ = sample_maps(generator, cond, views, sampler, steps, ctx.seed, warmup=False)
            rows.append({"sampler": sampler, "steps": steps, "nfe": n,
                         **label_fidelity(segmenter_net, generated, cond)})  # fmt: skip
    ceiling = {}
    if generator.autoencoder is not None:  # the Gamma-VAE's reconstructions of the test images and its latent health
        outputs = encode_and_reconstruct(generator.autoencoder, real, (cond > 0).float())
        ceiling = {**health_figures(outputs, real), **label_fidelity(segmenter_net, outputs["recon"], cond)}
    real_fidelity = label_fidelity(segmenter_net, real, cond)
    n_grid = min(8, len(cond))
    picks = np.linspace(0, len(cond) - 1, n_grid).round().astype(int)
    cond_g, gen_g, real_g = cond[picks], images[picks], real[picks]
    cond_view = label_overlay(cond_g, cond_g.float() / 4)  # the map itself: grey level per class, structures tinted
    write_png(folder / "grid.png", image_grid([cond_view, gen_g, real_g]))
    write_png(folder / "grid_public.png", image_grid([cond_view, gen_g]))
    torch.save({"cond": cond, "generated": images}, folder / "samples.pt")
    return {"label_fidelity": fidelity, "view_fidelity": views_fidelity, "nfe": nfe, "images_per_s": images_per_s, "n_maps": len(cond),
            "fidelity_vs_steps": rows, "autoencoder_ceiling": ceiling, "real_images_fidelity": real_fidelity}
