"""Saving and loading generators and Gamma-VAEs (`echodiff.generation.checkpoint_files` formats), and the lazily
loaded generator of bundle configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from echodiff.errors import ConfigValueError, CorruptFileError, EchoDataError
from echodiff.generation.checkpoint_files import (
    AUTOENCODER_FORMAT,
    GENERATOR_FORMAT,
    checkpoint_safe,
    load_state,
    read_autoencoder_checkpoint,
    read_checkpoint,
    write_checkpoint,
)
from echodiff.generation.generator import LabelToImageGenerator
from echodiff.generation.models import build_generator, checked_model
from echodiff.networks import GammaVAE

__all__ = ["GeneratorCheckpoint", "load_autoencoder", "load_generator", "save_autoencoder", "save_generator"]


def save_generator(path: str | Path, generator: LabelToImageGenerator, extra: dict | None = None) -> Path:
    """Write the generator atomically: {"format", "model", "image_size", "noise", "latent_scale", "build_kwargs",
    "state_dict", **extra} (state_dict includes the Gamma-VAE of latent models); returns the path."""
    checkpoint = {
        "format": GENERATOR_FORMAT,
        "model": generator.model,
        "image_size": int(generator.image_size),
        "noise": generator.noise,
        "latent_scale": float(generator.latent_scale),
        "build_kwargs": checkpoint_safe(generator.build_kwargs, "build_kwargs"),
        "state_dict": checkpoint_safe(dict(generator.state_dict()), "state_dict"),
    }
    return write_checkpoint(path, checkpoint, extra)


def save_autoencoder(
    path: str | Path, autoencoder: GammaVAE, build_kwargs: dict, extra: dict | None = None
) -> Path:
    """Write a Gamma-VAE atomically: {"format", "build_kwargs" (its GammaVAE arguments), "state_dict", **extra}."""
    checkpoint = {
        "format": AUTOENCODER_FORMAT,
        "build_kwargs": checkpoint_safe(build_kwargs, "build_kwargs"),
        "state_dict": checkpoint_safe(dict(autoencoder.state_dict()), "state_dict"),
    }
    return write_checkpoint(path, checkpoint, extra)


def load_autoencoder(path: str | Path, map_location: str | torch.device = "cpu") -> GammaVAE:
    """The Gamma-VAE of a `save_autoencoder` file, on `map_location`."""
    checkpoint = read_autoencoder_checkpoint(path, map_location)
    try:
        autoencoder = GammaVAE(**checkpoint["build_kwargs"])
    except (TypeError, ValueError) as err:
        raise CorruptFileError(
            f"autoencoder checkpoint {path} records GammaVAE arguments {checkpoint['build_kwargs']} that build no "
            f"Gamma-VAE ({err})"
        ) from err
    load_state(autoencoder, checkpoint["state_dict"], path, "Gamma-VAE")
    return autoencoder.to(map_location)


def load_generator(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    autoencoder_path: str | Path | None = None,
    model: str | None = None,
) -> LabelToImageGenerator:
    """The generator of a `save_generator` file, on `map_location`.

    `autoencoder_path` (latent models only): a `save_autoencoder` file whose weights replace the stored Gamma-VAE's
    (`LabelToImageGenerator.load_autoencoder_weights`). `model`: the model the caller asked for; a checkpoint of
    another model is refused (`ConfigValueError` naming both) instead of silently running the checkpoint's.
    """
    checkpoint = read_checkpoint(path, GENERATOR_FORMAT, map_location)
    if model is not None and checkpoint["model"] != model:
        raise ConfigValueError(
            f"generator checkpoint {path} holds a {checkpoint['model']!r} generator, not the {model!r} asked for; "
            f"run it with --model {checkpoint['model']}, or point --generator_path at a {model!r} generator"
        )
    try:
        generator = build_generator(**checkpoint["build_kwargs"], latent_scale=checkpoint["latent_scale"])
    except (EchoDataError, TypeError) as err:
        raise CorruptFileError(
            f"generator checkpoint {path} records build_kwargs that build no generator ({type(err).__name__}: {err})"
        ) from err
    load_state(generator, checkpoint["state_dict"], path, f"{generator.model!r} generator")
    if autoencoder_path is not None:
        generator.load_autoencoder_weights(autoencoder_path)
    return generator.to(map_location)


class GeneratorCheckpoint(nn.Module):
    """The generator in a `save_generator` file, loaded at its first use: bundle configs are instantiated (property
    checks, workflow initialisation) before training has written the file. `sample` forwards to the generator.

    `model` (checked at once: an unknown name is a `ConfigKeyError` listing the known ones) must be the model the file
    holds (`load_generator`)."""

    def __init__(
        self,
        path: str | Path,
        map_location: str | torch.device = "cpu",
        autoencoder_path: str | Path | None = None,
        model: str | None = None,
    ) -> None:
        super().__init__()
        self.path, self.map_location, self.autoencoder_path = path, map_location, autoencoder_path
        self.model = None if model is None else checked_model(model)
        self._generator: LabelToImageGenerator | None = None

    @property
    def generator(self) -> LabelToImageGenerator:
        """The loaded generator (`load_generator`, in eval mode)."""
        if self._generator is None:
            self._generator = load_generator(self.path, self.map_location, self.autoencoder_path, self.model).eval()
        return self._generator

    def sample(self, cond_map: Tensor, **kwargs: Any) -> tuple[Tensor, int]:
        """`LabelToImageGenerator.sample` of the loaded generator."""
        return self.generator.sample(cond_map, **kwargs)
