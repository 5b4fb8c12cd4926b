"""The generator comparison (echodiff.study.compare): row merging rules, solver picks, the real-plus-synthetic folder,
and a tiny two-generator run on the phantom (baselines trained once, a killed stage resumed, a rerun that trains
nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from echodiff.data.camus import list_camus
from echodiff.data.phantom import make_phantom_camus
from echodiff.errors import ConfigKeyError, ConfigValueError
from echodiff.study.compare import IDENTITY_KEYS, ROW_KEYS, merge_rows, run_compare, solver_settings
from echodiff.study.compare_report import PLOTS
from echodiff.generation.synthesis import RECORDS
from echodiff.study.compare_stages import SYNTHETIC_PREFIX, merged_camus
from echodiff.generation.models import LATENT_MODELS, build_generator
from echodiff.study.recipes import scale_settings, study_sampling
from echodiff.study.run import run_study

IDENTITY = {"train_data": "a", "test_data": "b", "test_split": "validation", "budget_minutes": 100.0, "scale": "cpu",
            "image_size": 64, "holdout": 40, "seeds": 3, "seed": 0, "k": 5}  # fmt: skip
CODE = {"echodiff": "0.7.0", "echodiff_source": "abc", "torch": "2.13.0", "monai": "1.6.1"}


def _row(model: str, **changes) -> dict:
    return {"model": model, "identity": {**IDENTITY, **changes.pop("identity", {})},
            "code": {**CODE, **changes.pop("code", {})}, **changes}  # fmt: skip


def test_rows_of_another_budget_or_split_are_refused_naming_source_model_and_key() -> None:
    for key, value in (("budget_minutes", 60.0), ("test_split", "testing"), ("train_data", "other")):
        with pytest.raises(ConfigValueError, match=rf"old\.json: the vp row was made with another {key}"):
            merge_rows([_row("vp", identity={key: value})], IDENTITY, CODE, source="old.json")
    assert set(IDENTITY) == set(IDENTITY_KEYS)


def test_rows_of_other_code_are_refused_unless_allowed_and_then_marked() -> None:
    rows = [_row("edm"), _row("vp", code={"echodiff_source": "def"})]
    with pytest.raises(ConfigValueError, match="vp row was made by other code.*--allow_mixed_code true"):
        merge_rows(rows, IDENTITY, CODE)
    merged = merge_rows(rows, IDENTITY, CODE, allow_mixed_code=True)
    assert merged["edm"]["code_differs"] is False and merged["vp"]["code_differs"] is True


def test_a_later_row_of_a_model_replaces_the_earlier_one() -> None:
    merged = merge_rows([_row("edm", value=1), _row("edm", value=2)], IDENTITY, CODE)
    assert list(merged) == ["edm"] and merged["edm"]["value"] == 2


def test_solver_settings_pick_the_fewest_middle_and_most_network_calls() -> None:
    rows = [{"sampler": s, "steps": n, "nfe": nfe, "dice_mean": d}
            for s, n, nfe, d in (("euler", 2, 2, 50.0), ("dpmpp_2m", 2, 2, 80.0), ("heun", 3, 5, 70.0),
                                 ("dpmpp_2m", 10, 10, 88.0), ("heun", 25, 49, 90.0))]  # fmt: skip
    picks = solver_settings(rows)
    assert [(p["sampler"], p["steps"]) for p in picks] == [("dpmpp_2m", 2), ("heun", 3), ("heun", 25)]


def test_merged_folder_trains_on_real_plus_renamed_synthetic_patients_and_selects_on_real(tmp_path: Path) -> None:
    real = make_phantom_camus(tmp_path / "real", n_train=3, n_val=1, n_test=1, size=32)
    synthetic = make_phantom_camus(tmp_path / "synthetic", n_train=2, n_val=1, n_test=1, size=32, seed=1)
    source = list_camus(real, "training")[0]
    for item in list_camus(synthetic, "training"):  # synthesis writes no Info_<view>.cfg, only a record per case
        Path(item["image"]).with_name(f"Info_{item['view']}.cfg").unlink(missing_ok=True)
        record = synthetic / RECORDS / (Path(item["image"]).name.removesuffix(".nii.gz") + ".json")
        record.parent.mkdir(exist_ok=True)
        record.write_text(json.dumps({"source_image": source["image"]}))
    merged = merged_camus(real, synthetic, tmp_path / "merged")
    assert len({tuple(sorted(item["info"])) for item in list_camus(merged, "training")}) == 1  # one batch takes both
    training = {item["patient"] for item in list_camus(merged, "training")}
    real_training = {item["patient"] for item in list_camus(real, "training")}
    assert real_training < training
    assert {p for p in training - real_training} == {p.replace("patient", SYNTHETIC_PREFIX, 1)
                                                     for p in {i["patient"] for i in list_camus(synthetic, "training")}}
    assert {i["patient"] for i in list_camus(merged, "validation")} == {i["patient"] for i in list_camus(real, "validation")}
    assert merged_camus(real, synthetic, tmp_path / "merged") == merged  # a rerun over its own links works


def test_unknown_generator_is_refused_listing_the_six(tmp_path: Path) -> None:
    with pytest.raises(ConfigKeyError, match="--models sdm2: unknown generator; expected some of sdm, vp, ve, edm"):
        run_compare(workdir=str(tmp_path), models="edm,sdm2")


TINY = {"segmenter": {"max_epochs": 1}, "classifier": {"max_epochs": 1}, "autoencoder": {"max_epochs": 1},
        "diffusion": {"max_epochs": 1}}  # fmt: skip


def _compare(workdir: Path, messages: list[str], **kwargs) -> dict:
    settings = dict(workdir=str(workdir), models="edm,edm_l64", budget_minutes=10, scale="tiny", overrides=TINY,
                    threads=1, allow_unhealthy_latent=True, solver_downstream=False, diversity_maps=2,
                    diversity_seeds=2, selection_maps=4, c2st_steps=10, say=messages.append)  # fmt: skip
    return run_compare(**{**settings, **kwargs})


@pytest.mark.slow
def test_tiny_comparison_shares_baselines_resumes_a_killed_stage_and_reruns_nothing(tmp_path: Path) -> None:
    messages: list[str] = []
    compare = _compare(tmp_path, messages)
    out = tmp_path / "compare"
    assert [row["model"] for row in compare["generators"]] == ["edm", "edm_l64"]
    for row in compare["generators"]:
        assert set(ROW_KEYS) <= set(row) and 0 <= row["copy_rate"] <= 1 and row["nfe"] == 10
        assert row["gflops_per_image"] > 0 and 0 < row["diversity_msssim"] <= 1
    latent = compare["generators"][1]
    assert latent["autoencoder_parameters"] > 0 and compare["generators"][0]["autoencoder_parameters"] == 0
    assert len(compare["solvers"]) == 2 * 3 * 5 and {r["maps"] for r in compare["solvers"]} == {"held-out training patients"}
    checks = compare["realism_checks"]
    assert checks["real_vs_real"]["fd"] >= 0 and "real_plus_synthetic" in compare
    assert len(checks["real_vs_real"]["fd_splits"]) == 10 and 0 <= checks["real_vs_blurred_real"]["c2st_accuracy"] <= 1
    assert json.loads((out / "compare.json").read_text())["generators"][0]["model"] == "edm"
    assert all((out / name).is_file() for name in ("compare.md", *PLOTS))
    # the real-trained baselines: trained by the first generator's study, reused by the second's
    assert sum(m.startswith("[segmenter_real] cached") for m in messages) == 1
    assert (tmp_path / "shared" / "segmenter_real" / "stage.json").is_file()
    assert not (tmp_path / "edm_l64" / "segmenter_real").exists()

    # a killed realism stage (started, never finished) resumes; nothing else reruns
    (tmp_path / "edm_l64" / "realism" / "stage.json").unlink()
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("stage.json")}
    messages.clear()
    again = _compare(tmp_path, messages)
    assert any(m.startswith("[realism] resuming an interrupted run") for m in messages)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert [r["model"] for r in again["generators"]] == ["edm", "edm_l64"]

    # no generators, only --merge: the report is rewritten from the merged rows, with their code, training nothing
    merged = _compare(tmp_path / "merged", messages, models="", merge=str(out / "compare.json"))
    assert [r["model"] for r in merged["generators"]] == ["edm", "edm_l64"] and merged["code"] == again["code"]
    assert all((tmp_path / "merged" / "compare" / name).is_file() for name in ("compare.md", *PLOTS))
    assert not (tmp_path / "merged" / "shared").exists()

    # a rerun trains nothing; merging the comparison into itself keeps one row per generator
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("stage.json")}
    messages.clear()
    merged = _compare(tmp_path, messages, merge=[str(out / "compare.json")])
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("stage.json")} == stamps
    assert not any("rerunning" in m or "resuming" in m for m in messages)
    assert len(merged["generators"]) == 2
    assert len({(r["model"], r["sampler"], r["steps"]) for r in merged["solvers"]}) == len(merged["solvers"])

    # another sampler of a trained generator (generator_dir): its study reuses the generator and the baselines
    messages.clear()
    run_study(workdir=str(tmp_path / "edm" / "solver_euler_2"), model="edm", sampler="euler", steps=2,
              generator_dir=str(tmp_path / "edm"), shared_dir=str(tmp_path / "shared"), dataset_dir=str(tmp_path / "phantom_camus"),
              test_dir=str(tmp_path / "phantom_camus"), budget_minutes=10, scale="tiny", overrides=TINY, threads=1,
              say=messages.append)  # fmt: skip
    assert any(m.startswith("[diffusion] cached") for m in messages)
    assert any(m.startswith("[segmenter_real] cached") for m in messages)
    assert not (tmp_path / "edm" / "solver_euler_2" / "diffusion").exists()
    report = json.loads((tmp_path / "edm" / "solver_euler_2" / "report" / "report.json").read_text())
    assert (report["generator"]["sampler"], report["generator"]["nfe"]) == ("euler", 2)


@pytest.mark.parametrize("model", ["sdm", "vp", "ve", "edm", "edm_l128", "edm_l64"])
def test_every_generator_has_a_cpu_recipe_that_builds_and_samples_its_own_way(model: str) -> None:
    settings = scale_settings("cpu", model)
    diffusion = settings["diffusion"]
    assert (diffusion["fidelity_sampler"], diffusion["fidelity_steps"]) == study_sampling(model)
    assert study_sampling(model) == (("ddim", 50) if model == "sdm" else ("dpmpp_2m", 10))
    generator = build_generator(model, settings["image_size"], network=diffusion["network_args"] or None,
                                autoencoder=settings["autoencoder"]["autoencoder_args"] if model in LATENT_MODELS else None,
                                view_condition=True)  # fmt: skip
    assert generator.image_size // generator.latent_factor == 64 // {"edm_l128": 2, "edm_l64": 4}.get(model, 1)
    if model in ("sdm", "vp", "ve"):  # the pixel models share pixel EDM's network
        assert diffusion["network_args"] == scale_settings("cpu", "edm")["diffusion"]["network_args"]


def test_the_study_refuses_a_sampler_of_another_family(tmp_path: Path) -> None:
    with pytest.raises(ConfigKeyError, match="--sampler 'heun' for --model sdm; expected one of ddpm, ddim"):
        run_study(workdir=str(tmp_path), model="sdm", sampler="heun")
    with pytest.raises(ConfigKeyError, match="--sampler 'ddim' for --model edm; expected one of euler, heun, dpmpp_2m"):
        run_study(workdir=str(tmp_path), model="edm", sampler="ddim")
    with pytest.raises(ConfigValueError, match="--steps 0; expected a whole number of sampling steps >= 1"):
        run_study(workdir=str(tmp_path), model="edm", steps=0)
