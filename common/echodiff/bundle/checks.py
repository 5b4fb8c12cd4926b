"""Model Zoo style checks of a bundle folder, driven by the bundle's own declarative run plan (tests/runs.json).

A run plan lists the configs to exercise, their run id, workflow type, tiny overrides and the files each run must write:

    {"fixtures": ["phantom_camus"],
     "runs": [{"name": "train", "config_file": ["configs/train.json"], "run_id": "training",
               "workflow_type": "train", "override": {"dataset_dir": "{phantom_camus}", "output_dir": "{tmp}/eval"},
               "expect_files": ["{tmp}/models/model.pt"], "torchrun": false}]}

Strings in `override` and `expect_files` may name `{tmp}` and any fixture listed in `fixtures`. Runs execute in order,
so a later run may read what an earlier one wrote. Adding a bundle therefore needs a plan file, never harness code.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_FILE = Path(__file__).with_name("meta_schema_20240725.json")
REQUIRED_FILES = ("LICENSE", "docs/README.md", "docs/data_license.txt", "configs/metadata.json", "configs/logging.conf")
RUN_PLAN = "tests/runs.json"


class BundleCheckError(AssertionError):
    """A bundle does not meet a Model Zoo requirement; the message names the bundle file and the rule."""


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise BundleCheckError(f"{path} is missing") from err
    except json.JSONDecodeError as err:
        raise BundleCheckError(f"{path} is not valid JSON: {err}") from err


def validate_metadata(bundle_dir: str | Path, schema_file: str | Path = SCHEMA_FILE) -> dict:
    """Validate configs/metadata.json against the Model Zoo schema and our conventions; return the metadata."""
    meta_file = Path(bundle_dir) / "configs" / "metadata.json"
    meta = _load_json(meta_file)
    try:
        jsonschema.validate(meta, _load_json(Path(schema_file)))
    except jsonschema.ValidationError as err:
        raise BundleCheckError(f"{meta_file} does not match the Model Zoo schema: {err.message}") from err
    if meta["version"] not in meta.get("changelog", {}):
        raise BundleCheckError(f"{meta_file}: version {meta['version']} has no entry in 'changelog'")
    io = meta["network_data_format"]
    if "image" not in io["inputs"] or "pred" not in io["outputs"]:
        raise BundleCheckError(f"{meta_file}: network_data_format needs input key 'image' and output key 'pred'")
    if "channel_def" not in io["outputs"]["pred"]:
        raise BundleCheckError(f"{meta_file}: network_data_format.outputs.pred needs a 'channel_def' naming the labels")
    return meta


def check_bundle_files(bundle_dir: str | Path) -> None:
    """The files every bundle must ship (LICENSE, docs, metadata, logging config, run plan)."""
    missing = [f for f in (*REQUIRED_FILES, RUN_PLAN) if not (Path(bundle_dir) / f).is_file()]
    if missing:
        raise BundleCheckError(f"bundle {bundle_dir} lacks {', '.join(missing)}")


def load_run_plan(bundle_dir: str | Path) -> dict:
    """Read the bundle's run plan and check that it exercises every config in configs/."""
    bundle_dir = Path(bundle_dir)
    plan = _load_json(bundle_dir / RUN_PLAN)
    exercised = {Path(c).name for run in plan["runs"] for c in run["config_file"]}
    configs = {p.name for p in (bundle_dir / "configs").glob("*.json") if p.name != "metadata.json"}
    if configs - exercised:
        raise BundleCheckError(f"{bundle_dir / RUN_PLAN} runs no test of {sorted(configs - exercised)}")
    return plan


def _config_files(bundle_dir: Path, run: dict) -> list[str]:
    return [str(bundle_dir / c) for c in run["config_file"]]


def check_properties(bundle_dir: str | Path, fixtures: dict[str, str], tmp_dir: str | Path) -> None:
    """`ConfigWorkflow.check_properties()` passes, after `initialize()` with the run's tiny overrides, for every planned
    run that declares a workflow type (torchrun runs get a one-process CPU process group)."""
    from monai.bundle import ConfigWorkflow

    bundle_dir = Path(bundle_dir)
    names = {"tmp": str(tmp_dir), **fixtures}
    for run in load_run_plan(bundle_dir)["runs"]:
        if not run.get("workflow_type"):
            continue
        workflow = ConfigWorkflow(
            config_file=_config_files(bundle_dir, run),
            meta_file=str(bundle_dir / "configs" / "metadata.json"),
            logging_file=str(bundle_dir / "configs" / "logging.conf"),
            workflow_type=run["workflow_type"],
            **_substitute(run.get("override", {}), names),
        )
        with _single_process_group(run.get("torchrun", False)):
            workflow.initialize()
            missing = workflow.check_properties()
            workflow.finalize()
        if missing:
            raise BundleCheckError(f"{run['config_file']} ({run['workflow_type']}) lacks required properties {missing}")


@contextlib.contextmanager
def _single_process_group(enabled: bool) -> Iterator[None]:
    """Environment for `init_process_group(init_method='env://')` with one CPU process, restored afterwards."""
    if not enabled:
        yield
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
           "CUDA_VISIBLE_DEVICES": ""}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        import ignite.distributed as idist

        idist.sync()  # ignite caches the (now destroyed) process group; re-detect the serial context
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _substitute(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names) if "{" in value and not value.startswith("$") else value
    if isinstance(value, list):
        return [_substitute(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, names) for k, v in value.items()}
    return value


def run_ci_plan(bundle_dir: str | Path, fixtures: dict[str, str], tmp_dir: str | Path) -> list[str]:
    """Run every planned config on CPU with its tiny overrides, in one process; return the names of the runs executed.
    Runs marked `"torchrun": true` are left out: `tests/test_distributed.py` runs them with two processes."""
    from monai.bundle import run as bundle_run

    bundle_dir, tmp_dir = Path(bundle_dir), Path(tmp_dir)
    plan = load_run_plan(bundle_dir)
    names = {"tmp": str(tmp_dir), **fixtures}
    done = []
    for run in plan["runs"]:
        if run.get("torchrun"):
            continue
        bundle_run(
            run["run_id"],
            config_file=_config_files(bundle_dir, run),
            meta_file=str(bundle_dir / "configs" / "metadata.json"),
            logging_file=str(bundle_dir / "configs" / "logging.conf"),
            **_substitute(run.get("override", {}), names),
        )
        missing = [f for f in _substitute(run.get("expect_files", []), names) if not Path(f).exists()]
        if missing:
            raise BundleCheckError(f"run '{run['name']}' of {bundle_dir.name} did not write {missing}")
        done.append(run["name"])
    return done
