"""Build a bundle's network from its own config and load trained weights into it (e.g. the real-trained segmenter that
scores a generator's label fidelity), so the architecture is defined in exactly one place: the bundle config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from torch import nn

from echodiff.bundle.export import merged_config
from echodiff.errors import ConfigKeyError, CorruptFileError
from echodiff.io import read_torch_file

__all__ = ["load_bundle_network", "load_weights"]


def load_bundle_network(
    bundle: str,
    ckpt_path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    config_files: Sequence[str] = ("train.json",),
    network_key: str = "network_def",
    weights_key: str = "model",
    map_location: str | torch.device = "cpu",
) -> nn.Module:
    """`network_key` of bundle `bundle`'s `config_files` (with `overrides`, e.g. the image size and filters the model
    was trained with), in eval mode, with the weights stored under `weights_key` in `ckpt_path` (a MONAI
    CheckpointSaver file; a plain state dict also works)."""
    parser = ConfigParser(merged_config(bundle, config_files, overrides))
    if network_key not in parser:
        raise ConfigKeyError(f"{bundle} configs {list(config_files)} have no key {network_key!r}")
    network = parser.get_parsed_content(network_key)
    return load_weights(network, ckpt_path, f"{bundle} checkpoint", f"train one with {bundle}'s configs",
                        weights_key, map_location)


def load_weights(network: nn.Module, ckpt_path: str | Path, name: str = "checkpoint",
                 hint: str = "train one with the bundle's train.json", weights_key: str = "model",
                 map_location: str | torch.device = "cpu") -> nn.Module:  # fmt: skip
    """`network` in eval mode with the weights of `ckpt_path` (a MONAI CheckpointSaver file, whose state dict may sit
    under `weights_key`, or a plain state dict); a missing, unreadable or ill-fitting file ends in a one-line error
    naming it (`name`, what it should be; `hint`, how to get one)."""
    checkpoint = read_torch_file(ckpt_path, name, hint, map_location)
    state = checkpoint.get(weights_key, checkpoint) if isinstance(checkpoint, dict) else checkpoint
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        lines = str(err).strip().splitlines()
        raise CorruptFileError(
            f"{ckpt_path} does not fit the network of this config ({lines[min(1, len(lines) - 1)].strip()}); expected a "
            f"{name} of the same network settings (filters, k_blocks / n_layers, classes, image size)"
        ) from err
    return network.eval()
