"""The bundles served by a real MONAI Label server (0.8.5, its Zoo/bundle app), checked through MONAI Label's HTTP
client: the segmenter, PD-DDPM, the distillation student and the view classifier, each exported with
`export_for_monai_label` (tiny networks, seeded weights) from this repository's bundle folders, no Zoo download.

The server and client run in the separate MONAI Label environment (scripts/setup_monailabel_env.sh; its torch differs
from the core one), driven by tests/monai_label_driver.py; the expected answers are computed here, in the core
environment, by each bundle's own preprocessing, inferer and postprocessing. Skipped when that environment is absent
(MONAILABEL_ENV names its folder, as for the set-up script; default .venv-monailabel)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import nibabel
import numpy as np
import pytest
import torch
from echodiff.bundle import answer_agreement, export_for_monai_label, merged_config
from echodiff.bundle.checks import load_run_plan
from echodiff.data.camus import list_camus
from echodiff.metrics.cardiac import DICE_THRESHOLD
from echodiff.networks import ConvLSTMSegmenter
from monai.bundle import ConfigParser

from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
ML_PYTHON = (ROOT / os.environ.get("MONAILABEL_ENV", ".venv-monailabel") / "bin" / "python").absolute()
PDDPM = ("inference.json", "inference_pddpm.json")
RUN_ONLY_KEYS = {"dataset_dir", "ckpt_path", "presegmentation_ckpt", "output_dir", "num_workers", "batch_size",
                 "progress_bar"}  # fmt: skip
DRIVER_TIMEOUT_S = 420

# served name -> (bundle, configs, the bundle's tiny run in tests/runs.json, extra overrides)
SERVED = {
    "echo_pddpm_segmentation": ("echo_pddpm_segmentation", ("inference.json",), "inference", {}),
    "echo_pddpm_segmentation_pddpm": ("echo_pddpm_segmentation", PDDPM, "inference_pddpm", {"sampling_seed": 0}),
    "echo_dfkd_segmentation": ("echo_dfkd_segmentation", ("inference.json",), "inference", {}),
    "echo_view_classification": ("echo_view_classification", ("inference.json",), "inference", {}),
}


def _monai_label_prefix() -> tuple[Path | None, str]:
    """(the MONAI Label environment's sys.prefix, or None and why not)."""
    if not ML_PYTHON.is_file():
        return None, f"no MONAI Label environment at {ML_PYTHON.parent.parent} (bash scripts/setup_monailabel_env.sh)"
    found = subprocess.run([str(ML_PYTHON), "-c", "import sys, monailabel; print(sys.prefix)"], capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    if found.returncode != 0:
        return None, f"{ML_PYTHON} cannot import monailabel: {found.stderr.strip().splitlines()[-1:]}"
    return Path(found.stdout.strip()), ""


PREFIX, WHY_SKIPPED = _monai_label_prefix()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("monai_label_server"),  # one server session (the module fixture) for the three tests
    pytest.mark.skipif(PREFIX is None, reason=WHY_SKIPPED),
]


def _tiny_overrides(bundle: str, run_name: str) -> dict:
    run = next(r for r in load_run_plan(ROOT / "bundles" / bundle)["runs"] if r["name"] == run_name)
    return {k: v for k, v in run["override"].items() if k not in RUN_ONLY_KEYS}


def _seeded_weights(bundle: str, configs: tuple[str, ...], overrides: dict, path: Path, seed: int,
                    frame: str) -> Path:  # fmt: skip
    """A seeded random network's weights. A random one-logit student with fresh batch-norm statistics gives nearly the
    same logit everywhere, so its statistics are taken from `frame` (a few training-mode passes) and its output bias
    shifted to put the LV threshold at its median logit there: its answers then hold both labels, far from ties."""
    torch.manual_seed(seed)
    parser = ConfigParser(merged_config(bundle, configs, overrides))
    network = parser.get_parsed_content("network_def")
    if isinstance(network, ConvLSTMSegmenter) and network.head.network.out_channels == 1:
        image = torch.as_tensor(parser.get_parsed_content("preprocessing")({"image": frame})["image"])[None]
        inferer = parser.get_parsed_content("inferer")
        with torch.no_grad():
            for _ in range(20):
                inferer(image, network.train())
            logits = inferer(image, network.eval())
            network.head.network.bias.add_(torch.logit(torch.tensor(DICE_THRESHOLD)) - logits.median())
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, phantom_camus: Path) -> tuple[dict, dict, Path]:
    """(served name -> exported folder, driver.json, studies folder) after one server session."""
    root = tmp_path_factory.mktemp("monai_label")
    app = root / "app"
    shutil.copytree(PREFIX / "monailabel" / "sample-apps" / "monaibundle", app)
    studies = root / "studies"
    studies.mkdir()
    for item in list_camus(phantom_camus, "testing", require_label=False)[:3]:  # 2CH and 4CH frames of one patient
        shutil.copy(item["image"], studies / Path(item["image"]).name)
    if SHARED_DATA.is_dir():  # real frames too: a camus224 NIfTI and an original-resolution .mhd (anisotropic)
        real = sorted((SHARED_DATA / "camus224" / "database_nifti").glob("*/*_4CH_ED.nii.gz"))[0]
        shutil.copy(real, studies / f"camus224_{real.name}")  # a prefix: no clash with the phantom's patient ids
        original = SHARED_DATA / "camus_original_sample" / "patient0001"
        shutil.copy(original / "patient0001_4CH_ED.mhd", studies / "original_patient0001_4CH_ED.mhd")
        shutil.copy(original / "patient0001_4CH_ED.raw", studies)  # the name the .mhd header points at
    exports, frame = {}, str(sorted(studies.glob("*.nii.gz"))[0])
    for seed, (name, (bundle, configs, run_name, extra)) in enumerate(SERVED.items()):
        overrides = {**_tiny_overrides(bundle, run_name), **extra}
        extra_models = {}
        if configs == PDDPM:
            extra_models["presegmentation_ckpt"] = _seeded_weights(
                bundle, ("inference.json",), overrides, root / f"{name}_preseg.pt", seed + 10, frame)
        weights = _seeded_weights(bundle, configs, overrides, root / f"{name}.pt", seed, frame)
        exports[name] = export_for_monai_label(bundle, app / "model", weights, configs, overrides, extra_models, name)
    out = root / "out"
    command = [str(ML_PYTHON), str(ROOT / "tests" / "monai_label_driver.py"), "--app", str(app), "--studies",
               str(studies), "--models", ",".join(SERVED), "--out", str(out)]  # fmt: skip
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = driver.communicate(timeout=DRIVER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the server it started
        stdout, stderr = driver.communicate()
    log = (out / "server.log").read_text()[-3000:] if (out / "server.log").is_file() else ""
    assert driver.returncode == 0, f"driver failed:\n{stdout[-2000:]}\n{stderr[-3000:]}\nserver log:\n{log}"
    return exports, json.loads((out / "driver.json").read_text()), studies


def test_the_server_serves_every_bundle_with_its_task_type_and_label_names(served):
    _, driver, _ = served
    models = driver["info_models"]
    assert set(SERVED) <= set(models)
    for name in ("echo_pddpm_segmentation", "echo_pddpm_segmentation_pddpm"):
        assert models[name]["type"] == "segmentation" and models[name]["dimension"] == 2
        assert models[name]["labels"] == {"lv cavity": 1, "lv myocardium": 2, "left atrium": 3}
    assert models["echo_dfkd_segmentation"]["type"] == "segmentation"
    assert models["echo_dfkd_segmentation"]["labels"] == {"lv cavity": 1}
    assert models["echo_dfkd_segmentation"]["dimension"] == 3  # its metadata describes (T, H, W) clips
    assert models["echo_view_classification"]["type"] == "classification"
    assert models["echo_view_classification"]["labels"] == {"2ch": 0, "4ch": 1}


def test_every_answer_equals_the_bundle_prediction_at_every_pixel(served):
    """Each label file, read back on the source image's world grid, holds the bundle's own label at every pixel; the
    classifier's top class is the bundle's argmax. Every segmenter answers with more than one label on some image, so
    that agreement is not that of two empty maps."""
    exports, driver, studies = served
    n_images = 3 + 2 * SHARED_DATA.is_dir()
    assert len(driver["images"]) == n_images and len(driver["answers"]) == len(SERVED) * n_images
    rows = []
    for answer in driver["answers"]:
        image = str(next(p for p in studies.glob(f"{answer['image']}.*") if p.suffix != ".raw"))
        row = answer_agreement(exports[answer["model"]], image, answer["result_file"], answer["result_json"])
        rows.append({"model": answer["model"], "image": answer["image"], **row})
    assert all(row["agrees"] for row in rows), [row for row in rows if not row["agrees"]]
    segmenters = [name for name in SERVED if "segmentation" in name]
    for name in segmenters:
        answers = [row for row in rows if row["model"] == name]
        assert len(answers) == n_images and all("labels" in row for row in answers), name
        assert any(len(row["labels"]) > 1 for row in answers), f"{name} answered with one label everywhere"


def test_a_label_saved_through_the_api_is_stored_and_comes_back_unchanged(served):
    _, driver, studies = served
    saved = driver["saved_label"]
    assert saved["response"]["image"] == saved["image"] and "final" in saved["datastore_labels"]
    assert saved["downloaded_equal"]
    stored = next((studies / "labels" / "final").glob(f"{saved['image']}.*"))
    assert np.array_equal(nibabel.load(stored).get_fdata(), nibabel.load(saved["uploaded"]).get_fdata())
