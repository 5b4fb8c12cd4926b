"""Model Zoo packages of every bundle (echodiff.bundle.package_bundle): the Zoo's offline checks, `verify_net_in_out`
where the network takes a float image, and a load-and-run smoke test from the package alone, in a clean virtual
environment: the third-party packages of this one, echodiff installed from its wheel, no path to this checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import torch
from echodiff.bundle import BundleCheckError, bundle_names, check_package, package_bundle
from echodiff.bundle.package import ZOO_MAX_FILE_BYTES
from echodiff.generation import build_generator, save_generator
from monai.bundle import ConfigParser

REPO = Path(__file__).resolve().parents[1]
# what the smoke test ships as random-initialised weights, and whether MONAI's verify_net_in_out applies (it feeds
# torch.rand input, which the generator's integer condition map is not)
WEIGHTS = {
    "echo_pddpm_segmentation": ("models/model.pt", True),
    "echo_view_classification": ("models/model.pt", True),
    "echo_dfkd_segmentation": ("models/model.pt", True),
    "echo_ldm_generation": ("models/generator_edm_l64.pt", False),
}


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment seeing this one's third-party site-packages (not its .pth files, so not the editable
    echodiff) with echodiff unpacked from a wheel built from the repository."""
    root = tmp_path_factory.mktemp("clean")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(root / "wheels"), str(REPO)], check=True, capture_output=True)  # fmt: skip
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(root / "venv")],
                   check=True)  # fmt: skip
    python = root / "venv" / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())  # fmt: skip
    (site / "third_party.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    with zipfile.ZipFile(next((root / "wheels").glob("echodiff-*.whl"))) as wheel:
        wheel.extractall(site)
    where = subprocess.run([python, "-c", "import echodiff; print(echodiff.__file__)"], cwd=root, check=True,
                           capture_output=True, text=True, env=_env()).stdout  # fmt: skip
    assert where.startswith(str(site)), where
    return python


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def _random_weights(bundle: str, path: Path) -> Path:
    """Weights of the package's default inference network, randomly initialised (seed 0)."""
    torch.manual_seed(0)
    if bundle == "echo_ldm_generation":
        return save_generator(path, build_generator("edm_l64", 128))
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / bundle / "configs" / "inference.json"))
    torch.save(parser.get_parsed_content("network_def").state_dict(), path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("bundle", bundle_names())
def test_zoo_package_passes_the_offline_checks_and_runs_alone_in_a_clean_environment(bundle, clean_python, tmp_path):
    name, verify = WEIGHTS[bundle]
    weights = _random_weights(bundle, tmp_path / "weights.pt")
    package = package_bundle(bundle, tmp_path / "zoo", {name: weights})
    meta = check_package(package)
    assert meta["required_packages_version"]["echodiff"] == json.loads(
        (REPO / "bundles" / bundle / "configs" / "metadata.json").read_text())["required_packages_version"]["echodiff"]
    assert all(p.stat().st_size <= ZOO_MAX_FILE_BYTES for p in package.rglob("*") if p.is_file())
    assert not any((package / d).exists() for d in ("data", "eval", "runs"))
    assert (package / name).is_file() == (weights.stat().st_size <= ZOO_MAX_FILE_BYTES)  # larger: large_files.yml only
    if not (package / name).is_file():  # what `monai.bundle download_large_files` fetches from the release URL
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_bytes(weights.read_bytes())
    check_package(package)  # the file matches its sha256 in large_files.yml
    run = {"cwd": package, "capture_output": True, "text": True, "env": _env(), "timeout": 600}  # Zoo: from the root
    if verify:
        result = subprocess.run([clean_python, "-m", "monai.bundle", "verify_net_in_out", "network_def", "--meta_file",
                                 "configs/metadata.json", "--config_file", "configs/inference.json"], **run)  # fmt: skip
        assert result.returncode == 0 and "verified with no error" in result.stdout + result.stderr, result.stderr[-3000:]
    out = tmp_path / "out"
    result = subprocess.run([clean_python, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
                             "--output_dir", str(out), "--num_workers", "0"], **run)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"outputs written to {out}" in result.stdout + result.stderr and any(out.rglob("*.*"))


def test_package_check_names_a_tampered_weight_file(tmp_path):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"weights")
    package = package_bundle("echo_view_classification", tmp_path / "zoo", {"models/model.pt": weights})
    (package / "models" / "model.pt").write_bytes(b"other")
    with pytest.raises(BundleCheckError, match="models/model.pt does not match its sha256 in .*large_files.yml"):
        check_package(package)
