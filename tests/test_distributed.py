"""Every `multi_gpu_*.json` overlay under torchrun with 2 CPU processes (gloo), at tiny scale: the ranks train on
disjoint parts of the data that together cover it, and rank 0 alone writes files (checkpoints, best models, reports,
grids). `tests/distributed_driver.py` runs each rank and records what it trained on and wrote."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from echodiff.bundle import REPO_BUNDLES, bundle_names
from echodiff.bundle.checks import _substitute, load_run_plan
from echodiff.data.camus import read_camus_array
from echodiff.data.phantom import make_phantom_echonet
from echodiff.generation import build_generator, save_generator

REPO_ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("distributed_driver.py")
WORLD = 2
TORCHRUN_BUNDLES = [name for name in bundle_names() if any(r.get("torchrun") for r in load_run_plan(REPO_BUNDLES / name)["runs"])]


def _torchrun(bundle: Path, runs: list[dict], names: dict, log_root: Path) -> dict[str, list[dict]]:
    """All `runs` of `bundle` in one torchrun launch of WORLD processes; {run name: the ranks' records}."""
    specs = []
    for run in runs:
        (log_root / run["name"]).mkdir(parents=True)
        specs.append({"config_files": [str(bundle / c) for c in run["config_file"]],
                      "meta_file": str(bundle / "configs" / "metadata.json"),
                      "logging_file": str(bundle / "configs" / "logging.conf"),
                      "override": _substitute(run.get("override", {}), names), "log_dir": str(log_root / run["name"])})  # fmt: skip
    (log_root / "spec.json").write_text(json.dumps({"runs": specs}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}", str(DRIVER),
           str(log_root / "spec.json")]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=names["tmp"], env=env, capture_output=True, text=True, timeout=600)
    names_ = ", ".join(run["name"] for run in runs)
    assert result.returncode == 0, f"torchrun of {names_} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return {run["name"]: [json.loads((log_root / run["name"] / f"rank{r}.json").read_text()) for r in range(WORLD)]
            for run in runs}  # fmt: skip


@pytest.fixture(scope="module")
def phantom_echonet_10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The EchoNet phantom with 2 validation videos (MONAI's DistributedSampler needs one per rank)."""
    return make_phantom_echonet(tmp_path_factory.mktemp("phantom") / "echonet", n_videos=10, n_frames=24, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCHRUN_BUNDLES)
def test_multi_gpu_overlays_split_the_data_over_two_gloo_ranks_and_only_rank_0_writes(name, request, tmp_path):
    bundle = REPO_BUNDLES / name
    plan = load_run_plan(bundle)
    fixtures = {f: "phantom_echonet_10" if f == "phantom_echonet" else f for f in plan.get("fixtures", [])}
    names = {"tmp": str(tmp_path), **{f: str(request.getfixturevalue(v)) for f, v in fixtures.items()}}
    runs = [r for r in plan["runs"] if r.get("torchrun")]  # in plan order: later runs use earlier outputs
    records = _torchrun(bundle, runs, names, tmp_path / "logs")
    for run in runs:
        ranks = records[run["name"]]
        size = ranks[0]["dataset"]
        for epoch, first in ranks[0]["indices"].items():
            second = ranks[1]["indices"][epoch]
            assert len(first) == len(second) == -(-size // WORLD), (run["name"], epoch)
            assert set(first) | set(second) == set(range(size)), (run["name"], epoch)
            assert len(set(first) & set(second)) == (-size) % WORLD, (run["name"], epoch)  # only the padding repeats
        assert ranks[0]["indices"], f"{run['name']}: rank 0 trained no epoch"
        assert ranks[1]["writes"] == [], f"{run['name']}: rank 1 wrote {ranks[1]['writes']}"
        missing = [f for f in _substitute(run.get("expect_files", []), names) if not Path(f).exists()]
        assert not missing and ranks[0]["writes"], (run["name"], missing)


def _printed_summaries(stdout: str) -> list[dict[str, str]]:
    """The `key: value` blocks fire prints for each rank's returned summary (each starts with out_dir)."""
    blocks = []
    for line in stdout.splitlines():
        key, _, value = line.partition(":")
        if key == "out_dir":
            blocks.append({})
        if blocks and value:
            blocks[-1][key.strip()] = value.strip()
    return blocks


def _arrays(out: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(out)): read_camus_array(p)[0] for p in sorted(out.glob("database_nifti/*/*.nii.gz"))}


@pytest.mark.slow
def test_synthesis_under_torchrun_shards_the_cases_and_writes_the_files_of_one_process(phantom_camus, tmp_path):
    """scripts/synthesize.py with 2 gloo ranks: each rank generates its own cases (i % 2 == rank), and the folder
    equals one process's (the script's `main` called here), image for image, with one manifest line per case."""
    torch.manual_seed(0)
    checkpoint = save_generator(tmp_path / "generator.pt", build_generator("edm_l64", 32))
    options = {"k": 1, "steps": 2, "batch_size": 4, "device": "cpu"}
    script = REPO_ROOT / "scripts" / "synthesize.py"
    runpy.run_path(str(script))["main"](str(checkpoint), str(phantom_camus), str(tmp_path / "one"), progress=False,
                                        **options)  # fmt: skip
    logs = tmp_path / "rank_logs"  # one stdout per rank: printed summaries of two ranks interleave
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}", "--log-dir",
               str(logs), "--redirects", "1", str(script), "--checkpoint", str(checkpoint), "--source_dir",
               str(phantom_camus), "--out_dir", str(tmp_path / "two"), "--progress", "False",
               *[f"--{key}={value}" for key, value in options.items()]]  # fmt: skip
    result = subprocess.run(command, env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = _arrays(tmp_path / "one"), _arrays(tmp_path / "two")
    assert one.keys() == two.keys() and all(np.array_equal(one[k], two[k]) for k in one)
    lines = [json.loads(line) for line in (tmp_path / "two" / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == len({line["image"] for line in lines}) == len(one) // 3  # image, label map, condition map
    summaries = {int(block["rank"]): block for path in sorted(logs.rglob("stdout.log"))
                 for block in _printed_summaries(path.read_text())}  # fmt: skip
    assert sorted(summaries) == list(range(WORLD))
    assert [int(summaries[r]["generated"]) for r in range(WORLD)] == [len(lines) // WORLD] * WORLD  # disjoint halves
    assert summaries[0]["manifest"] != "null" and summaries[1]["manifest"] == "null"  # rank 0 alone writes it
