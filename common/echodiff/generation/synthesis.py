"""Synthetic datasets from augmented label maps, written in the CAMUS layout (issue echo_ldm_generation, section 4).

Stojanovski et al. 2024 train downstream models on images generated from the training label maps, each augmented
K = 5 times (their data-generation section). From a CAMUS-layout folder, every frame of one split gives its conditioning
map (sector + labels, `condition_map`), resized by nearest neighbour to the generator's size, K augmented copies
(`RandLabelMapAugmentd`, seeded per copy) and one generated image per copy, asked for in the view of its source frame
(the view is a condition of view-conditioned generators, and names the written files). Output folder:

    database_nifti/patientXXXX/patientXXXX_<view>_<phase>.nii.gz       generated image (uint8, 0..255)
                               patientXXXX_<view>_<phase>_gt.nii.gz    CAMUS labels 0..3 of the map it came from
                               patientXXXX_<view>_<phase>_cond.nii.gz  that conditioning map itself (0..4)
    database_split/subgroup_<split>.txt    the synthetic patients of each source split, written once every case is done
    manifest.jsonl                         one line per written case (file names, source, k, seed, model, NFE...)
    manifest_records/<case>.json           the same line per case, written last: the case's "done" marker
    dropped.jsonl                          with a privacy filter: one line per dropped case (its distance, threshold)
    manifest_records/<case>.dropped.json   the same line per dropped case: its "done" marker
    synthesis.json                         the run's settings; a restart with other settings is refused

Synthetic patient number p * K + k + 1 is copy k of source patient p (0-based, in split-file order, the splits one
after the other), so every synthetic patient holds the same views and phases as its source, stays in its source's
split (e.g. a synthetic validation split made from held-out training patients) and the folder reads back with
`list_camus`.
Case i (source frame i // K, copy k = i % K) uses seed `case_seed(seed, i // K, k)` for its augmentation and its
sampling, so each file is reproducible alone, whatever the batch composition or the number of ranks; batches are
sampled in one pass for every sampler, stochastic and DDPM ones included (one generator per image, `echodiff.rng`).

Privacy filter (optional, `echodiff.metrics.realism.PrivacyFilter`): a generated image closer to a training image
(in a real-trained feature space) than the filter's threshold, the 5th percentile of real held-out images' distances,
is dropped: none of its files is written, only its dropped record. A split file then lists only the synthetic
patients whose every frame was written (`list_camus` reads a patient's four frames); the frames of a patient with a
dropped one stay on disk and in the manifest, outside the split files.

Resumable: every file goes to a temp name beside its target and is renamed; a case is done when its image, label
map and record exist, or its dropped record. A restarted run removes stale temp files of the cases it still owes,
skips done cases and rebuilds `manifest.jsonl` (and `dropped.jsonl`) from the records (one line per case).
Sharded: rank r of world w takes the cases with i % w == r (torchrun: rank and world from `torch.distributed`);
whoever finishes last (rank 0 after a barrier under torch.distributed) writes the manifest and the split file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from echodiff import rng
from echodiff.data.augment import RandLabelMapAugmentd
from echodiff.data.camus import (
    NIFTI_FOLDER,
    LoadCAMUSd,
    list_camus,
    write_camus_nifti,
    write_split_file,
)
from echodiff.data.conditioning import N_CONDITION_CLASSES, camus_labels_of_condition, condition_map
from echodiff.errors import ConfigValueError, ShapeMismatchError
from echodiff.io import atomic_write
from echodiff.samplers import ChurnSpec

if TYPE_CHECKING:
    from echodiff.generation.generator import LabelToImageGenerator
    from echodiff.metrics.realism import PrivacyFilter

__all__ = [
    "GeneratorFn",
    "MANIFEST",
    "case_seed",
    "generator_fn",
    "source_condition_map",
    "synthesize_dataset",
    "write_manifest",
]

# generate(cond_maps (B, 1, H, W) int64, seeds, views "2CH"/"4CH") -> (images (B, 1, H, W) in [0, 1], NFE per image)
Generate = Callable[[torch.Tensor, Sequence[int], Sequence[str]], tuple[torch.Tensor, int]]

MANIFEST = "manifest.jsonl"
DROPPED = "dropped.jsonl"
RECORDS = "manifest_records"
SETTINGS = "synthesis.json"
# CAMUS label of each condition class: outside sector 0, LV cavity 1, in-sector tissue 0, myocardium 2, LA 3
def case_seed(seed: int, source_index: int, k: int) -> int:
    """Seed (0 <= s < 2**32) of copy k of source frame `source_index`, mixed from the run seed by `SeedSequence`."""
    return int(np.random.SeedSequence([seed, source_index, k]).generate_state(1)[0])


@dataclass(frozen=True)
class Case:
    """One synthetic frame: copy `k` of source frame `source_index`, written as `patient`'s `view`/`phase`."""

    source_index: int
    k: int
    seed: int
    patient: str
    view: str
    phase: str
    source: dict
    split: str = "training"

    @property
    def name(self) -> str:
        return f"{self.patient}_{self.view}_{self.phase}"

    def files(self, out_dir: Path) -> dict[str, Path]:
        """Image, label map, conditioning map and record paths (the record last: it marks the case done), and the
        record of a case that the privacy filter dropped."""
        base = out_dir / NIFTI_FOLDER / self.patient / self.name
        return {
            "image": Path(f"{base}.nii.gz"),
            "label": Path(f"{base}_gt.nii.gz"),
            "cond": Path(f"{base}_cond.nii.gz"),
            "record": out_dir / RECORDS / f"{self.name}.json",
            "dropped": out_dir / RECORDS / f"{self.name}.dropped.json",
        }

    def is_written(self, out_dir: Path) -> bool:
        files = self.files(out_dir)
        return all(files[key].is_file() for key in ("image", "label", "record"))

    def is_dropped(self, out_dir: Path) -> bool:
        return self.files(out_dir)["dropped"].is_file()

    def is_done(self, out_dir: Path) -> bool:
        return self.is_written(out_dir) or self.is_dropped(out_dir)


def plan_cases(items: Sequence[dict], k: int, seed: int) -> list[Case]:
    """All K copies of every source frame, in case order i = source_index * K + k; copy k of source patient p
    (0-based, in listing order) becomes patient p * K + k + 1, in the split named by the item's "split" key
    (default "training")."""
    patient_index = {patient: p for p, patient in enumerate(dict.fromkeys(item["patient"] for item in items))}
    return [
        Case(
            source_index=source_index,
            k=copy,
            seed=case_seed(seed, source_index, copy),
            patient=f"patient{patient_index[item['patient']] * k + copy + 1:04d}",
            view=item["view"],
            phase=item["phase"],
            source=item,
            split=item.get("split", "training"),
        )
        for source_index, item in enumerate(items)
        for copy in range(k)
    ]


def source_condition_map(item: dict, image_size: int | None) -> tuple[torch.Tensor, tuple[float, float]]:
    """(1, H, W) int64 conditioning map of a CAMUS frame, nearest-resized to `image_size`, and its pixel spacing."""
    data = LoadCAMUSd()({"image": item["image"], "label": item["label"]})
    cond = torch.as_tensor(condition_map(data["image"], data["label"]))
    spacing = tuple(float(s) for s in data["spacing"])
    if image_size is None or tuple(cond.shape[1:]) == (image_size, image_size):
        return cond, spacing
    height, width = cond.shape[1:]
    resized = F.interpolate(cond[None].float(), size=(image_size, image_size), mode="nearest-exact")
    return resized[0].long(), (spacing[0] * height / image_size, spacing[1] * width / image_size)


def synthesize_dataset(
    source_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    generate: Generate,
    *,
    split: str | Sequence[str] = "training",
    k: int = 5,
    seed: int = 0,
    batch_size: int = 8,
    augment: bool = True,
    image_size: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = True,
    info: Mapping[str, Any] | None = None,
    privacy_filter: PrivacyFilter | None = None,
    privacy_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write K generated images per label map of `split` in `source_dir` to `out_dir` (CAMUS layout + manifest).

    `split` may name several splits (e.g. ["training", "validation"]): each synthetic patient goes to its source's
    split, so downstream configs train and select on the synthetic folder unchanged.

    `generate(cond_maps, seeds, views)` maps a (B, 1, H, W) int64 batch of conditioning maps (0..4), one seed and one
    view ("2CH" / "4CH", the file's) per map to (B, 1, H, W) images in [0, 1] and the NFE per image; `generator_fn`
    adapts a `LabelToImageGenerator`. When it has an `image_size` (the model's fixed size), the maps must come out at
    that size: set `image_size` to resize them (nearest), or `ShapeMismatchError` names the first map that does not
    fit. `augment=False` keeps every copy of a map unaugmented (the copies then differ only by seed). `info` (model,
    sampler, steps...) goes into every manifest line. Rank and world size come from `torch.distributed` when it is initialised, else from the
    arguments (default 0 of 1). `privacy_filter` (default None: keep every image) drops images closer to a training
    image than its threshold; `privacy_info` (what the features and images were, e.g. the classifier checkpoint and
    the splits) joins the run's settings with the filter's percentile, so a resumed run filters as the first did.
    Returns a summary: cases, this rank's share, skipped (done before), generated (this sitting, dropped ones
    included), images_per_s, complete, manifest (path once written, else None), dropped (every rank's, once the
    manifest is written; None without a filter) and privacy_threshold.
    """
    if k < 1:
        raise ConfigValueError(f"k={k}: the number of augmented copies per label map must be at least 1.")
    if batch_size < 1:
        raise ConfigValueError(f"batch_size={batch_size} must be at least 1.")
    rank, world_size = _rank_and_world(rank, world_size)
    out = Path(out_dir)
    info = dict(info or {})
    settings = {
        "source_dir": str(Path(source_dir).resolve()), "split": split, "k": k, "seed": seed, "augment": augment,
        "image_size": image_size, "info": info,
        "privacy_filter": None if privacy_filter is None else {"percentile": privacy_filter.percentile,
                                                               **(privacy_info or {})},
    }
    _claim_out_dir(out, settings)
    splits = [split] if isinstance(split, str) else list(split)
    if not splits or len(set(splits)) != len(splits):
        raise ConfigValueError(f"split={split!r}; expected one split name or a list of distinct split names")
    items = [{**item, "split": name} for name in splits for item in list_camus(source_dir, name, require_label=True)]
    cases = plan_cases(items, k, seed)
    mine = cases[rank::world_size]
    pending = [case for case in mine if not case.is_done(out)]
    for case in pending:
        _remove_temp_files(case.files(out).values())

    model_size = getattr(generate, "image_size", None)
    augmentation = RandLabelMapAugmentd(keys="cond") if augment else None
    bar = tqdm(total=len(mine), initial=len(mine) - len(pending), unit="img", desc=f"synthesis rank {rank}",
               position=rank, disable=not progress, dynamic_ncols=True)
    start = time.perf_counter()
    with bar:
        for batch in _batches(pending, batch_size, image_size, augmentation, model_size):
            batch_start = time.perf_counter()
            cond_maps = torch.stack([cond for _, cond, _ in batch])
            images, nfe = generate(cond_maps, [case.seed for case, _, _ in batch], [case.view for case, _, _ in batch])
            _check_images(images, cond_maps)
            distances = [None] * len(batch) if privacy_filter is None else privacy_filter.distances(images).tolist()
            seconds = (time.perf_counter() - batch_start) / len(batch)
            for (case, cond, spacing), image, distance in zip(batch, images, distances):
                if distance is None:
                    _write_case(out, case, cond, image, spacing, nfe, seconds, augment, info)
                elif distance < privacy_filter.threshold:
                    _write_dropped(out, case, distance, privacy_filter.threshold)
                else:
                    privacy = {"nearest_training_distance": distance, "privacy_threshold": privacy_filter.threshold}
                    _write_case(out, case, cond, image, spacing, nfe, seconds, augment, {**info, **privacy})
            bar.update(len(batch))
    elapsed = time.perf_counter() - start

    summary = {
        "out_dir": str(out), "split": split, "cases": len(cases), "rank": rank, "world_size": world_size,
        "rank_cases": len(mine), "skipped": len(mine) - len(pending), "generated": len(pending),
        "seconds": elapsed, "images_per_s": len(pending) / elapsed if pending and elapsed > 0 else None,
        "privacy_threshold": None if privacy_filter is None else privacy_filter.threshold,
    }
    distributed = dist.is_available() and dist.is_initialized()
    if distributed:
        dist.barrier()
    if distributed and rank != 0:
        return {**summary, "complete": None, "manifest": None, "dropped": None}
    complete = write_manifest(out, cases)
    dropped = None if privacy_filter is None else sum(case.is_dropped(out) for case in cases)
    return {**summary, "complete": complete, "manifest": str(out / MANIFEST), "dropped": dropped}


def write_manifest(out_dir: Path, cases: Sequence[Case]) -> bool:
    """Rebuild `manifest.jsonl` from the records of the written cases and `dropped.jsonl` from those of the dropped
    ones (in case order, one line each); once every case is done, also write the split file of each case split,
    listing the patients whose every case was written. Returns whether every case is done."""
    for name, key, done in ((MANIFEST, "record", Case.is_written), (DROPPED, "dropped", Case.is_dropped)):
        lines = [json.loads(case.files(out_dir)[key].read_text()) for case in cases if done(case, out_dir)]
        if lines or name == MANIFEST:
            text = "".join(json.dumps(line) + "\n" for line in lines)
            _remove_temp_files([out_dir / name])
            atomic_write(out_dir / name, lambda tmp: Path(tmp).write_text(text), suffix=".jsonl")
    complete = all(case.is_done(out_dir) for case in cases)
    if complete:
        incomplete = {case.patient for case in cases if case.is_dropped(out_dir)}
        for split in dict.fromkeys(case.split for case in cases):
            patients = (case.patient for case in cases if case.split == split and case.patient not in incomplete)
            write_split_file(out_dir, split, dict.fromkeys(patients))
    return complete


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    rank, world_size = rank or 0, world_size or 1
    if not 0 <= rank < world_size:
        raise ConfigValueError(f"rank={rank} is outside 0..{world_size - 1} for world_size={world_size}.")
    return rank, world_size


def _claim_out_dir(out: Path, settings: dict) -> None:
    """Write the run's settings to `synthesis.json`, or check them against those of the run that started `out`."""
    path = out / SETTINGS
    settings = json.loads(json.dumps(settings, default=str))
    if path.is_file():
        started = json.loads(path.read_text())
        differing = [key for key in settings if started.get(key) != settings[key]]
        if differing:
            shown = "; ".join(f"{key}: {started.get(key)!r} there, {settings[key]!r} now" for key in differing)
            raise ConfigValueError(
                f"{out} holds a synthesis started with other settings ({shown}); resume with the same settings "
                f"or write to another out_dir."
            )
        return
    text = json.dumps(settings, indent=2) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text), suffix=".json")


def _remove_temp_files(paths: Iterable[Path]) -> None:
    """Delete temp files that a killed writer left beside `paths` (`atomic_write` names them `.<name>.*`)."""
    for path in paths:
        if path.parent.is_dir():
            for stale in path.parent.glob(f".{path.name}.*"):
                stale.unlink(missing_ok=True)


def _batches(
    cases: Sequence[Case],
    batch_size: int,
    image_size: int | None,
    augmentation: RandLabelMapAugmentd | None,
    model_size: int | None,
) -> Iterator[list[tuple[Case, torch.Tensor, tuple[float, float]]]]:
    """Batches of (case, augmented (1, H, W) map, spacing), same-shaped within a batch; each source read once."""
    batch: list[tuple[Case, torch.Tensor, tuple[float, float]]] = []
    loaded: tuple[int, torch.Tensor, tuple[float, float]] | None = None
    for case in cases:
        if loaded is None or loaded[0] != case.source_index:
            loaded = (case.source_index, *source_condition_map(case.source, image_size))
            _check_model_size(loaded[1], case.source["label"], model_size, image_size)
        _, cond, spacing = loaded
        if augmentation is not None:
            augmentation.set_random_state(case.seed)
            cond = augmentation({"cond": cond})["cond"]
        if batch and (len(batch) == batch_size or batch[0][1].shape != cond.shape):
            yield batch
            batch = []
        batch.append((case, cond, spacing))
    if batch:
        yield batch


def _check_model_size(cond: torch.Tensor, label_path: str, model_size: int | None, image_size: int | None) -> None:
    if model_size is not None and tuple(cond.shape[1:]) != (model_size, model_size):
        given = "" if image_size is None else f" (resized to image_size={image_size})"
        raise ShapeMismatchError(
            f"{label_path} gives a {cond.shape[1]} x {cond.shape[2]} conditioning map{given} but the generator takes "
            f"{model_size} x {model_size} maps; pass image_size={model_size} to resize the maps (nearest)."
        )


def _check_images(images: torch.Tensor, cond_maps: torch.Tensor) -> None:
    if tuple(images.shape) != tuple(cond_maps.shape):
        raise ShapeMismatchError(
            f"generate returned images of shape {tuple(images.shape)}; expected the maps' shape "
            f"{tuple(cond_maps.shape)} (B, 1, H, W)."
        )


def _write_case(
    out: Path,
    case: Case,
    cond: torch.Tensor,
    image: torch.Tensor,
    spacing: tuple[float, float],
    nfe: int,
    seconds: float,
    augment: bool,
    info: Mapping[str, Any],
) -> None:
    """Write one case's conditioning map, label map and image (each atomically), then its record."""
    files = case.files(out)
    cond_hw = cond[0].cpu().numpy().astype(np.uint8)
    image_hw = np.round(image[0].detach().float().clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)
    write_camus_nifti(files["cond"], cond_hw, spacing)
    write_camus_nifti(files["label"], camus_labels_of_condition(cond_hw), spacing)
    write_camus_nifti(files["image"], image_hw, spacing)
    record = {
        "case": case.name, "patient": case.patient, "view": case.view, "phase": case.phase, "split": case.split,
        **{key: str(files[key].relative_to(out)) for key in ("image", "label", "cond")},
        "source_patient": case.source["patient"], "source_image": case.source["image"],
        "source_label": case.source["label"], "k": case.k, "augmented": augment, "seed": case.seed,
        "image_size": list(image_hw.shape), "condition_classes": N_CONDITION_CLASSES, **info,
        "nfe": int(nfe), "seconds": seconds,
    }
    text = json.dumps(record, default=str)
    atomic_write(files["record"], lambda tmp: Path(tmp).write_text(text), suffix=".json")


def _write_dropped(out: Path, case: Case, distance: float, threshold: float) -> None:
    """Write the record of a case that the privacy filter dropped (no image, label or conditioning map)."""
    record = {"case": case.name, "patient": case.patient, "split": case.split, "source_image": case.source["image"],
              "k": case.k, "seed": case.seed, "nearest_training_distance": distance, "privacy_threshold": threshold}
    text = json.dumps(record)
    atomic_write(case.files(out)["dropped"], lambda tmp: Path(tmp).write_text(text), suffix=".json")


@dataclass(frozen=True)
class GeneratorFn:
    """`generate(cond_maps, seeds, views)` from a `LabelToImageGenerator` (`views` as in its `sample`): image b's randomness comes from
    `torch.Generator(device).manual_seed(seeds[b])`, so it does not depend on the rest of the batch, and the batch is
    sampled in one pass (equal to sampling each image alone up to floating-point rounding). Deterministic EDM-family
    sampling (churn None) draws each image's start noise from its seed; stochastic and DDPM sampling pass one
    generator per image (`echodiff.rng`), which also feeds the noise of every step.

    `sampler` / `steps` None take the model's defaults (`LabelToImageGenerator.sample`); the manifest records them
    as given, next to the NFE each image took. `callback` goes to every `sample` call (a benchmark stops SDM early
    through it).
    """

    generator: LabelToImageGenerator
    sampler: str | None = None
    steps: int | None = None
    churn: ChurnSpec | None = None
    device: str | torch.device = "cpu"
    callback: Callable[[int, torch.Tensor, float, torch.Tensor], None] | None = None

    @property
    def image_size(self) -> int:
        return self.generator.image_size

    @property
    def info(self) -> dict[str, Any]:
        """What the manifest records about the generator and the sampling."""
        churn = None if self.churn is None else dataclasses.asdict(self.churn)
        return {"model": self.generator.model, "sampler": self.sampler, "steps": self.steps, "churn": churn}

    def start_noise(self, cond_maps: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """Unit start noise n (x_0 = sigma_max n, EDM family) for `cond_maps`, image b's from `seeds[b]`: what a call
        without `noise` starts from."""
        if self.generator.scheduler is not None:
            raise ConfigValueError(
                f"model {self.generator.model!r} starts from its scheduler's prior; start noise (e.g. the clips' "
                f"renewal) applies to the EDM-family models (vp, ve, edm, edm_l128, edm_l64)"
            )
        rngs = [torch.Generator(self.device).manual_seed(int(seed)) for seed in seeds]
        return rng.randn(self.generator.diffusion_shape(cond_maps), rngs, device=self.device)

    @torch.no_grad()
    def __call__(
        self, cond_maps: torch.Tensor, seeds: Sequence[int], views: Sequence[str] | str | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, int]:  # fmt: skip
        """Images and NFE of `cond_maps`; `noise` (EDM family) replaces the start noise drawn from `seeds` (which
        still feed a stochastic sampler's churn)."""
        cond_maps = cond_maps.to(self.device)
        rngs = [torch.Generator(self.device).manual_seed(int(seed)) for seed in seeds]
        if noise is None and self.churn is None and self.generator.scheduler is None:
            # deterministic ODE sampling: the start noise is the only randomness
            noise = self.start_noise(cond_maps, seeds)
        images, nfe = self.generator.sample(
            cond_maps, sampler=self.sampler, steps=self.steps, churn=self.churn, generator=rngs, views=views,
            callback=self.callback, noise=None if noise is None else noise.to(self.device),
        )
        return images.float().cpu(), nfe


def generator_fn(
    generator: LabelToImageGenerator,
    sampler: str | None = None,
    steps: int | None = None,
    churn: ChurnSpec | None = None,
    device: str | torch.device = "cpu",
    callback: Callable[[int, torch.Tensor, float, torch.Tensor], None] | None = None,
) -> GeneratorFn:
    """Adapt `generator` (moved to `device`, in eval mode) for `synthesize_dataset`."""
    return GeneratorFn(generator.to(device).eval(), sampler, steps, churn, device, callback)
