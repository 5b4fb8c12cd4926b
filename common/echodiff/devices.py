"""The device a run asks for, checked before any work: a CUDA device on a torch without CUDA (or on a machine without
that GPU) ends with one line saying so and how to choose the CPU, instead of a traceback at the first `.to(device)`."""

from __future__ import annotations

import torch

from echodiff.errors import ConfigValueError

__all__ = ["check_device"]


def check_device(device: str | torch.device | None, option: str = "--device") -> torch.device:
    """`device` as a torch.device (None: the CPU) once it is usable here; bundle configs call it first in `initialize`
    with `@device`, the study with its `--device`. Raises ConfigValueError naming `option` otherwise."""
    try:
        resolved = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as err:
        raise ConfigValueError(f"{option} {device!r}: {err}; expected e.g. cpu, cuda or cuda:0") from err
    if resolved.type != "cuda":
        return resolved
    choose_cpu = f"choose the CPU with {option} cpu"
    if torch.version.cuda is None:
        raise ConfigValueError(f"{option} {device}: CUDA is not available in this torch build (torch "
                               f"{torch.__version__}, CPU only); {choose_cpu} or install a CUDA build of torch")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ConfigValueError(f"{option} {device}: no CUDA device is visible to torch {torch.__version__} on this "
                               f"machine; {choose_cpu}")
    if resolved.index is not None and resolved.index >= count:
        raise ConfigValueError(f"{option} {device}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}; "
                               f"pick one of them or {choose_cpu}")
    return resolved
