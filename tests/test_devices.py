"""The device check (echodiff.devices): a CUDA device on a torch without CUDA ends with one line naming the CPU
choice, in the study and in a bundle run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from echodiff.devices import check_device
from echodiff.errors import ConfigValueError, user_error
from monai.bundle import ConfigWorkflow

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cpu_only_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cpu_passes_and_cuda_on_a_cpu_only_torch_names_the_cpu_choice(cpu_only_torch: None) -> None:
    assert check_device(None) == torch.device("cpu") and check_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigValueError, match=r"--device cuda: CUDA is not available in this torch build .*cpu"):
        check_device("cuda")
    with pytest.raises(ConfigValueError, match=r"--device 'gpu0'.*expected e.g. cpu, cuda or cuda:0"):
        check_device("gpu0")


def test_cuda_build_without_a_visible_gpu_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigValueError, match=r"--device cuda:1: no CUDA device is visible .*--device cpu"):
        check_device("cuda:1")


def test_bundle_run_with_a_cuda_device_stops_at_initialize_with_the_device_error(cpu_only_torch: None) -> None:
    root = REPO_ROOT / "bundles" / "echo_view_classification"
    workflow = ConfigWorkflow(str(root / "configs" / "train.json"), run_id="training", workflow_type="train",
                              bundle_root=str(root), device="$torch.device('cuda')")  # fmt: skip
    with pytest.raises(Exception) as raised:
        workflow.initialize()
    assert "CUDA is not available in this torch build" in str(user_error(raised.value))
