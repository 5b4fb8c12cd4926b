"""Is a Gamma-VAE latent something a diffusion model can learn? Health figures, their limits, and a validation logger.

The latent generators (EDM-L128, EDM-L64) diffuse the posterior mean z = k / r of the Gamma-VAE mapped by
clamp(2 z - 1, -1, 1) (Stojanovski et al. 2024, Gamma-VAE section). Two failures were measured at CPU scale, and
both look fine in the reconstruction loss alone:

- drift: a channel that nothing ties to the image runs to posterior means far above 1 (1e6 was measured), and the
  mapping clips it flat: `latent_clipped_fraction`, the share of in-sector latent values with z > 1;
- collapse: the encoder's outputs a, b fall where softplus(., beta) passes no gradient (its derivative is
  sigmoid(beta a)), the posterior mean becomes the same tiny number for every image and never recovers:
  `saturated_fraction` (encoder outputs with sigmoid(beta a) < 1 %) and `min_channel_spread`, the smallest
  per-channel spread of z across images (the standard deviation over images at each latent position inside the
  sector, averaged over positions): a dead channel has none.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from torch import Tensor, nn
from torch.utils.data import Dataset

from echodiff.errors import ConfigValueError
from echodiff.generation.fidelity import fixed_condition_maps, label_fidelity
from echodiff.io import atomic_write
from echodiff.networks import GammaVAE, unwrap

__all__ = ["HEALTH_LIMITS", "LatentHealthLogger", "encode_and_reconstruct", "health_figures", "health_problems",
           "latent_health"]

SATURATION_GRADIENT = 0.01  # sigmoid(beta a) below this: the softplus passes less than 1 % of its gradient

# figure -> (direction, limit): what the study requires before it trains latent diffusion on an autoencoder
HEALTH_LIMITS: dict[str, tuple[str, float]] = {
    "latent_clipped_fraction": ("<=", 0.01),
    "min_channel_spread": (">=", 0.02),
    "saturated_fraction": ("<=", 0.5),
}


def _channel_spread(z: Tensor, mask: Tensor) -> list[float]:
    """Per channel: the standard deviation of z across images at each latent position, over the images whose sector
    covers it, averaged over positions covered by at least two images."""
    weight = mask[:, 0]
    count = weight.sum(0)
    spreads = []
    for channel in z.unbind(1):
        mean = (channel * weight).sum(0) / count.clamp(min=1)
        var = ((channel - mean) ** 2 * weight).sum(0) / count.clamp(min=1)
        spreads.append(float(var.sqrt()[count >= 2].mean()) if bool((count >= 2).any()) else 0.0)
    return spreads


@torch.no_grad()
def encode_and_reconstruct(vae: GammaVAE, images: Tensor, sector: Tensor, batch_size: int = 64) -> dict[str, Tensor]:
    """In eval mode, on the CPU: "z" (posterior mean times latent mask), "mask" (latent mask), "recon" (the
    reconstruction in [0, 1], zero outside the sector) and "saturated" (1 where an encoder output passes under 1 % of
    its softplus gradient) of `images` (B, 1, H, W) in [0, 1] with sector masks (B, 1, H, W)."""
    vae = unwrap(vae)
    training = vae.training
    vae.eval()
    device = next(vae.parameters()).device
    out: dict[str, list[Tensor]] = {"z": [], "mask": [], "recon": [], "saturated": []}
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float()
        s = sector[start : start + batch_size].to(device).float()
        pre = vae.encoder(x).float()
        mask = vae.latent_mask(s)
        z = vae.posterior_mean(*vae.posterior(pre)) * mask
        out["saturated"].append((torch.sigmoid(vae.softplus_beta * pre) < SATURATION_GRADIENT).float().cpu())
        out["recon"].append((vae.decode(z) * s).clamp(0, 1).cpu())
        out["z"].append(z.cpu())
        out["mask"].append(mask.cpu())
    vae.train(training)
    return {key: torch.cat(values) for key, values in out.items()}


def health_figures(outputs: dict[str, Tensor], images: Tensor) -> dict:
    """The health figures (module docstring) of `encode_and_reconstruct` outputs for `images`: `psnr` of the
    reconstruction (dB), `latent_clipped_fraction`, `channel_spread` (list), `min_channel_spread`, `channel_mean` (mean
    in-sector z per channel), `saturated_fraction`."""
    z, mask = outputs["z"], outputs["mask"]
    inside = mask.expand_as(z) > 0
    mse = float(F.mse_loss(outputs["recon"], images.cpu().float()))
    spread = _channel_spread(z, mask)
    return {
        "psnr": 10 * math.log10(1.0 / max(mse, 1e-12)),
        "latent_clipped_fraction": float((z[inside] > 1).float().mean()) if bool(inside.any()) else 0.0,
        "channel_spread": spread,
        "min_channel_spread": min(spread),
        "channel_mean": [float(c[mask[:, 0] > 0].mean()) if bool(inside.any()) else 0.0 for c in z.unbind(1)],
        "saturated_fraction": float(outputs["saturated"].mean()),
    }


def latent_health(vae: GammaVAE, images: Tensor, sector: Tensor, batch_size: int = 64) -> dict:
    """`health_figures` of `vae` on `images` (B, 1, H, W) in [0, 1] with sector masks (B, 1, H, W)."""
    return health_figures(encode_and_reconstruct(vae, images, sector, batch_size), images)


def health_problems(health: dict, limits: dict[str, tuple[str, float]] | None = None) -> list[str]:
    """One phrase per figure of `health` outside its limit (`HEALTH_LIMITS`), e.g. "latent_clipped_fraction 0.31 > 0.01"."""
    problems = []
    for name, (direction, limit) in (HEALTH_LIMITS if limits is None else limits).items():
        if name not in health:
            raise ConfigValueError(f"latent health has no figure {name!r}; expected the keys of latent_health()")
        value = float(health[name])
        if (direction == "<=" and value > limit) or (direction == ">=" and value < limit):
            problems.append(f"{name} {value:.4g} {'>' if direction == '<=' else '<'} {limit:g}")
    return problems


class LatentHealthLogger:
    """Trainer handler for the Gamma-VAE: after every `interval` epochs, `latent_health` on `num_images` fixed
    validation images of `dataset` (and, with a real-trained `segmenter`, the label fidelity of their
    reconstructions), appended to the JSON list `output_file` and written to TensorBoard (`tensorboard_dir`, tags
    `latent_health/<figure>`, `latent_health/channel_spread_<c>`, `latent_health/recon_<dice key>`)."""

    def __init__(
        self,
        dataset: Dataset,
        output_file: str | Path,
        tensorboard_dir: str | Path | None = None,
        num_images: int = 64,
        interval: int = 1,
        segmenter: nn.Module | None = None,
        network: nn.Module | None = None,
    ) -> None:
        self.dataset, self.output_file, self.tensorboard_dir = dataset, Path(output_file), tensorboard_dir
        self.num_images, self.interval, self.segmenter, self.network = num_images, interval, segmenter, network
        self._fixed: tuple[Tensor, Tensor] | None = None
        self._writer = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    def __call__(self, engine: Engine) -> None:
        if self._fixed is None:
            self._fixed = fixed_condition_maps(self.dataset, self.num_images)[:2]
        cond, images = self._fixed
        sector = (cond > 0).float()
        vae = unwrap(self.network if self.network is not None else engine.network)
        outputs = encode_and_reconstruct(vae, images, sector)
        health = health_figures(outputs, images)
        row = {"epoch": engine.state.epoch, "iteration": engine.state.iteration, **health, "n_images": len(images)}
        if self.segmenter is not None:
            self.segmenter.to(next(vae.parameters()).device)
            scores = label_fidelity(self.segmenter, outputs["recon"], cond)
            row.update({f"recon_{key}": value for key, value in scores.items()})
        rows = json.loads(self.output_file.read_text()) if self.output_file.is_file() else []
        rows = [r for r in rows if r["epoch"] < row["epoch"]] + [row]
        text = json.dumps(rows, indent=1) + "\n"
        atomic_write(self.output_file, lambda tmp: Path(tmp).write_text(text), suffix=".json")
        problems = health_problems(health)
        engine.logger.info(f"latent health at epoch {row['epoch']}: PSNR {health['psnr']:.1f} dB, clipped "
                           f"{health['latent_clipped_fraction']:.4f}, channel spread "
                           f"{', '.join(f'{s:.3f}' for s in health['channel_spread'])}, saturated "
                           f"{health['saturated_fraction']:.3f}" + (f" ({'; '.join(problems)})" if problems else ""))  # fmt: skip
        if self.tensorboard_dir is not None:
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.tensorboard_dir))
            scalars = {k: v for k, v in row.items() if isinstance(v, float)}
            scalars.update({f"channel_spread_{c}": s for c, s in enumerate(health["channel_spread"])})
            for key, value in scalars.items():
                self._writer.add_scalar(f"latent_health/{key}", value, engine.state.iteration)
            self._writer.flush()
