"""The float32 / bf16 benchmark (echodiff.benchmarks.precision): one row per model and precision, ratios to float32."""

from __future__ import annotations

import pytest

from echodiff.benchmarks.precision import PRECISIONS, precision_autocast, precision_benchmark, precision_table
from echodiff.errors import ConfigKeyError


def test_rows_compare_both_precisions_of_the_same_recipe_networks() -> None:
    rows = precision_benchmark(models=("edm", "edm_l64"), scale="tiny", steps=1, train_steps=1, sample_batch=2)
    assert [(r["model"], r["precision"]) for r in rows] == [(m, p) for m in ("edm", "edm_l64") for p in PRECISIONS]
    for row in rows:
        assert row["train_s_per_step"] > 0 and row["sample_images_per_s"] > 0
        if row["precision"] == "float32":
            assert row["train_speedup"] == row["sample_speedup"] == 1.0
    assert precision_table(rows).count("\n") == len(rows) + 1


def test_bfloat16_autocast_runs_matrix_products_in_bf16_and_float32_does_not() -> None:
    import torch

    a = torch.rand(4, 4)
    for precision, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        with precision_autocast(torch.device("cpu"), precision):
            assert (a @ a).dtype == dtype


def test_unknown_precision_is_refused() -> None:
    import torch

    with pytest.raises(ConfigKeyError, match="precision 'float16'; expected one of float32, bfloat16"):
        precision_autocast(torch.device("cpu"), "float16")


def test_unknown_model_is_refused_naming_the_option() -> None:
    with pytest.raises(ConfigKeyError, match=r"--models \['edm_xl'\]; expected some of sdm, vp"):
        precision_benchmark(models=("edm", "edm_xl"))


def test_one_precision_compares_the_models_alone() -> None:
    rows = precision_benchmark(models=("edm", "edm_l64"), scale="tiny", steps=1, train_steps=1, sample_batch=2,
                               precisions="float32")  # fmt: skip
    assert [(r["model"], r["precision"], r["sample_speedup"]) for r in rows] == [("edm", "float32", 1.0),
                                                                               ("edm_l64", "float32", 1.0)]
    with pytest.raises(ConfigKeyError, match="--precisions"):
        precision_benchmark(precisions=["float64"])
