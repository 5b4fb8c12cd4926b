"""Model Zoo checks for every folder in bundles/: metadata schema, required files, workflow properties, tiny CPU runs."""

from __future__ import annotations

import pytest
from echodiff.bundle import (
    REPO_BUNDLES,
    bundle_names,
    check_bundle_files,
    check_properties,
    run_ci_plan,
    validate_metadata,
)
from echodiff.bundle.checks import load_run_plan

BUNDLES = bundle_names()


def test_every_bundle_folder_is_a_bundle():
    folders = sorted(p.name for p in REPO_BUNDLES.iterdir() if p.is_dir())
    assert folders == BUNDLES, "each folder in bundles/ needs configs/metadata.json"


@pytest.mark.parametrize("name", BUNDLES)
def test_metadata_validates_against_model_zoo_schema(name):
    meta = validate_metadata(REPO_BUNDLES / name)
    assert meta["version"] in meta["changelog"]


@pytest.mark.parametrize("name", BUNDLES)
def test_required_files_exist(name):
    check_bundle_files(REPO_BUNDLES / name)


def _fixtures(name: str, request: pytest.FixtureRequest) -> dict[str, str]:
    plan = load_run_plan(REPO_BUNDLES / name)
    return {f: str(request.getfixturevalue(f)) for f in plan.get("fixtures", [])}


@pytest.mark.parametrize("name", BUNDLES)
def test_config_workflow_properties(name, request, tmp_path):
    check_properties(REPO_BUNDLES / name, _fixtures(name, request), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLES)
def test_every_config_runs_on_cpu_with_tiny_overrides(name, request, tmp_path):
    done = run_ci_plan(REPO_BUNDLES / name, _fixtures(name, request), tmp_path)  # torchrun runs: test_distributed.py
    assert done == [run["name"] for run in load_run_plan(REPO_BUNDLES / name)["runs"] if not run.get("torchrun")]
