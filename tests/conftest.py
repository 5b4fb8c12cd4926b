"""Shared pytest fixtures: real-data location (skips when absent) and tiny phantom datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
from echodiff.cpu import available_cores

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
MAX_WORKERS = 4  # more processes than this only add start-up and memory on the CPU tests


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject addopts): one test process per core, at most MAX_WORKERS."""
    return min(MAX_WORKERS, available_cores())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests (subprocesses, servers, torchrun) first: xdist hands tests out in this order, so the long ones start
    at once and the many short ones fill the workers' gaps at the end (a stable sort: the same order on every
    worker, as xdist requires)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the read-only real data (../shared/data); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def phantom_camus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny built-in phantom in the CAMUS 2023 NIfTI layout (64 px; 4 training, 2 validation, 2 testing patients)."""
    from echodiff.data.phantom import make_phantom_camus

    out_dir = tmp_path_factory.mktemp("phantom") / "camus"
    return make_phantom_camus(out_dir, n_train=4, n_val=2, n_test=2, size=64, seed=0)


@pytest.fixture(scope="session")
def phantom_echonet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny built-in phantom in the EchoNet-Dynamic layout (3 videos of 24 frames at 112 px)."""
    from echodiff.data.phantom import make_phantom_echonet

    out_dir = tmp_path_factory.mktemp("phantom") / "echonet"
    return make_phantom_echonet(out_dir, n_videos=3, n_frames=24, size=112, seed=0)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny tensors on a small shared CPU run several times faster on one thread (no OpenMP oversubscription)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def dfkd_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny teacher for distillation plumbing: the segmentation bundle's DynUNet with filters 8, 16, 32
    (4 CAMUS classes), saved as a plain state dict."""
    import torch
    from monai.networks.nets import DynUNet

    torch.manual_seed(0)
    teacher = DynUNet(2, 1, 4, kernel_size=[3, 3, 3], strides=[1, 2, 2], upsample_kernel_size=[2, 2],
                      filters=[8, 16, 32], norm_name="instance")  # fmt: skip
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    torch.save(teacher.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def feature_network():
    """A randomly initialised tiny MONAI ResNet (16 penultimate features, 2 classes): a feature space for the realism
    and privacy figures (a random conv net's features already separate noise from echo phantoms)."""
    import torch
    from monai.networks.nets import ResNet

    torch.manual_seed(0)
    return ResNet("basic", (1, 1, 1, 1), (4, 8, 16, 16), spatial_dims=2, n_input_channels=1, num_classes=2).eval()


@pytest.fixture(scope="session")
def view_classifier_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained echo_view_classification network (its train.json `network_def`, ResNet-18) saved as the bundle's
    CheckpointSaver saves it (state dict under "model")."""
    import torch
    from echodiff.bundle import merged_config
    from monai.bundle import ConfigParser

    torch.manual_seed(0)
    network = ConfigParser(merged_config("echo_view_classification", ("train.json",), {})).get_parsed_content(
        "network_def")
    path = tmp_path_factory.mktemp("classifier") / "classifier.pt"
    torch.save({"model": network.state_dict()}, path)
    return path
