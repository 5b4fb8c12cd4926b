"""Checkpoint files of the generation bundle: formats, checkpoint-safe values, atomic writing, checked reading.

A checkpoint holds tensors and plain numbers, strings, lists and dicts only, so `torch.load(weights_only=True)` reads
it; `read_checkpoint` names the file and what is wrong with it (missing, not a torch file, another format, fields or
weights that do not fit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from echodiff.errors import ConfigValueError, CorruptFileError
from echodiff.io import atomic_write, read_torch_file

__all__ = ["AUTOENCODER_FORMAT", "GENERATOR_FORMAT", "checkpoint_safe", "load_state", "read_autoencoder_checkpoint",
           "read_checkpoint", "write_checkpoint"]  # fmt: skip

GENERATOR_FORMAT = "echodiff.generator"
AUTOENCODER_FORMAT = "echodiff.gamma_vae"
_CHECKPOINT_KEYS = {
    GENERATOR_FORMAT: ("model", "image_size", "noise", "latent_scale", "build_kwargs", "state_dict"),
    AUTOENCODER_FORMAT: ("build_kwargs", "state_dict"),
}
_CHECKPOINT_NAMES = {GENERATOR_FORMAT: "generator", AUTOENCODER_FORMAT: "Gamma-VAE autoencoder"}
_CHECKPOINT_HINTS = {
    GENERATOR_FORMAT: "train one with configs/train_diffusion.json (it writes models/generator_<model>.pt) or point "
    "generator_path at one",
    AUTOENCODER_FORMAT: "train it first with configs/train_autoencoder.json (it writes models/autoencoder.pt) or point "
    "autoencoder_path at one",
}


def checkpoint_safe(value: Any, what: str) -> Any:
    """`value` as checkpoint-safe data: tensors (moved to CPU), str, int, float, bool, None, lists and str-keyed dicts
    (tuples become lists); anything else raises ConfigValueError naming `what`."""
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [checkpoint_safe(v, what) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: checkpoint_safe(v, what) for k, v in value.items()}
    raise ConfigValueError(
        f"{what} holds {value!r} ({type(value).__name__}); checkpoints store only tensors, numbers, strings, lists and "
        "str-keyed dicts"
    )


def write_checkpoint(path: str | Path, checkpoint: dict, extra: dict | None) -> Path:
    """Add `extra` (checkpoint-safe, no reserved key) to `checkpoint` and write it atomically to `path`."""
    clash = sorted(set(extra or {}) & set(checkpoint))
    if clash:
        raise ConfigValueError(f"extra keys {clash} are reserved checkpoint fields; rename them")
    checkpoint.update(checkpoint_safe(dict(extra or {}), "extra"))
    path = Path(path)
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp), suffix=".pt")
    return path


def read_checkpoint(path: str | Path, expected: str, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint dict at `path` after checking it is a file of format `expected` with all its fields."""
    path, name = Path(path), _CHECKPOINT_NAMES[expected]
    checkpoint = read_torch_file(path, f"{name} checkpoint", _CHECKPOINT_HINTS[expected], map_location)
    found = checkpoint.get("format") if isinstance(checkpoint, dict) else None
    if found != expected:
        if found in _CHECKPOINT_NAMES:
            holds = f"format {found!r} (a {_CHECKPOINT_NAMES[found]} checkpoint)"
        elif isinstance(checkpoint, dict):
            holds = f"a dict with keys {sorted(map(str, checkpoint))[:8]}"
        else:
            holds = f"a {type(checkpoint).__name__}"
        raise CorruptFileError(f"{path} is not a {name} checkpoint: it holds {holds}; expected format {expected!r}")
    missing = [key for key in _CHECKPOINT_KEYS[expected] if key not in checkpoint]
    if missing:
        raise CorruptFileError(f"{name} checkpoint {path} lacks the fields {missing}")
    return checkpoint


def read_autoencoder_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The dict of a `save_autoencoder` file ({"build_kwargs", "state_dict", ...}), checked."""
    return read_checkpoint(path, AUTOENCODER_FORMAT, map_location)


def load_state(module: nn.Module, state_dict: dict[str, Tensor], path: str | Path, what: str) -> None:
    """`module.load_state_dict(state_dict)`, or CorruptFileError naming `path` and the keys and shapes that differ."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    resized = [
        f"{k} {tuple(state_dict[k].shape)} instead of {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state_dict))
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or resized:
        parts = [
            f"{label} ({len(items)}): {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}"
            for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shapes", resized))
            if items
        ]
        raise CorruptFileError(
            f"{path}: its state_dict does not match the {what} its build_kwargs describe; {'; '.join(parts)}"
        )
    module.load_state_dict(state_dict)
