"""The comparison's own stages (`echodiff.study.compare`), each a function of a folder that returns a small JSON-able
result, cached like the study's stages (`echodiff.study.cache`).

| stage                    | what it measures                                                                        |
|--------------------------|-----------------------------------------------------------------------------------------|
| `realism` (per generator) | Frechet distance and MMD to the real test images (equal halves), two-sample test accuracy, diversity, copy rate, cost, held-out label fidelity; SDM also with its 1000-step DDPM |
| `realism_checks`          | the same realism figures on real images: real against real, and against blurred real images |
| `solvers` (per generator) | label fidelity and seconds per image for Euler, Heun and DPM-Solver++(2M) against steps |
| `real_plus_synthetic`     | segmenter and view classifier trained on the real training view plus a generator's synthetic set |

Realism lives in the feature space of the real-trained view classifier (`echodiff.metrics.realism.FeatureSpace`):
no Inception network can be fetched at run time. Its Frechet distance and MMD are measured between equal halves of
the test patients over `REALISM_SPLITS` random splits (`split_half_realism`), for the generators and for the checks
alike; the classifier two-sample test (`two_sample_accuracy`) adds a figure that no borrowed feature space limits. Selection happens on the held-out training patients (the training
view's validation split): label fidelity there picks the generators whose solvers are compared; nothing is chosen on
the test split.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.transforms import GaussianSmooth

from echodiff.benchmarks.flops import network_and_decoder_flops, network_of
from echodiff.bundle import load_bundle_network
from echodiff.data.camus import NIFTI_FOLDER, list_camus, write_split_file
from echodiff.data.camus_input import load_camus_images
from echodiff.errors import ConfigValueError
from echodiff.generation.checkpoints import load_generator
from echodiff.generation.fidelity import DICE_KEYS, label_fidelity
from echodiff.generation.synthesis import RECORDS
from echodiff.metrics.realism import FeatureSpace, intra_map_ms_ssim, privacy, split_half_realism, two_sample_accuracy
from echodiff.samplers import SAMPLERS
from echodiff.study import stages
from echodiff.study.stages import SEGMENTER, StudyContext, segmenter_shape

__all__ = ["SOLVER_STEPS", "merged_camus", "real_plus_synthetic", "realism", "realism_checks", "solvers"]

SOLVER_STEPS = (2, 3, 5, 10, 25)
REALISM_SPLITS = 10  # random patient halves per Frechet distance / MMD figure
C2ST_STEPS = 200  # training steps of each classifier two-sample test
SDM_DDPM_MIN_MAPS = 50  # SDM's 1000-step DDPM is scored on at least this many test maps, however long it takes
SYNTHETIC_PREFIX = "patientsyn"  # patient ids of synthetic cases in a merged folder (CAMUS folders match patient*)


def _features(ctx: StudyContext, classifier: Mapping) -> FeatureSpace:
    return FeatureSpace.from_view_classifier(classifier["model"], classifier["overrides"]["image_size"],
                                             device=ctx.device or "cpu")  # fmt: skip


def _segmenter(ctx: StudyContext, segmenter: Mapping) -> torch.nn.Module:
    return load_bundle_network(SEGMENTER, segmenter["model"],
                               segmenter_shape(segmenter["overrides"])).to(ctx.device or "cpu")  # fmt: skip


def _test_patients(ctx: StudyContext, n: int) -> list[str]:
    """The patient of each of the `n` frames that `stages.test_maps` picks (`fixed_condition_maps`' even spread)."""
    items = list_camus(ctx.test_dir, ctx.test_split)
    picks = np.unique(np.linspace(0, len(items) - 1, min(n, len(items))).round().astype(int))
    return [items[i]["patient"] for i in picks]


def _split_realism(ctx: StudyContext, features: FeatureSpace, real: torch.Tensor, other: torch.Tensor,
                   patients: Sequence[str]) -> dict:  # fmt: skip
    return split_half_realism(features(real), features(other), patients, REALISM_SPLITS, ctx.seed)


def _blurred(images: torch.Tensor, sigma: float) -> torch.Tensor:
    return GaussianSmooth(sigma=sigma)(images.squeeze(1)).unsqueeze(1).clamp(0, 1)


def _seconds_per_image(images_per_s: float) -> float:
    return 1.0 / images_per_s if images_per_s > 0 else float("inf")


def realism(ctx: StudyContext, folder: Path, generator_path: str, samples_path: Path, synthetic_dir: str,
            train_dir: str, segmenter: Mapping, classifier: Mapping, diversity_maps: int = 16,
            diversity_seeds: int = 4, selection_maps: int = 64, sdm_minutes: float = 40.0,
            c2st_steps: int = C2ST_STEPS) -> dict:  # fmt: skip
    """Realism, diversity, privacy, cost and held-out label fidelity of one trained generator.

    - `realism_fd` / `realism_mmd`: the real test images against the images the study's evaluation generated from
      their maps (`samples_path`), in the view classifier's feature space, between equal halves of the test patients
      (`split_half_realism`, `REALISM_SPLITS` splits; per-split values in `realism_splits`), as `realism_checks`
      measures real against real.
    - `realism_c2st_accuracy`: the classifier two-sample test, trained on the real training images against the
      synthetic training set for `c2st_steps`, scored on the real test images against the generated ones (0.5:
      indistinguishable).
    - `diversity_msssim`: mean MS-SSIM between `diversity_seeds` images of each of `diversity_maps` test maps.
    - `copy_rate`: share of the synthetic training set (`synthetic_dir`, training split) closer to a real training
      image than the 5th percentile of the held-out real images' distances (`echodiff.metrics.realism.privacy`).
    - `label_fidelity_holdout`: label fidelity on `selection_maps` maps of the held-out training patients: what the
      comparison selects on.
    - `gflops_per_image`: NFE x one network call + one decoder call (`echodiff.benchmarks.flops`).
    - sdm only, `ddpm1000`: label fidelity and realism with its own 1000-step DDPM on as many test maps as
      `sdm_minutes` allow (at least `SDM_DDPM_MIN_MAPS`; the count is `n_maps`).
    """
    device = ctx.device or "cpu"
    generator = load_generator(generator_path, map_location=device).eval()
    features, segmenter_net = _features(ctx, classifier), _segmenter(ctx, segmenter)
    samples = torch.load(samples_path, map_location="cpu", weights_only=True)
    cond, real, views = stages.test_maps(ctx, len(samples["cond"]))
    if not torch.equal(cond, samples["cond"]):
        raise ConfigValueError(f"{samples_path} holds other maps than the test split's; expected the evaluation stage's "
                               "samples of these test maps: rerun it (--force evaluation)")
    split = _split_realism(ctx, features, real, samples["generated"], _test_patients(ctx, len(cond)))
    out: dict = {"realism_fd": split["fd"], "realism_mmd": split["mmd"], "realism_splits": split,
                 "n_realism_images": len(real)}  # fmt: skip

    picks = np.unique(np.linspace(0, len(cond) - 1, min(diversity_maps, len(cond))).round().astype(int))
    copies = [stages.sample_maps(generator, cond[picks], [views[i] for i in picks], ctx.sampler, ctx.steps,
                             ctx.seed + 100_000 * (s + 1), warmup=False)[0] for s in range(diversity_seeds)]  # fmt: skip
    out["diversity_msssim"] = intra_map_ms_ssim(torch.stack(copies, dim=1))
    out["diversity_maps"], out["diversity_seeds"] = len(picks), diversity_seeds

    size = [ctx.image_size, ctx.image_size]
    synthetic, training = (load_camus_images(d, "training", size) for d in (synthetic_dir, train_dir))
    found = privacy(features(synthetic), features(training), features(load_camus_images(train_dir, "validation", size)))
    out["realism_c2st_accuracy"] = two_sample_accuracy(training, synthetic, real, samples["generated"], c2st_steps,
                                                       seed=ctx.seed, device=device)  # fmt: skip
    out.update(copy_rate=found.copy_rate, copy_threshold=found.threshold,
               synthetic_nearest_median=float(found.synthetic_distances.median()),
               heldout_nearest_median=float(found.heldout_distances.median()),
               n_privacy_images=len(found.synthetic_distances))  # fmt: skip

    held_cond, _, held_views = stages.test_maps(ctx, selection_maps, train_dir, "validation")
    held, nfe, images_per_s = stages.sample_maps(generator, held_cond, held_views, ctx.sampler, ctx.steps, ctx.seed)
    out["label_fidelity_holdout"] = {**label_fidelity(segmenter_net, held, held_cond), "n_maps": len(held_cond)}
    network, decoder = network_and_decoder_flops(generator)
    out.update(nfe=nfe, gflops_per_image=(nfe * network + decoder) / 1e9, sampling_images_per_s=images_per_s,
               denoiser_parameters=sum(p.numel() for p in network_of(generator).parameters()),
               autoencoder_parameters=sum(p.numel() for p in generator.autoencoder.parameters())
               if generator.autoencoder is not None else 0)  # fmt: skip
    if generator.model == "sdm":
        out["ddpm1000"] = _sdm_ddpm(ctx, generator, features, segmenter_net, sdm_minutes)
    return out


def _sdm_ddpm(ctx: StudyContext, generator: torch.nn.Module, features: FeatureSpace, segmenter_net: torch.nn.Module,
              minutes: float, batch_size: int = 10) -> dict:  # fmt: skip
    """SDM with its own reverse DDPM over all T steps on test maps, batch after batch, until `minutes` are spent (and
    at least `SDM_DDPM_MIN_MAPS` maps are done): label fidelity and realism on the maps it reached."""
    cond, real, views = stages.test_maps(ctx, int(ctx.settings["fidelity_images"]))
    patients = _test_patients(ctx, len(cond))
    order = np.random.default_rng(ctx.seed).permutation(len(cond))  # maps spread over the test patients
    images, done, start = [], [], time.perf_counter()
    for first in range(0, len(order), batch_size):
        elapsed = time.perf_counter() - start
        if elapsed >= minutes * 60 and len(done) >= SDM_DDPM_MIN_MAPS:
            break
        picks = order[first : first + batch_size]
        images.append(stages.sample_maps(generator, cond[picks], [views[i] for i in picks], "ddpm",
                                     generator.scheduler.num_train_timesteps, ctx.seed, warmup=False)[0])  # fmt: skip
        done.extend(picks.tolist())
    seconds = time.perf_counter() - start
    generated, index = torch.cat(images), torch.as_tensor(done)
    return {"label_fidelity": label_fidelity(segmenter_net, generated, cond[index]),
            **{f"realism_{k}": v for k, v in _split_realism(ctx, features, real[index], generated,
                                                            [patients[i] for i in done]).items() if k in ("fd", "mmd")},
            "n_maps": len(done), "nfe": generator.scheduler.num_train_timesteps,
            "seconds_per_image": seconds / len(done)}  # fmt: skip


def realism_checks(ctx: StudyContext, folder: Path, classifier: Mapping, n_images: int, train_dir: str,
                   blur_sigma: float = 1.5, c2st_steps: int = C2ST_STEPS) -> dict:  # fmt: skip
    """The realism figures where the answer is known, measured as the generators' are (`realism`):

    - `real_vs_real`: the real test images of one half of the test patients against those of the other half
      (`split_half_realism`; low, and its spread over the splits is the figures' noise); the two-sample test trained
      on two halves of the training patients and scored on two halves of the test patients (about 0.5);
    - `real_vs_blurred_real`: the same with the second half blurred by a Gaussian of `blur_sigma` pixels (higher;
      the two-sample test near 1). Each two-sample test trains for `c2st_steps`."""
    features = _features(ctx, classifier)
    _, real, _ = stages.test_maps(ctx, n_images)
    patients = _test_patients(ctx, n_images)
    size = [ctx.image_size, ctx.image_size]
    training = load_camus_images(train_dir, "training", size)
    train_patients = [item["patient"] for item in list_camus(train_dir, "training", require_label=False)]

    def halves(images: torch.Tensor, groups: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Images of a random half of the patients (seeded), and the rest: no ordering of patient ids leaks in."""
        patients = list(dict.fromkeys(groups))
        first = set(np.random.default_rng(ctx.seed).permutation(patients)[: len(patients) // 2].tolist())
        in_a = torch.as_tensor([g in first for g in groups])
        return images[in_a], images[~in_a]

    (train_a, train_b), (test_a, test_b) = halves(training, train_patients), halves(real, patients)
    device = ctx.device or "cpu"
    c2st = {"real_vs_real": two_sample_accuracy(train_a, train_b, test_a, test_b, c2st_steps, seed=ctx.seed,
                                                device=device),
            "real_vs_blurred_real": two_sample_accuracy(train_a, _blurred(train_b, blur_sigma), test_a,
                                                        _blurred(test_b, blur_sigma), c2st_steps, seed=ctx.seed,
                                                        device=device)}  # fmt: skip
    return {name: {**_split_realism(ctx, features, real, other, patients), "c2st_accuracy": c2st[name]}
            for name, other in (("real_vs_real", real), ("real_vs_blurred_real", _blurred(real, blur_sigma)))} | {
        "blur_sigma": blur_sigma, "n_images": len(real)}  # fmt: skip


def solvers(ctx: StudyContext, folder: Path, generator_path: str, train_dir: str, segmenter: Mapping,
            steps: Sequence[int] = SOLVER_STEPS, n_maps: int = 64) -> list[dict]:  # fmt: skip
    """Label fidelity against NFE for every ODE solver (`echodiff.samplers.SAMPLERS`) at `steps`, on `n_maps` maps of
    the held-out training patients, with the seconds per image of the sampling clock (`clocked_sampling`, one warm-up
    call per solver): the paper's solver comparison (Stojanovski et al. 2024) for an EDM-family generator."""
    generator = load_generator(generator_path, map_location=ctx.device or "cpu").eval()
    segmenter_net = _segmenter(ctx, segmenter)
    cond, _, views = stages.test_maps(ctx, n_maps, train_dir, "validation")
    rows = []
    for sampler in SAMPLERS:
        for i, n in enumerate(steps):
            images, nfe, images_per_s = stages.sample_maps(generator, cond, views, sampler, n, ctx.seed, warmup=i == 0)
            rows.append({"model": generator.model, "sampler": sampler, "steps": n, "nfe": nfe,
                         **label_fidelity(segmenter_net, images, cond), "seconds_per_image": _seconds_per_image(images_per_s),
                         "n_maps": len(cond), "maps": "held-out training patients"})  # fmt: skip
    return rows


def _info_file(synthetic_dir: str | Path, item: Mapping) -> Path | None:
    """The Info_<view>.cfg of a synthetic case: its own, else that of the real patient whose map it was drawn from
    (its synthesis record's `source_image`), so real and synthetic items carry the same info keys (one batch holds
    both)."""
    own = Path(item["image"]).parent / f"Info_{item['view']}.cfg"
    if own.is_file():
        return own
    record = Path(synthetic_dir) / RECORDS / f"{Path(item['image']).name.removesuffix('.nii.gz')}.json"
    if record.is_file():
        source = Path(json.loads(record.read_text())["source_image"]).parent / own.name
        return source if source.is_file() else None
    return None


def merged_camus(real_dir: str | Path, synthetic_dir: str | Path, out_dir: str | Path) -> Path:
    """A CAMUS-layout folder of links: training = the real training patients plus every synthetic training patient
    (renamed `patientsynXXXX`), validation = the real held-out patients only (model selection on real images)."""
    out = Path(out_dir)
    nifti = out / NIFTI_FOLDER
    nifti.mkdir(parents=True, exist_ok=True)
    real = list_camus(real_dir, "training") + list_camus(real_dir, "validation")
    for patient in dict.fromkeys(item["patient"] for item in real):
        source = Path(next(item["image"] for item in real if item["patient"] == patient)).parent
        if not (nifti / patient).exists():
            (nifti / patient).symlink_to(source.resolve(), target_is_directory=True)
    synthetic_patients = []
    for item in list_camus(synthetic_dir, "training"):
        name = item["patient"].replace("patient", SYNTHETIC_PREFIX, 1)
        (nifti / name).mkdir(exist_ok=True)
        links = {Path(item[key]).name.replace(item["patient"], name, 1): Path(item[key]) for key in ("image", "label")}
        info = _info_file(synthetic_dir, item)
        if info is not None:
            links[info.name] = info
        for link_name, source in links.items():
            if not (nifti / name / link_name).exists():
                (nifti / name / link_name).symlink_to(source.resolve())
        synthetic_patients.append(name)
    real_train = dict.fromkeys(item["patient"] for item in list_camus(real_dir, "training"))
    write_split_file(out, "training", [*real_train, *dict.fromkeys(synthetic_patients)])
    write_split_file(out, "validation", dict.fromkeys(item["patient"] for item in list_camus(real_dir, "validation")))
    return out


def real_plus_synthetic(ctx: StudyContext, folder: Path, train_dir: str, synthetic_dir: str,
                        seed: int) -> dict:  # fmt: skip
    """The segmenter and the view classifier trained on the real training view plus a synthetic set (`merged_camus`),
    each with the minutes of its real-trained baseline, scored on the test split by the bundles' evaluations."""
    merged = merged_camus(train_dir, synthetic_dir, folder / "camus")
    out = {}
    for name, kind, evaluate in (("segmenter_real", "segmenter", stages.evaluate_segmenter),
                                 ("classifier_real", "classifier", stages.evaluate_classifier)):  # fmt: skip
        model = stages.train_downstream(ctx, folder / kind, str(merged), name, kind, seed)
        out[kind] = {"model": model, "evaluation": evaluate(ctx, folder / "evaluation", model, kind)}
    out["dice_keys"] = list(DICE_KEYS)
    return out
