"""`run_compare`: the paper's comparison of generators (Stojanovski et al. 2024: SDM, VP, VE, EDM, EDM-L128, EDM-L64)
by generation cost, realism and what their images teach downstream models, as one study per generator
(`echodiff.study.run_study`) on the same data, test split and budget.

Layout of `workdir`: `shared/` holds the stages that do not depend on the generator (data, the real-trained
baselines, `realism_checks`), trained once and reused by every generator's study through the stage cache;
`<model>/` holds one generator's study plus its `realism` and `solvers` stages (`echodiff.study.compare_stages`);
`compare/` holds `compare.json`, `compare.md` and the plots. Every stage resumes or is skipped as in the study, so a
rerun trains nothing and a killed one resumes where it stopped.

A comparison of six generators needs more hours than one sitting, possibly on fresh machines: `compare.json` grows row
by row. Each run merges its rows with those already in `<workdir>/compare/compare.json` and in the `merge` files
(e.g. the committed comparison), keeping a row only when its `identity` (training and test data digests, test split,
budget, scale, image size, held-out patients, seeds, seed, copies per map K) equals this run's; rows made by other code (echodiff source digest, torch,
MONAI: `echodiff.fingerprints.code_identity`) are refused unless `allow_mixed_code`, and then marked in the table.

Selection never reads the test split: the "best" pixel and latent generators (whose ODE solvers are compared, and
whose synthetic set trains the `real_plus_synthetic` models and the solver-downstream segmenters) are those with the
highest label fidelity on the held-out training patients (`label_fidelity_holdout`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from echodiff.data.phantom import make_phantom_camus
from echodiff.errors import ConfigKeyError, ConfigValueError, as_flag
from echodiff.fingerprints import camus_digest, code_identity
from echodiff.generation.fidelity import DICE_KEYS
from echodiff.generation.models import GENERATOR_MODELS, LATENT_MODELS
from echodiff.io import atomic_write
from echodiff.study import compare_stages
from echodiff.study.cache import StageRecord, finished_stage, run_cached
from echodiff.study.compare_report import write_compare_report
from echodiff.engines.segmentation_report import json_safe
from echodiff.study.report import classification_row, paired_difference, segmentation_row
from echodiff.study.run import run_study
from echodiff.study.stages import StudyContext

__all__ = ["IDENTITY_KEYS", "ROW_KEYS", "generator_row", "merge_rows", "run_compare", "solver_settings"]

IDENTITY_KEYS = ("train_data", "test_data", "test_split", "budget_minutes", "scale", "image_size", "holdout", "seeds",
                 "seed", "k")
ROW_KEYS = ("model", "denoiser_parameters", "autoencoder_parameters", "train_minutes", "optimizer_steps", "sampler",
            "nfe", "gflops_per_image", "synthesis_images_per_s", "seconds_per_image", "label_fidelity",
            "label_fidelity_holdout", "view_fidelity", "realism_fd", "realism_mmd", "realism_c2st_accuracy",
            "diversity_msssim", "copy_rate",
            "seg_synthetic_dice_mean", "seg_synthetic", "view_synthetic_accuracy", "n_synthetic_images")  # fmt: skip
SHARED, OUT = "shared", "compare"
EDM_FAMILY = tuple(m for m in GENERATOR_MODELS if m != "sdm")


def _checked_models(models: str | Sequence[str] | None) -> list[str]:
    if models is None:
        return list(GENERATOR_MODELS)
    names = [m for m in (models.split(",") if isinstance(models, str) else models) if m]
    unknown = [m for m in names if m not in GENERATOR_MODELS]
    if unknown:
        raise ConfigKeyError(f"--models {', '.join(unknown)}: unknown generator; expected some of "
                             f"{', '.join(GENERATOR_MODELS)}")  # fmt: skip
    return list(dict.fromkeys(names))


def _context(report: Mapping, workdir: Path, device: str | None, quiet: bool) -> StudyContext:
    """The `StudyContext` of a finished study, from its report.json."""
    settings = report["settings"]
    return StudyContext(
        workdir=workdir, dataset_dir=Path(report["dataset_dir"]), test_dir=Path(report["test_dir"]),
        test_split=report["test_split"], train_split=settings["train_split"], holdout=settings["holdout"],
        settings=settings["settings"], budget_minutes=report["budget_minutes"], shares=settings["shares"],
        k=settings["k"], sampler=report["generator"]["sampler"], steps=report["generator"]["steps"],
        seed=settings["seed"], device=device, quiet=quiet,
    )  # fmt: skip


def generator_row(report: Mapping, realism: Mapping, identity: Mapping, code: Mapping) -> dict:
    """One row of `compare.json` (`ROW_KEYS`, plus `ddpm1000` for sdm, intervals, identity and code) from a
    generator's study report and its `realism` stage."""
    gen, seg = report["generator"], report["segmentation"]["synthetic"]
    images_per_s = gen["synthesis_images_per_s"]
    row = {
        "model": gen["model"], "denoiser_parameters": realism["denoiser_parameters"],
        "autoencoder_parameters": realism["autoencoder_parameters"], "train_minutes": gen["train_minutes"],
        "optimizer_steps": sum(gen[k] or 0 for k in ("autoencoder_iterations", "diffusion_iterations")),
        "sampler": gen["sampler"], "steps": gen["steps"], "nfe": gen["nfe"],
        "gflops_per_image": realism["gflops_per_image"], "synthesis_images_per_s": images_per_s,
        "seconds_per_image": 1.0 / images_per_s if images_per_s else None,
        "label_fidelity": gen["label_fidelity"], "label_fidelity_holdout": realism["label_fidelity_holdout"],
        "view_fidelity": gen["view_fidelity"],
        **{k: realism[k] for k in ("realism_fd", "realism_mmd", "realism_c2st_accuracy", "diversity_msssim",
                                    "copy_rate")},
        "seg_synthetic_dice_mean": seg["dice_mean"], "seg_synthetic": seg,
        "view_synthetic_accuracy": report["view_classification"]["synthetic"]["accuracy"],
        "view_synthetic": report["view_classification"]["synthetic"],
        "n_synthetic_images": report["synthetic_images"], "synthesis_k": gen["synthesis_k"],
        "realism": dict(realism),
        "stages_seconds": report["stages"], "identity": dict(identity), "code": dict(code),
    }  # fmt: skip
    if "ddpm1000" in realism:
        row["ddpm1000"] = realism["ddpm1000"]
    return row


def merge_rows(rows: Iterable[Mapping], identity: Mapping, code: Mapping, allow_mixed_code: bool = False,
               source: str = "compare.json") -> dict[str, dict]:  # fmt: skip
    """Rows by model, each checked against `identity` (`IDENTITY_KEYS`: a mismatch is a `ConfigValueError` naming
    `source`, the model and the key) and `code` (another code identity is refused unless `allow_mixed_code`, and then
    marked `code_differs`). A later row of a model replaces an earlier one."""
    merged: dict[str, dict] = {}
    for row in rows:
        for key in IDENTITY_KEYS:
            if row["identity"].get(key) != identity.get(key):
                raise ConfigValueError(
                    f"{source}: the {row['model']} row was made with another {key} ({row['identity'].get(key)!r}; this "
                    f"comparison: {identity.get(key)!r}); rows compare only on the same data, split and budget"
                )
        differs = dict(row["code"]) != dict(code)
        if differs and not allow_mixed_code:
            raise ConfigValueError(
                f"{source}: the {row['model']} row was made by other code ({row['code']}; now {dict(code)}); rerun it, "
                "or pass --allow_mixed_code true to merge it (the table then marks it)"
            )
        merged[row["model"]] = {**row, "code_differs": differs}
    return merged


def solver_settings(rows: Sequence[Mapping]) -> list[dict]:
    """The fewest, middle and most network calls among one generator's solver `rows` (by NFE, then fidelity)."""
    ranked = sorted(rows, key=lambda r: (r["nfe"], -r["dice_mean"]))
    picks = [ranked[0], ranked[(len(ranked) - 1) // 2], ranked[-1]]
    return list({(r["sampler"], r["steps"]): dict(r) for r in picks}.values())


def _solver_key(row: Mapping) -> tuple:
    return row["model"], row["sampler"], row["steps"]


def _best(rows: Mapping[str, Mapping], family: Iterable[str]) -> str | None:
    candidates = [m for m in family if m in rows]
    return max(candidates, key=lambda m: rows[m]["label_fidelity_holdout"]["dice_mean"]) if candidates else None


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigValueError(f"--merge {path}: cannot read it ({err}); expected a compare.json") from err


def run_compare(
    workdir: str = "runs/compare",
    models: str | Sequence[str] | None = None,
    dataset_dir: str | None = None,
    test_dir: str | None = None,
    test_split: str = "testing",
    budget_minutes: float = 100.0,
    scale: str | None = None,
    seeds: int = 1,
    seed: int = 0,
    merge: str | Sequence[str] = (),
    allow_mixed_code: bool = False,
    solvers: bool = True,
    solver_downstream: bool = True,
    real_plus_synthetic: bool = True,
    diversity_maps: int = 16,
    diversity_seeds: int = 4,
    selection_maps: int = 64,
    c2st_steps: int = compare_stages.C2ST_STEPS,
    sdm_minutes: float = 40.0,
    allow_unhealthy_latent: bool = False,
    device: str | None = None,
    threads: int | None = None,
    quiet: bool = True,
    overrides: Mapping[str, Any] | None = None,
    tracking: str | None = None,
    say: Callable[[str], None] = print,
) -> dict:
    """Run (or resume) the comparison in `workdir`; returns compare.json (also in `workdir/compare/`).

    Args:
        models: generators to train and score in this run (default all six, `GENERATOR_MODELS`; a comma list or
            list); an empty list only merges (`merge`) and rewrites the report.
        dataset_dir / test_dir / test_split / budget_minutes / scale / seeds / seed / allow_unhealthy_latent /
            device / threads / quiet / overrides / tracking: as `run_study`, the same for every generator (the budget
            is per generator; overrides name study stages, e.g. {"diffusion": {...}}, and apply to every generator).
        merge: compare.json files of earlier runs (e.g. the committed one) whose rows join this run's.
        allow_mixed_code: merge rows made by other code (marked in the table) instead of refusing them.
        solvers: compare the ODE solvers of every EDM-family generator trained here (`compare_stages.solvers`).
        solver_downstream: train the synthetic-only segmenter of the best generator at the fewest, middle and most
            network calls of its solver table (one study each, sharing its trained generator).
        real_plus_synthetic: train the segmenter and the view classifier on real plus the best generator's images.
        diversity_maps / diversity_seeds / selection_maps / c2st_steps: see `compare_stages.realism` (the
            two-sample tests of `compare_stages.realism_checks` train `c2st_steps` too).
        sdm_minutes: SDM's synthesis makes as many copies per map as these minutes allow (`run_study`
            `synthesis_minutes`), and its own 1000-step DDPM is scored on as many test maps as they allow (at least 50).
    """
    allow_mixed_code, quiet = as_flag(allow_mixed_code, "--allow_mixed_code"), as_flag(quiet, "--quiet")
    solvers, solver_downstream = as_flag(solvers, "--solvers"), as_flag(solver_downstream, "--solver_downstream")
    real_plus_synthetic = as_flag(real_plus_synthetic, "--real_plus_synthetic")
    names = _checked_models(models)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    if dataset_dir is None:  # one phantom for every generator, so the shared stages see the same data
        dataset_dir = str(make_phantom_camus(work / "phantom_camus", n_train=10, n_val=2, n_test=4, size=64, seed=seed))
        test_dir = test_dir or dataset_dir
    if test_dir is None:
        raise ConfigValueError("--test_dir is required with --dataset_dir: the study never guesses which patients are test")
    study_args = dict(dataset_dir=dataset_dir, test_dir=test_dir, test_split=test_split, budget_minutes=budget_minutes,
                      scale=scale, seeds=seeds, seed=seed, device=device, threads=threads, quiet=quiet,
                      overrides=overrides, tracking=tracking, allow_unhealthy_latent=allow_unhealthy_latent,
                      shared_dir=str(work / SHARED), say=say)  # fmt: skip
    code = code_identity()
    reports: dict[str, dict] = {}
    for model in names:
        say(f"=== generator {model}")
        run_study(workdir=str(work / model), model=model, synthesis_minutes=sdm_minutes if model == "sdm" else None,
                  **study_args)
        reports[model] = json.loads((work / model / "report" / "report.json").read_text())

    out = work / OUT
    previous = out / "compare.json"
    sources = [(str(previous), _load(previous))] if previous.is_file() else []
    sources += [(str(p), _load(Path(p))) for p in ([merge] if isinstance(merge, str) else merge)]
    if reports:
        any_report = next(iter(reports.values()))
        identity = {"train_data": camus_digest(dataset_dir, [any_report["settings"]["train_split"]]),
                    "test_data": camus_digest(test_dir, [test_split]), "test_split": test_split,
                    "budget_minutes": float(budget_minutes), "scale": any_report["settings"]["scale"],
                    "image_size": any_report["image_size"], "holdout": any_report["settings"]["holdout"],
                    "seeds": seeds, "seed": seed, "k": any_report["settings"]["k"]}  # fmt: skip
    elif sources:
        identity, code = sources[0][1]["identity"], sources[0][1]["code"]
    else:
        raise ConfigValueError("--models is empty and there is nothing to merge: name generators or --merge files")

    rows: dict[str, dict] = {}
    solver_table: dict[tuple, dict] = {}  # (model, sampler, steps) -> row; rows of this run replace merged ones
    extras: dict[str, Any] = {}
    for source, data in sources:
        rows.update(merge_rows(data["generators"], identity, code, allow_mixed_code, source))
        solver_table.update({_solver_key(r): r for r in data.get("solvers", []) if r["model"] in rows})
        extras.update({k: data[k] for k in ("real", "realism_checks", "real_plus_synthetic", "solver_downstream")
                       if k in data})  # fmt: skip

    contexts = {m: _context(r, work / m, device, quiet) for m, r in reports.items()}
    shared = {name: finished_stage(work / SHARED / name)
              for name in (("data", "segmenter_real", "classifier_real") if contexts else ())}  # fmt: skip

    def stage(folder: Path, name: str, settings: Mapping, upstream: Mapping[str, StageRecord],
              fn: Callable[[Path], Any]) -> Any:  # fmt: skip
        key = {"code": code, "settings": dict(settings), "upstream": {n: r.output for n, r in upstream.items()}}
        say(f"== {name} ({folder.parent.name})")
        return run_cached(folder, name, key, fn, say=say).result

    seg_real, cls_real = (shared[n].result if n in shared else None for n in ("segmenter_real", "classifier_real"))
    for model, ctx in contexts.items():
        records = {n: finished_stage(work / model / n) for n in ("diffusion", "synthesis", "evaluation", "report")}
        realism_settings = {"diversity_maps": diversity_maps, "diversity_seeds": diversity_seeds,
                            "selection_maps": selection_maps, "sdm_minutes": sdm_minutes, "sampler": ctx.sampler,
                            "steps": ctx.steps, "device": device, "c2st_steps": c2st_steps}  # fmt: skip
        realism = stage(work / model / "realism", "realism", realism_settings, {**shared, **records},
                        lambda f, ctx=ctx, records=records: compare_stages.realism(
                            ctx, f, records["diffusion"].result["model"], work / model / "evaluation" / "samples.pt",
                            records["synthesis"].result["dataset_dir"], shared["data"].result["train_dir"],
                            seg_real, cls_real, diversity_maps, diversity_seeds, selection_maps, sdm_minutes,
                            c2st_steps))
        rows.update(merge_rows([generator_row(reports[model], realism, identity, code)], identity, code))
    if contexts:
        first = next(iter(contexts.values()))
        report = reports[next(iter(contexts))]
        extras["real"] = {"segmentation": report["segmentation"]["real"],
                          "view_classification": report["view_classification"]["real"]}  # fmt: skip
        extras["realism_checks"] = stage(
            work / SHARED / "realism_checks", "realism_checks",
            {"n_images": first.settings["fidelity_images"], "c2st_steps": c2st_steps},
            {"data": shared["data"], "classifier_real": shared["classifier_real"]},
            lambda f: compare_stages.realism_checks(first, f, cls_real, int(first.settings["fidelity_images"]),
                                                    shared["data"].result["train_dir"], c2st_steps=c2st_steps))

    if solvers:
        for model, ctx in contexts.items():
            if model in EDM_FAMILY:
                diffusion = finished_stage(work / model / "diffusion")
                found = stage(work / model / "solvers", "solvers", {"n_maps": selection_maps, "device": device},
                              {"diffusion": diffusion, **shared},
                              lambda f, ctx=ctx, d=diffusion: compare_stages.solvers(
                                  ctx, f, d.result["model"], shared["data"].result["train_dir"], seg_real,
                                  n_maps=selection_maps))  # fmt: skip
                solver_table.update({_solver_key(r): r for r in found})
    solver_rows = list(solver_table.values())

    best = _best(rows, EDM_FAMILY)
    if best is not None and best not in contexts and (solver_downstream or real_plus_synthetic):
        say(f"the best generator by held-out label fidelity, {best}, was not trained in {work}: its solver-downstream "
            "and real-plus-synthetic models need its study there (run it with --models " + best + ")")
    if solver_downstream and best in contexts:
        settings = solver_settings([r for r in solver_rows if r["model"] == best])
        downstream = []
        for pick in settings:
            say(f"=== {best} synthesising with {pick['sampler']} {pick['steps']} steps")
            sub = work / best / f"solver_{pick['sampler']}_{pick['steps']}"
            run_study(workdir=str(sub), model=best, sampler=pick["sampler"], steps=pick["steps"],
                      generator_dir=str(work / best), **study_args)
            sub_report = json.loads((sub / "report" / "report.json").read_text())
            downstream.append({"model": best, "sampler": pick["sampler"], "steps": pick["steps"], "nfe": pick["nfe"],
                               "seconds_per_image": pick["seconds_per_image"],
                               "label_fidelity_holdout": pick["dice_mean"],
                               "seg_synthetic": sub_report["segmentation"]["synthetic"]})  # fmt: skip
        extras["solver_downstream"] = downstream
    if real_plus_synthetic and best in contexts:
        ctx = contexts[best]
        synthesis = finished_stage(work / best / "synthesis")
        result = stage(work / best / "real_plus_synthetic", "real_plus_synthetic", {"device": device},
                       {**shared, "synthesis": synthesis},
                       lambda f: compare_stages.real_plus_synthetic(ctx, f, shared["data"].result["train_dir"],
                                                                    synthesis.result["dataset_dir"], seed))
        evaluation = result["segmenter"]["evaluation"], result["classifier"]["evaluation"]
        real_eval = finished_stage(work / best / "evaluation").result
        extras["real_plus_synthetic"] = {
            "model": best,
            "segmentation": segmentation_row(evaluation[0]),
            "view_classification": classification_row(evaluation[1]),
            "minus_real": {
                **{k: paired_difference(real_eval["segmentation"]["real"]["per_image"], evaluation[0]["per_image"], k)
                   for k in DICE_KEYS},
                "accuracy": paired_difference(real_eval["view_classification"]["real"]["per_image"],
                                               evaluation[1]["per_image"], "correct"),
            },
        }  # fmt: skip

    ordered = [rows[m] for m in GENERATOR_MODELS if m in rows]
    compare = {"identity": identity, "code": code, "generators": ordered, "solvers": solver_rows,
               "best": {"pixel": _best(rows, ("vp", "ve", "edm")), "latent": _best(rows, LATENT_MODELS),
                        "edm_family": best, "selected_on": "label_fidelity_holdout"},
               **extras}  # fmt: skip
    compare = json_safe(compare)
    write_compare_report(out, compare)
    text = json.dumps(compare, indent=2) + "\n"
    atomic_write(out / "compare.json", lambda tmp: Path(tmp).write_text(text), suffix=".json")
    say(f"compare: {out / 'compare.md'}")
    return compare
