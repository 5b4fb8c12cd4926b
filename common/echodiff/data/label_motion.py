"""In-between label maps of a cardiac cycle from a patient's ED and ES maps, by a smooth deformation (docs/methods.md,
section 3, "Synthetic cine clips").

A stationary velocity field v is fitted so that the ED map warped by exp(v) matches the ES map: v lives on a coarse
grid of `control_points` x `control_points` (bicubically upsampled, so smooth by construction), exp(v) is MONAI's
scaling and squaring (`DVF2DDF`), the warp MONAI's `Warp`; the loss is the mean squared difference of the one-hot maps
plus `smoothness` x MONAI's `BendingEnergyLoss`. The map at cardiac phase p in [0, 1] (0 = ED, 1 = ES) is the ED map
warped by exp(p v): a diffeomorphic path, identity at ED, whose structures move and shrink continuously instead of
cross-fading. The phase over a cycle ED -> ES -> ED is a half cosine up over systole and down over diastole.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import BendingEnergyLoss
from monai.networks.blocks import DVF2DDF, Warp

from echodiff.errors import ConfigValueError, ShapeMismatchError

from .camus import CAMUS_LABELS

__all__ = ["SYSTOLE_FRACTION", "cardiac_phase", "fit_velocity", "label_cycle", "warp_labels"]

SYSTOLE_FRACTION = 1 / 3  # systole lasts about a third of the cardiac cycle at rest (Guyton & Hall, ch. 9)


def _one_hot(labels: torch.Tensor) -> torch.Tensor:
    return F.one_hot(labels.long(), len(CAMUS_LABELS)).permute(2, 0, 1)[None].float()


def fit_velocity(
    ed_labels: np.ndarray | torch.Tensor, es_labels: np.ndarray | torch.Tensor, control_points: int = 8,
    iterations: int = 100, smoothness: float = 0.1, learning_rate: float = 0.5,
) -> tuple[torch.Tensor, float]:  # fmt: skip
    """Velocity field (1, 2, H, W) in pixels taking the ED label map to the ES one (module docstring), and the mean
    Dice over the labels 1..3 present between the warped ED map and the ES map (how well the fit reached ES)."""
    ed, es = torch.as_tensor(np.asarray(ed_labels)), torch.as_tensor(np.asarray(es_labels))
    if ed.shape != es.shape or ed.ndim != 2:
        raise ShapeMismatchError(f"ED labels {tuple(ed.shape)} and ES labels {tuple(es.shape)}; expected the same (H, W)")
    source, target = _one_hot(ed), _one_hot(es)
    coarse = torch.zeros(1, 2, control_points, control_points, requires_grad=True)
    integrate, warp, bending = DVF2DDF(num_steps=7), Warp(mode="bilinear", padding_mode="border"), BendingEnergyLoss()
    optimizer = torch.optim.Adam([coarse], lr=learning_rate)
    with torch.enable_grad():
        for _ in range(iterations):
            optimizer.zero_grad()
            ddf = integrate(F.interpolate(coarse, size=ed.shape, mode="bicubic", align_corners=True))
            loss = F.mse_loss(warp(source, ddf), target) + smoothness * bending(ddf)
            loss.backward()
            optimizer.step()
    velocity = F.interpolate(coarse.detach(), size=ed.shape, mode="bicubic", align_corners=True)
    reached = warp_labels(ed, velocity, 1.0)
    present = [k for k in (1, 2, 3) if (es == k).any() or (ed == k).any()]
    dice = [2 * ((reached == k) & (es == k)).sum().item() / ((reached == k).sum() + (es == k).sum()).item()
            for k in present]  # fmt: skip
    return velocity, float(np.mean(dice))


@torch.no_grad()
def warp_labels(labels: np.ndarray | torch.Tensor, velocity: torch.Tensor, phase: float) -> torch.Tensor:
    """The label map warped by exp(phase * velocity): soft one-hot warp, then the most likely label per pixel."""
    warped = Warp(mode="bilinear", padding_mode="border")(_one_hot(torch.as_tensor(np.asarray(labels))),
                                                            DVF2DDF(num_steps=7)(phase * velocity))  # fmt: skip
    return warped[0].argmax(0).to(torch.uint8)


def cardiac_phase(n_frames: int, systole_frames: int) -> np.ndarray:
    """Phase p[t] in [0, 1] of a cycle of `n_frames` starting at ED: (1 - cos(pi t / S)) / 2 up to ES at t = S
    (`systole_frames`), then (1 + cos(pi (t - S) / (n_frames - S))) / 2 back towards ED (the next cycle's frame 0)."""
    if not 0 < systole_frames < n_frames:
        raise ConfigValueError(f"systole_frames={systole_frames}; expected 1..{n_frames - 1} for a {n_frames}-frame cycle")
    t = np.arange(n_frames, dtype=np.float64)
    up = (1 - np.cos(np.pi * t / systole_frames)) / 2
    down = (1 + np.cos(np.pi * (t - systole_frames) / (n_frames - systole_frames))) / 2
    return np.where(t <= systole_frames, up, down)


def label_cycle(
    ed_labels: np.ndarray | torch.Tensor, es_labels: np.ndarray | torch.Tensor, n_frames: int, systole_frames: int,
    **fit_kwargs: float,
) -> tuple[torch.Tensor, float]:  # fmt: skip
    """Label maps (T, H, W) uint8 of one cycle ED -> ES -> ED (`cardiac_phase`), and the fit's Dice at ES."""
    velocity, dice = fit_velocity(ed_labels, es_labels, **fit_kwargs)
    phases = cardiac_phase(n_frames, systole_frames)
    return torch.stack([warp_labels(ed_labels, velocity, float(p)) for p in phases]), dice
