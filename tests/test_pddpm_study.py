"""echodiff.study.pddpm (scripts/pddpm_study.py): the study plan covers the issue's grid, the network calls and the
choice of T' and ensemble follow the documented rules, and the tiny CPU run (denoiser conditioned on the
pre-segmentation) chooses on held-out training patients and writes rows with exactly the documented keys."""

from __future__ import annotations

import json

import echodiff.study.pddpm as pddpm_study
import pytest
from echodiff.errors import ConfigValueError, MissingFileError


def test_study_plan_at_T_1000_is_the_full_grid():
    plan = pddpm_study.study_plan(1000)
    pddpm = {(p["t_prime"], p["ensemble"]) for p in plan if p["method"] == "pddpm"}
    assert pddpm == {(t, n) for t in (50, 100, 200, 300, 500) for n in (1, 3, 5, 10)}
    assert all(p["steps"] == p["t_prime"] and p["step_rule"] == "ddpm" for p in plan if p["method"] == "pddpm")
    assert [(p["t_prime"], p["ensemble"], p["steps"]) for p in plan if p["method"] == "ddpm"] == [
        (1000, 1, 1000), (1000, 10, 1000)]
    assert [(p["t_prime"], p["steps"]) for p in plan if p["method"] == "ddim"] == [
        (300, 10), (300, 50), (1000, 50), (1000, 100)]


def test_study_plan_scales_t_prime_to_a_small_T_without_duplicates():
    plan = pddpm_study.study_plan(10, ensembles=(1, 3))
    assert sorted({p["t_prime"] for p in plan if p["method"] == "pddpm"}) == [1, 2, 3, 5]
    assert [(p["t_prime"], p["steps"]) for p in plan if p["method"] == "ddim"] == [(3, 1), (10, 1)]
    assert len({json.dumps(p, sort_keys=True) for p in plan}) == len(plan)


def test_study_plan_takes_the_ddpm_ensembles_it_is_given():
    plan = pddpm_study.study_plan(100, t_primes=(300,), ensembles=(3, 5), ddim=(), ddpm_ensembles=(1,))
    assert [(p["method"], p["t_prime"], p["ensemble"]) for p in plan] == [
        ("pddpm", 30, 3), ("pddpm", 30, 5), ("ddpm", 100, 1)]


def test_network_calls_count_the_presegmentation_once_per_image():
    pddpm, ddpm = {"t_prime": 30, "ensemble": 5, "steps": 30}, {"t_prime": 100, "ensemble": 1, "steps": 100}
    assert pddpm_study.network_calls(pddpm, 100) == 151
    assert pddpm_study.network_calls(ddpm, 100) == 100  # from pure noise: no pre-segmentation
    assert pddpm_study.network_calls(ddpm, 100, conditioned=True) == 101


def test_selection_takes_the_best_held_out_dice_among_ensembles_ties_to_fewer_calls():
    def row(method, t_prime, ensemble, dice):
        return {"method": method, "t_prime": t_prime, "ensemble": ensemble, "steps": t_prime,
                "network_calls": ensemble * t_prime + 1, "dice_mean": dice}

    rows = [row("pddpm", 5, 1, 95.0), row("pddpm", 5, 3, 90.0), row("pddpm", 10, 3, 90.0), row("pddpm", 10, 5, 89.0),
            row("pddpm", 20, 5, float("nan")), row("ddpm", 100, 5, 99.0)]
    assert pddpm_study.select_setting(rows) == rows[1]  # one sample has no spread; 3 x 5 beats 3 x 10 on calls
    assert pddpm_study.select_setting(rows[:1]) == rows[0]  # single samples only: choose among them
    with pytest.raises(ConfigValueError, match="no PD-DDPM row to select from"):
        pddpm_study.select_setting(rows[-1:])


@pytest.mark.slow
def test_tiny_study_selects_on_held_out_patients_and_writes_rows_with_exactly_the_documented_keys(tmp_path, capsys):
    rows = pddpm_study.study(tiny=True, workdir=str(tmp_path), max_images=2, t_primes=(100, 500), ensembles=(1, 2),
                             ddim=((500, 100),), holdout=1, pddpm_minutes=5,
                             pddpm_overrides={"refine_presegmentation": True})
    written = json.loads((tmp_path / "study.json").read_text())
    assert [tuple(row) for row in written] == [pddpm_study.ROW_KEYS] * len(written)
    assert [(r["method"], r["t_prime"], r["ensemble"], r["steps"], r["network_calls"]) for r in written] == [
        ("preseg", None, None, None, 1),
        ("pddpm", 1, 1, 1, 2), ("pddpm", 1, 2, 1, 3), ("pddpm", 5, 1, 5, 6), ("pddpm", 5, 2, 5, 11),
        ("ddpm", 10, 1, 10, 11), ("ddpm", 10, 2, 10, 21),  # the denoiser is conditioned on the pre-segmentation
        ("ddim", 5, 2, 1, 3),
    ]
    for row in written:
        assert row["n_images"] == 2 and row["eval_split"] == "validation"
        assert row["train_data"] == "phantom_camus/training minus 1 held-out patients" and row["device"].startswith("cpu")
        assert 0 <= row["dice_mean"] <= 100 and row["seconds_per_image"] > 0
    assert rows[0]["dice_mean"] == pytest.approx(written[0]["dice_mean"])

    selection = json.loads((tmp_path / "study_selection.json").read_text())
    assert [tuple(row) for row in selection] == [pddpm_study.SELECTION_KEYS] * 4
    assert all(row["n_images"] == 4 for row in selection)  # all images of the one held-out training patient
    chosen = [row for row in selection if row["selected"]]
    assert len(chosen) == 1 and chosen[0]["ensemble"] == 2
    selected = [row for row in written if row["selected"]]
    assert [(r["method"], r["t_prime"], r["ensemble"]) for r in selected] == [
        ("pddpm", chosen[0]["t_prime"], chosen[0]["ensemble"])]
    assert 0 <= selected[0]["uncertainty_auroc"] <= 1 and written[0]["uncertainty_auroc"] is None

    uncertainty = json.loads((tmp_path / "study_uncertainty.json").read_text())
    assert len(uncertainty) == len(written) - 1 and all(0 <= u["uncertainty_auroc"] <= 1 for u in uncertainty)
    report = (tmp_path / "study.md").read_text()
    assert "Does high uncertainty mark wrong pixels?" in report and "chosen on 4 images of 1 held-out" in report
    assert "| preseg | - | - | - | 1 |" in capsys.readouterr().out

    again = pddpm_study.study(tiny=True, workdir=str(tmp_path), max_images=2, t_primes=(100, 500), ensembles=(1, 2),
                              ddim=((500, 100),), holdout=1, pddpm_overrides={"refine_presegmentation": True},
                              train=False)
    assert [row["dice_mean"] for row in again] == pytest.approx([row["dice_mean"] for row in rows])  # same models, seed
    with pytest.raises(MissingFileError, match=r"models/pddpm.pt does not exist; expected the models of an earlier"):
        (tmp_path / "models" / "pddpm.pt").unlink()
        pddpm_study.study(tiny=True, workdir=str(tmp_path), holdout=1, train=False)
