"""CPU default: torch's intra-op threads, set when echodiff is imported."""

from __future__ import annotations

import os

import torch


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which containers restrict; else all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_cpu_threads() -> int:
    """Give torch half the available cores (at least 1) as intra-op threads, unless OMP_NUM_THREADS chooses; returns
    the thread count in use.

    torch's own default, one thread per core, oversubscribes a small CPU as soon as data-loading workers or a second
    job run: its OpenMP threads spin-wait for descheduled peers at every parallel operation. With one other job on 2
    cores, training epochs ran 7 times slower (not 2); a busy 2-core machine ran ResNet-18 steps 1.8 times faster on 1
    thread than on 2. The other half is left to the data-loading workers (`num_workers`, one thread each)."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, available_cores() // 2))
    return torch.get_num_threads()


def free_core_threads() -> int:
    """Torch threads for a job that loads its data in its own process (`num_workers` 0, as the study's stages do):
    every available core, as nothing else needs one, unless OMP_NUM_THREADS chooses (a busy machine). With half the
    cores (`default_cpu_threads`), the study kept one of 2 cores idle and its generator trained at 1.3 s per step
    against 0.61 s on 2 threads."""
    chosen = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(chosen) if chosen.isdigit() and int(chosen) > 0 else available_cores()
