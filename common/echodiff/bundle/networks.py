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
from echodiff.errors import ConfigKeyError, CorruptFileError, MissingFileError

__all__ = ["load_bundle_network"]


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
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise MissingFileError(f"{ckpt_path} does not exist; expected a trained {bundle} checkpoint")
    parser = ConfigParser(merged_config(bundle, config_files, overrides))
    if network_key not in parser:
        raise ConfigKeyError(f"{bundle} configs {list(config_files)} have no key {network_key!r}")
    network = parser.get_parsed_content(network_key)
    checkpoint = torch.load(ckpt_path, map_location=map_location, weights_only=True)
    state = checkpoint.get(weights_key, checkpoint) if isinstance(checkpoint, dict) else checkpoint
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CorruptFileError(
            f"{ckpt_path} does not fit {bundle}'s {network_key} with overrides {dict(overrides or {})}: {first}"
        ) from err
    return network.eval()
