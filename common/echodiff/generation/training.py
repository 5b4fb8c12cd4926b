"""Training pieces for MONAI's SupervisedTrainer / SupervisedEvaluator: `iteration_update` steps and checkpoint writers.

The two stages of Stojanovski et al. 2024: the Gamma-VAE (reconstruction + KL + latent terms, `GammaVAELoss`), then the
denoiser of a `LabelToImageGenerator` (`training_loss`). MONAI's default iteration computes loss(pred, target) from one
network output, which fits neither the VAE's four outputs nor the EDM loss (it draws sigma and weights per sample), so
each stage gets its own step. Batches are dicts with "image" (B, 1, H, W) in [0, 1] and "cond" (B, 1, H, W), the
condition map 0..4 of `SectorConditionMapd` (sector = cond > 0), and for the diffusion step "view", the view of each
frame ("2CH" / "4CH", from `list_camus`), which a view-conditioned generator needs. The network call goes through `engine.inferer`
(SimpleInferer: `network(image, ...)`), so a DistributedDataParallel network synchronises gradients. The steps fire
MONAI's `IterationEvents` like its own iteration, so outputs are decollated and handlers see them as usual.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.engines import Evaluator
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys
from monai.utils import convert_to_tensor
from torch import Tensor, nn

from echodiff.engines.checkpoints import BestModelSaver
from echodiff.generation.checkpoints import save_autoencoder, save_generator
from echodiff.networks import unwrap

__all__ = [
    "AutoencoderEvalStep",
    "AutoencoderSaver",
    "BestAutoencoderSaver",
    "AutoencoderTrainStep",
    "DiffusionTrainStep",
    "GeneratorSaver",
]


def _autocast(engine: Engine) -> contextlib.AbstractContextManager:
    """bf16 autocast when the engine runs with `amp` (the configs' `use_amp`: on CUDA by default; on a CPU with
    AVX-512 BF16 or AMX where `scripts/benchmark_precision.py` shows it faster), float32 otherwise."""
    device = torch.device(engine.state.device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(engine.amp))


def _inputs(engine: Engine, batchdata: Mapping, image_key: str, cond_key: str) -> tuple[Tensor, Tensor]:
    """(images float32, condition maps) of a batch, on the engine's device, without MONAI metadata."""
    device = engine.state.device
    images = convert_to_tensor(batchdata[image_key], device=device, dtype=torch.float32, track_meta=False)
    return images, convert_to_tensor(batchdata[cond_key], device=device, track_meta=False)


def _backward_and_step(engine: Engine, loss: Tensor, max_grad_norm: float | None = None) -> dict:
    """Store the loss, backpropagate, clip the gradient norm to `max_grad_norm` (None: no clipping) and step the
    optimiser, firing MONAI's iteration events as its own iteration does (MODEL_COMPLETED decollates the output and
    runs the postprocessing); returns `engine.state.output`."""
    engine.state.output[Keys.LOSS] = loss
    engine.fire_event(IterationEvents.LOSS_COMPLETED)
    loss.backward()
    engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
    if max_grad_norm is not None:
        engine.state.output["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(engine.network.parameters(), max_grad_norm))
    engine.optimizer.step()
    engine.fire_event(IterationEvents.MODEL_COMPLETED)
    return engine.state.output


class AutoencoderTrainStep:
    """`iteration_update` of a SupervisedTrainer for the Gamma-VAE (Stojanovski et al. 2024).

    The trainer's `loss_function` is a `GammaVAELoss`; its warm-up counts trainer epochs from 0 (epoch 1 -> 0).
    Output: {"image", "pred": reconstruction, "loss", "loss_<term>" for each weighted term}, decollated by MONAI.
    `max_grad_norm` clips the gradient norm before each step (None: no clipping): the Gamma reparameterised sample
    gives rare gradient spikes (a norm of 47 against a typical 3 was measured at the first step); with one latent channel
    at 64 px and no clipping the encoder then hardly moved again (weights within 0.007 of their start after 450 steps),
    with clipping at 1 it trained (docs/study, recipe row 17).
    """

    def __init__(self, image_key: str = "image", cond_key: str = "cond", max_grad_norm: float | None = None) -> None:
        self.image_key, self.cond_key, self.max_grad_norm = image_key, cond_key, max_grad_norm

    def __call__(self, engine: Engine, batchdata: Mapping) -> dict:
        images, cond = _inputs(engine, batchdata, self.image_key, self.cond_key)
        sector = (cond > 0).float()
        engine.state.output = {Keys.IMAGE: images}
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with _autocast(engine):
            recon, z, concentration, rate = engine.inferer(images, engine.network, sector)
        engine.state.output[Keys.PRED] = recon.float()
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        latent_mask = unwrap(engine.network).latent_mask(sector)
        loss, terms = engine.loss_function(
            images, recon.float(), z, concentration, rate, latent_mask, epoch=engine.state.epoch - 1
        )
        engine.state.output.update({f"loss_{name}": value for name, value in terms.items()})
        return _backward_and_step(engine, loss, self.max_grad_norm)


class AutoencoderEvalStep:
    """`iteration_update` of a SupervisedEvaluator for the Gamma-VAE: the posterior-mean reconstruction (eval mode).

    Output: {"image", "label": the image (the reconstruction target, for MONAI's regression metrics), "pred"}.
    """

    def __init__(self, image_key: str = "image", cond_key: str = "cond") -> None:
        self.image_key, self.cond_key = image_key, cond_key

    def __call__(self, engine: Engine, batchdata: Mapping) -> dict:
        images, cond = _inputs(engine, batchdata, self.image_key, self.cond_key)
        engine.state.output = {Keys.IMAGE: images, Keys.LABEL: images}
        engine.network.eval()
        with torch.no_grad(), _autocast(engine):
            engine.state.output[Keys.PRED] = engine.inferer(images, engine.network, (cond > 0).float())[0].float()
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output


class DiffusionTrainStep:
    """`iteration_update` of a SupervisedTrainer for a `LabelToImageGenerator`: one step on its `training_loss`
    (called as the network's forward), with the batch's `view_key` as its `views` when the batch has that key.
    Output: {"image", "label": the condition map, "loss"}."""

    def __init__(self, image_key: str = "image", cond_key: str = "cond", view_key: str = "view") -> None:
        self.image_key, self.cond_key, self.view_key = image_key, cond_key, view_key

    def __call__(self, engine: Engine, batchdata: Mapping) -> dict:
        images, cond = _inputs(engine, batchdata, self.image_key, self.cond_key)
        engine.state.output = {Keys.IMAGE: images, Keys.LABEL: cond}
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with _autocast(engine):
            loss = engine.inferer(images, engine.network, cond, views=batchdata.get(self.view_key))
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        return _backward_and_step(engine, loss)


class AutoencoderSaver:
    """Ignite handler writing the trainer's Gamma-VAE, the "last" weights, after every epoch with
    `save_autoencoder(path, network, build_kwargs)` ({"epoch": trainer epoch} in the file)."""

    def __init__(self, path: str | Path, build_kwargs: dict) -> None:
        self.path, self.build_kwargs = path, build_kwargs

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        save_autoencoder(self.path, unwrap(engine.network), self.build_kwargs, {"epoch": engine.state.epoch})


class BestAutoencoderSaver(BestModelSaver):
    """`BestModelSaver` for the Gamma-VAE: the best validation's weights as a `save_autoencoder` file, with the epoch
    and the key metric in it."""

    def __init__(self, evaluator: Evaluator, path: str | Path, network: nn.Module, build_kwargs: dict) -> None:
        super().__init__(evaluator, path, network)
        self.build_kwargs = build_kwargs

    def save(self, trainer: Engine) -> None:
        state = self.evaluator.state
        save_autoencoder(self.path, unwrap(self.network), self.build_kwargs,
                         {"epoch": trainer.state.epoch, state.key_metric_name: float(state.best_metric)})


class GeneratorSaver:
    """Ignite handler writing the trainer's generator with `save_generator(path, ...)` every `interval` epochs and
    when training completes ({"epoch": trainer epoch} in the file). `network` (default: the trainer's) is what gets
    written, e.g. the generator with the EMA denoiser (`with_denoiser`), as EDM samples from the EMA weights."""

    def __init__(self, path: str | Path, interval: int = 1, network: nn.Module | None = None) -> None:
        self.path, self.interval, self.network = path, interval, network
        self.saved_epoch = -1

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if engine.state.epoch != self.saved_epoch:
            network = self.network if self.network is not None else engine.network
            save_generator(self.path, unwrap(network), {"epoch": engine.state.epoch, "iteration": engine.state.iteration})
            self.saved_epoch = engine.state.epoch
