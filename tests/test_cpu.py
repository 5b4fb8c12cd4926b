"""The CPU default set when echodiff is imported: torch's intra-op threads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from echodiff.cpu import available_cores


def _threads_after_import(env: dict) -> int:
    code = "import echodiff, torch; print(torch.get_num_threads())"
    return int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)


@pytest.mark.skipif(available_cores() < 2, reason="on one core, half the cores and all of them are both 1 thread")
def test_importing_echodiff_gives_torch_half_the_cores_unless_omp_num_threads_chooses():
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    assert _threads_after_import(env) == max(1, available_cores() // 2)
    chosen = available_cores()  # torch caps OMP_NUM_THREADS at the cores; differs from half of them here
    assert _threads_after_import({**env, "OMP_NUM_THREADS": str(chosen)}) == chosen != available_cores() // 2
