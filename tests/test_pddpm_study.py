"""echodiff.study.pddpm (scripts/pddpm_study.py): the study plan covers the issue's grid, and the tiny CPU run writes
rows with exactly the documented keys for every method."""

from __future__ import annotations

import json

import echodiff.study.pddpm as pddpm_study
import pytest


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


@pytest.mark.slow
def test_tiny_study_writes_rows_with_exactly_the_documented_keys(tmp_path, capsys):
    rows = pddpm_study.study(tiny=True, workdir=str(tmp_path), max_images=2, t_primes=(100, 500), ensembles=(1, 2),
                             ddim=((500, 100),), holdout=1)
    written = json.loads((tmp_path / "study.json").read_text())
    assert [tuple(row) for row in written] == [pddpm_study.ROW_KEYS] * len(written)
    assert [(r["method"], r["t_prime"], r["ensemble"], r["steps"]) for r in written] == [
        ("preseg", None, None, None),
        ("pddpm", 1, 1, 1), ("pddpm", 1, 2, 1), ("pddpm", 5, 1, 5), ("pddpm", 5, 2, 5),
        ("ddpm", 10, 1, 10), ("ddpm", 10, 2, 10),
        ("ddim", 5, 2, 1),
    ]
    for row in written:
        assert row["n_images"] == 2 and row["eval_split"] == "validation"
        assert row["train_data"] == "phantom_camus/training minus 1 held-out patients" and row["device"].startswith("cpu")
        assert 0 <= row["dice_mean"] <= 100 and row["seconds_per_image"] > 0
    assert rows[0]["dice_mean"] == pytest.approx(written[0]["dice_mean"])
    uncertainty = json.loads((tmp_path / "study_uncertainty.json").read_text())
    assert len(uncertainty) == len(written) - 1 and all(0 <= u["uncertainty_auroc"] <= 1 for u in uncertainty)
    assert "Does high uncertainty mark wrong pixels?" in (tmp_path / "study.md").read_text()
    assert "| preseg | - | - | - |" in capsys.readouterr().out
