"""`run_study`: the whole experiment in one call, resumable and within a wall-clock budget.

real labelled echoes -> real-trained segmenter + view classifier -> generator (a latent model: Gamma-VAE, then latent
diffusion; a pixel model: diffusion only; label fidelity logged) -> synthetic CAMUS folder -> synthetic-only segmenter + view classifier -> all four evaluated on the test split
-> `report/` (JSON, markdown, PNG). Every stage is cached by fingerprint (`echodiff.study.cache`); the test split is a
path argument, checked to share no patient with the training data, and nothing is selected on it. The real-trained
baselines can be trained with several seeds (`seeds`), the noise floor the synthetic-only models are compared against.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import monai
import torch

import echodiff
from echodiff.cpu import free_core_threads
from echodiff.data.phantom import make_phantom_camus
from echodiff.devices import check_device
from echodiff.errors import ConfigKeyError, ConfigValueError, as_flag
from echodiff.samplers import SAMPLERS
from echodiff.schedulers.sampling import STEP_RULES
from echodiff.study import stages
from echodiff.fingerprints import camus_digest, code_identity, files_digest
from echodiff.study.cache import StageRecord, run_cached
from echodiff.generation.models import LATENT_MODELS
from echodiff.study.recipes import BUDGET_SHARES, MIN_STAGE_MINUTES, budget_shares, scale_settings, study_sampling
from echodiff.study.report import write_report
from echodiff.study.tracking import checked_tracking, default_tracking_uri, track_study

__all__ = ["STAGES", "check_budget", "hardware", "run_study"]

STAGES = ("data", "segmenter_real", "classifier_real", "autoencoder", "diffusion", "synthesis",
          "segmenter_synthetic", "classifier_synthetic", "evaluation", "report")  # fmt: skip
SEEDED_STAGES = ("segmenter_real", "classifier_real")  # trained once per seed with --seeds N
GENERATOR_STAGES = ("autoencoder", "diffusion")


def seed_stage(name: str, index: int) -> str:
    """Stage (and folder) name of the `index`-th seed of a seeded stage: the first keeps the plain name."""
    return name if index == 0 else f"{name}_seed{index}"


def base_stage(name: str) -> str:
    """The stage a `seed_stage` name belongs to (its budget share, its --force name)."""
    return name.rsplit("_seed", 1)[0]


def check_budget(budget_minutes: float, shares: Mapping[str, float] = BUDGET_SHARES) -> None:
    """Refuse a budget that leaves some training stage less than `MIN_STAGE_MINUTES`."""
    if not isinstance(budget_minutes, (int, float)) or budget_minutes <= 0:
        raise ConfigValueError(f"--budget_minutes {budget_minutes!r}; expected a positive number of minutes")
    stage, share = min(shares.items(), key=lambda kv: kv[1])
    if share * budget_minutes < MIN_STAGE_MINUTES:
        raise ConfigValueError(
            f"--budget_minutes {budget_minutes:g} is too small for any stage: {stage} would get "
            f"{share * budget_minutes:.2f} min (share {share:g}); every training stage needs at least "
            f"{MIN_STAGE_MINUTES:g} min, so use --budget_minutes >= {MIN_STAGE_MINUTES / share:g}"
        )


def hardware(device: str | None) -> dict:
    """Where the study ran: CPU model, cores, torch threads, accelerator, library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": device or "cpu", "gpu": gpu, "torch": torch.__version__, "monai": monai.__version__,
            "echodiff": echodiff.__version__, "python": platform.python_version()}  # fmt: skip


def _configs_digest(*kinds: str) -> str:
    return files_digest([p for kind in kinds for p in stages.bundle_config_files(kind)])


def _checked_sampling(model: str, sampler: str | None, steps: int | None) -> tuple[str, int]:
    """The study's (sampler, steps) for generator `model`: `study_sampling(model)` where not given; a sampler of the
    model's family (the EDM family's ODE solvers, sdm's DDPM / DDIM step rules) and a whole number of steps >= 1."""
    default_sampler, default_steps = study_sampling(model)
    sampler, steps = sampler or default_sampler, default_steps if steps is None else steps
    allowed = STEP_RULES if model == "sdm" else SAMPLERS
    if sampler not in allowed:
        raise ConfigKeyError(f"--sampler {sampler!r} for --model {model}; expected one of {', '.join(allowed)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigValueError(f"--steps {steps!r}; expected a whole number of sampling steps >= 1")
    return sampler, steps


def _forced(force: str | Iterable[str] | None) -> set[str]:
    names = {force} if isinstance(force, str) else set(force or ())
    names = {n for name in names for n in str(name).split(",") if n}
    unknown = sorted(names - set(STAGES))
    if unknown:
        raise ConfigKeyError(f"--force {', '.join(unknown)}: unknown stage; expected one of {', '.join(STAGES)}")
    return names


def run_study(
    workdir: str = "runs/study",
    dataset_dir: str | None = None,
    test_dir: str | None = None,
    test_split: str = "testing",
    train_split: str = "training",
    budget_minutes: float = 120.0,
    scale: str | None = None,
    model: str | None = None,
    paper_scale: bool = False,
    holdout: int | None = None,
    k: int = 5,
    sampler: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    seeds: int = 1,
    device: str | None = None,
    force: str | Iterable[str] | None = None,
    allow_unhealthy_latent: bool = False,
    quiet: bool = True,
    overrides: Mapping[str, Any] | None = None,
    tracking: str | None = None,
    threads: int | None = None,
    shared_dir: str | None = None,
    generator_dir: str | None = None,
    synthesis_minutes: float | None = None,
    say: Callable[[str], None] = print,
) -> dict:
    """Run (or resume) the study in `workdir`; returns the report (also in `workdir/report/report.json`).

    Args:
        dataset_dir: labelled CAMUS-layout training data; None builds the built-in phantom in `workdir` and, unless
            `test_dir` is given, tests on the phantom's own testing patients.
        test_dir / test_split: where the four downstream models and the generator's label fidelity are evaluated;
            must share no patient with `train_split` of `dataset_dir`.
        budget_minutes: wall-clock minutes; training stages get `budget_shares(model)` of it and stop at their share.
        scale: "tiny", "cpu" or "paper" (`echodiff.study.recipes.SCALES`); default "tiny" on the phantom, else "cpu".
        model: the generator (`echodiff.generation.GENERATOR_MODELS`); default the scale's ("edm", pixel space, at
            tiny scale; "edm_l64" at cpu and paper scale). A latent model adds the Gamma-VAE stage.
        paper_scale: the same as scale="paper" (the paper's networks at 256 px; meant for `device="cuda"`).
        holdout: training patients held out for model selection (default 10 %, at least 1).
        k: augmented label maps (one image each) per training map in the synthesis.
        sampler / steps: how the generator synthesises; default `echodiff.study.recipes.study_sampling`: for the EDM
            family DPM-Solver++(2M) with 10 steps (10 network calls per image), which at CPU scale drew label maps far
            more faithfully than Heun with 5 steps (9 calls); for sdm DDIM with 50 steps.
        seed: the phantom's, the held-out patients', the synthesis' and the bundle trainers' seed (config key `seed`).
        seeds: how many seeds the real-trained baselines (`SEEDED_STAGES`) are trained with: seed, seed + 1, ..., each
            in its own stage folder (`segmenter_real`, `segmenter_real_seed1`, ...) with the stage's full minutes; the
            report gives every seed's figures with their mean and spread. The first seed's segmenter is "the"
            real-trained one (label fidelity, the paired comparison).
        device: "cpu", "cuda", "cuda:1"...; default: each bundle's own choice (CUDA when available).
        force: stage name(s) to rerun even when cached (a seeded stage: every seed).
        threads: torch threads of every stage (default `echodiff.cpu.free_core_threads`: every core, as the stages
            load data in the study's own process); each stage's result records the threads it ran with.
        allow_unhealthy_latent: train latent diffusion even when the Gamma-VAE's latent health is outside
            `echodiff.generation.latent_health.HEALTH_LIMITS` (by default the study stops with a message naming it).
        quiet: WARNING-level logs and one progress bar per training stage.
        overrides: per-stage bundle overrides merged into the scale's settings, e.g. {"diffusion": {"learning_rate":
            3e-4}}.
        tracking: "mlflow" logs every stage as an MLflow run in `<workdir>/mlruns.db` (`echodiff.study.tracking`).
        shared_dir: where the stages that do not depend on the generator live ("data" and the real-trained
            baselines; default `workdir`): studies of several generators with one `shared_dir` train them once
            (`echodiff.study.compare`).
        synthesis_minutes: cap on the synthesis: as many copies per map (at most `k`, at least 1) as these minutes
            allow at the sampling speed measured on training maps (`stages.synthesis_copies`; the comparison gives SDM,
            whose DDIM sampling is slow, 40 minutes). Default: `k` copies, however long it takes.
        generator_dir: where the generator's stages ("autoencoder", "diffusion") live (default `workdir`): a study of
            another sampler of the same generator points it at that generator's study.
    """
    paper_scale, quiet = as_flag(paper_scale, "--paper_scale"), as_flag(quiet, "--quiet")
    allow_unhealthy_latent = as_flag(allow_unhealthy_latent, "--allow_unhealthy_latent")
    scale = "paper" if paper_scale else scale or ("tiny" if dataset_dir is None else "cpu")
    settings = scale_settings(scale, model)
    shares = budget_shares(settings["model"])
    check_budget(budget_minutes, shares)
    checked_tracking(tracking)
    sampler, steps = _checked_sampling(settings["model"], sampler, steps)
    forced = _forced(force)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigValueError(f"--threads {threads!r}; expected a whole number of torch threads >= 1")
    torch_threads = threads if threads is not None else free_core_threads()
    torch.set_num_threads(torch_threads)
    check_device(device)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ConfigValueError(f"--seeds {seeds!r}; expected a whole number >= 1")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    folders = {**{name: Path(shared_dir) for name in ("data", *SEEDED_STAGES) if shared_dir is not None},
               **{name: Path(generator_dir) for name in GENERATOR_STAGES if generator_dir is not None}}  # fmt: skip
    if dataset_dir is None:
        dataset_dir = str(make_phantom_camus(work / "phantom_camus", n_train=10, n_val=2, n_test=4, size=64, seed=seed))
        test_dir = test_dir or dataset_dir
    if test_dir is None:
        raise ConfigValueError("--test_dir is required with --dataset_dir: the study never guesses which patients are test")
    for stage_name, values in dict(overrides or {}).items():
        if stage_name not in settings or not isinstance(settings[stage_name], dict):
            raise ConfigKeyError(f"overrides key {stage_name!r}; expected one of "
                                 f"{', '.join(k for k, v in settings.items() if isinstance(v, dict))}")  # fmt: skip
        settings[stage_name].update(values)
    n_train = len(stages._patients(Path(dataset_dir), train_split))
    holdout = holdout if holdout is not None else max(1, round(0.1 * n_train))
    ctx = stages.StudyContext(
        workdir=work, dataset_dir=Path(dataset_dir).resolve(), test_dir=Path(test_dir).resolve(), test_split=test_split,
        train_split=train_split, holdout=holdout, settings=settings, budget_minutes=float(budget_minutes),
        shares=shares, k=k, sampler=sampler, steps=steps, seed=seed, device=device, quiet=quiet,
        synthesis_minutes=synthesis_minutes,
    )  # fmt: skip
    code = code_identity()
    records: dict[str, StageRecord] = {}

    train_data = {"train": camus_digest(ctx.dataset_dir, [train_split]), "holdout": holdout, "seed": seed,
                  "train_split": train_split}  # fmt: skip

    def stage(name: str, key: dict, work_fn: Callable[[Path], dict], upstream: Iterable[str] = (),
              bound: str | None = None) -> dict:  # fmt: skip
        """Run stage `name` cached on `key` + the output identity of `upstream`; stages that read the training view
        depend on the training data itself (`train_data`), not on the test split checked by `data`. `bound`: what
        stops a training stage, printed in its header."""
        key = {"code": code, "data": train_data, **key, "upstream": {u: records[u].output for u in upstream}}
        if name != "report":
            say(f"== {name}" + (f" ({bound})" if bound else ""))
        records[name] = run_cached(folders.get(base_stage(name), work) / name, name, key, lambda f: {**work_fn(f), "torch_threads": torch_threads},
                                   force=base_stage(name) in forced, say=say)  # fmt: skip
        return records[name].result

    data = stage("data", {"test_data": camus_digest(ctx.test_dir, [test_split]),
                          "settings": {"test_split": test_split, "test_dir": str(ctx.test_dir)}},
                 lambda f: stages.prepare_data(ctx, f))  # fmt: skip
    train_dir = data["train_dir"]

    def training_stage(name: str, kind: str, extra: dict, work_fn: Callable[[Path], dict],
                       upstream: Iterable[str] = (), bundle_seed: int = seed) -> dict:  # fmt: skip
        """A training stage of bundle run `kind`, keyed on its configs, settings, minutes, device and bundle seed."""
        key = {"config": _configs_digest(kind), "settings": {**extra, "minutes": ctx.minutes(base_stage(name)),
                                                             "device": device, "seed": bundle_seed}}  # fmt: skip
        return stage(name, key, work_fn, upstream, bound=ctx.training_bound(base_stage(name), kind))

    def real_baselines(name: str, kind: str) -> list[dict]:
        """Stage `name` once per seed (`seed_stage`), each with its bundle seed."""
        return [training_stage(seed_stage(name, i), kind, settings[kind],
                               lambda f, i=i: stages.train_downstream(ctx, f, train_dir, name, kind, seed + i),
                               bundle_seed=seed + i)
                for i in range(seeds)]  # fmt: skip

    seg_reals = real_baselines("segmenter_real", "segmenter")
    cls_reals = real_baselines("classifier_real", "classifier")
    seg_real, cls_real = seg_reals[0], cls_reals[0]
    generator_settings = {"model": settings["model"], "image_size": settings["image_size"]}
    latent = settings["model"] in LATENT_MODELS
    vae = None
    if latent:
        vae = training_stage("autoencoder", "autoencoder", {**generator_settings, **settings["autoencoder"]},
                             lambda f: stages.train_autoencoder(ctx, f, train_dir, seg_real), ["segmenter_real"])  # fmt: skip
        stages.check_latent_health(vae, allow_unhealthy_latent)
    diffusion = training_stage(
        "diffusion", "diffusion", {**generator_settings, **settings["diffusion"]},
        lambda f: stages.train_diffusion(ctx, f, train_dir, vae["model"] if vae else None, seg_real),
        ["autoencoder", "segmenter_real"] if latent else ["segmenter_real"],
    )
    synthesis = stage("synthesis", {"settings": {"k": k, "synthesis_minutes": synthesis_minutes, "sampler": sampler,
                                                 "steps": steps, "seed": seed, "device": device}},
                      lambda f: stages.synthesize(ctx, f, train_dir, diffusion["model"]), ["diffusion"])
    synthetic_dir = synthesis["dataset_dir"]
    seg_syn = training_stage("segmenter_synthetic", "segmenter", settings["segmenter"],
                             lambda f: stages.train_downstream(ctx, f, synthetic_dir, "segmenter_synthetic",
                                                               "segmenter"), ["synthesis"])  # fmt: skip
    cls_syn = training_stage("classifier_synthetic", "classifier", settings["classifier"],
                             lambda f: stages.train_downstream(ctx, f, synthetic_dir, "classifier_synthetic",
                                                               "classifier"), ["synthesis"])  # fmt: skip

    def evaluate(folder: Path) -> dict:
        """Every model on the test split; `real_seeds`: the real-trained baselines of every seed, the first one the
        `real` of the paired comparison."""
        segmentation = [stages.evaluate_segmenter(ctx, folder, model, seed_stage("segmenter_real", i))
                        for i, model in enumerate(seg_reals)]  # fmt: skip
        classification = [stages.evaluate_classifier(ctx, folder, model, seed_stage("classifier_real", i))
                          for i, model in enumerate(cls_reals)]  # fmt: skip
        return {
            "segmentation": {"real": segmentation[0], "real_seeds": segmentation[1:],
                             "synthetic": stages.evaluate_segmenter(ctx, folder, seg_syn, "segmenter_synthetic")},
            "view_classification": {"real": classification[0], "real_seeds": classification[1:],
                                    "synthetic": stages.evaluate_classifier(ctx, folder, cls_syn,
                                                                            "classifier_synthetic")},
            "generator": stages.evaluate_generator(ctx, folder, diffusion["model"], seg_real, cls_real),
        }  # fmt: skip

    evaluation = stage(
        "evaluation",
        {"config": _configs_digest("segmenter_eval", "classifier_eval", "autoencoder"),
         "settings": {"sampler": sampler, "steps": steps, "seed": seed, "fidelity_images": settings["fidelity_images"],
                      "device": device}},
        evaluate, ["data", *(seed_stage(s, i) for s in SEEDED_STAGES for i in range(seeds)), "diffusion",
                   "segmenter_synthetic", "classifier_synthetic"],
    )  # fmt: skip
    context = {
        "budget_minutes": budget_minutes, "hardware": hardware(device), "dataset_dir": str(ctx.dataset_dir),
        "test_dir": str(ctx.test_dir), "test_split": test_split, "train_split": train_split,
        "image_size": ctx.image_size, "scale": scale, "holdout": holdout, "k": k, "settings": settings,
        "shares": shares, "sampler": sampler, "steps": steps, "workdir": str(work), "code": code, "seed": seed,
        "seeds": seeds,
    }  # fmt: skip
    records_now = dict(records)
    report = stage("report", {"settings": context}, lambda f: write_report(f, context, records_now, evaluation),
                   list(records))  # fmt: skip
    say(report["markdown_table"])
    say(f"report: {work / 'report' / 'report.md'}")
    if tracking is not None:
        logged = track_study(work, stages=list(records),
                             folders={name: folders.get(base_stage(name), work) / name for name in records})
        say(f"mlflow: {len(logged)} stage runs logged; mlflow ui --backend-store-uri {default_tracking_uri(work)}")
    return report
