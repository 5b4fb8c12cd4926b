"""Realism, diversity and privacy of generated images, without downloaded weights.

FID (Heusel et al. 2017) compares Inception-v3 features; nothing may be fetched at run time here, so the features come
from a network trained on real echoes in this project: the penultimate layer of the real-trained view classifier
(echo_view_classification; MONAI's `ResNet` or `EfficientNetBN`), read by a forward pre-hook on its final linear
layer (`fc` / `_fc`): the globally pooled, flattened activations that the classifier's decision is made from.

- `frechet_distance`: MONAI's `FIDMetric` on those features (Frechet distance of two Gaussians fitted to them).
- `mean_feature_mmd`: MONAI's `MMDMetric` on the same features: the unbiased MMD^2 of Gretton et al. 2012 (Eq. 3)
  with the linear kernel, i.e. the squared distance between the two mean feature vectors without the self-similarity
  bias; it sees a shift of the mean, not a change of spread (which the Frechet distance also sees).
- `split_half_realism`: both figures between equally sized halves of the patients, the real images of one half
  against the other images (generated from the maps, blurred, or the real ones themselves) of the other half,
  averaged over random splits: the Frechet distance and the MMD estimate both depend on the sample size, so real
  against real, real against generated and real against blurred are only comparable when measured this way; the
  spread over the splits is the figure's own noise.
- `two_sample_accuracy`: the classifier two-sample test (Lopez-Paz & Oquab 2017): a small CNN trained to tell real
  training images from other ones, scored on held-out ones; 0.5 when the two cannot be told apart, 1 when always.
  It does not rely on a feature space trained for another task (the view classifier's features are built to ignore
  what does not tell the views apart, such as speckle texture).
- `intra_map_ms_ssim`: diversity, the mean MS-SSIM (Wang et al. 2003; MONAI's `MultiScaleSSIMMetric`) between images
  generated from one label map with different seeds: 1 for identical images, lower for more diverse ones.
- `privacy`: each synthetic image's distance to its nearest training image in the feature space, against the same
  distance for real held-out images; the copy rate is the share of synthetic images closer to a training image than
  the 5th percentile of the held-out distances (the memorisation check of EchoNet-Synthetic, Reynaud et al. 2024, and
  EchoFlow, Reynaud et al. 2025). `PrivacyFilter` applies that threshold to images as they are generated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.metrics import FIDMetric, MMDMetric, MultiScaleSSIMMetric
from monai.networks.nets import ResNet
from torch import Tensor, nn

from echodiff.bundle import load_bundle_network
from echodiff.data.camus_input import load_camus_images
from echodiff.errors import ConfigValueError, ShapeMismatchError

__all__ = [
    "DIVERSITY_MS_SSIM",
    "FeatureSpace",
    "Privacy",
    "PrivacyFilter",
    "camus_privacy_filter",
    "frechet_distance",
    "intra_map_ms_ssim",
    "mean_feature_mmd",
    "nearest_distances",
    "privacy",
    "split_half_realism",
    "two_sample_accuracy",
]

# MS-SSIM at 64 px: MONAI's defaults (5 scales, kernel 11) need images of at least 176 px; 3 scales (64, 32, 16 px)
# with a 7-pixel Gaussian (sigma 1.5) fit 28 px and up, weighted as Wang et al.'s first three scales, renormalised.
_WANG_WEIGHTS = (0.0448, 0.2856, 0.3001)
DIVERSITY_MS_SSIM = {"kernel_size": 7, "kernel_sigma": 1.5,
                     "weights": tuple(w / sum(_WANG_WEIGHTS) for w in _WANG_WEIGHTS)}  # fmt: skip


@dataclass(frozen=True)
class FeatureSpace:
    """Images (N, 1, H, W) in [0, 1] -> (N, D) penultimate-layer features of a classifier `network` (the input of its
    final linear layer, `fc` of MONAI's ResNet or `_fc` of EfficientNetBN, caught by a forward pre-hook), after an
    area resize to the classifier's input `image_size` (as `LoadResizedCAMUSd` resizes real frames; None keeps it)."""

    network: nn.Module
    image_size: Sequence[int] | None = None
    batch_size: int = 64

    @classmethod
    def from_view_classifier(cls, ckpt_path: str | Path, image_size: Sequence[int],
                             overrides: Mapping[str, Any] | None = None,
                             device: str | torch.device = "cpu") -> FeatureSpace:  # fmt: skip
        """The feature space of a real-trained echo_view_classification checkpoint, built from that bundle's config
        (`overrides`, e.g. an EfficientNet `network_def`) with its input `image_size`, on `device`."""
        size = list(image_size)
        network = load_bundle_network("echo_view_classification", ckpt_path, {**(overrides or {}), "image_size": size},
                                      map_location=device)  # fmt: skip
        return cls(network.to(device), size)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        layer = _final_linear(self.network)
        device = next(self.network.parameters()).device
        caught: list[Tensor] = []
        hook = layer.register_forward_pre_hook(lambda _, inputs: caught.append(inputs[0].flatten(1).float().cpu()))
        self.network.eval()
        try:
            for start in range(0, len(images), self.batch_size):
                batch = images[start : start + self.batch_size].float().to(device)
                if self.image_size is not None:
                    batch = F.interpolate(batch, size=tuple(self.image_size), mode="area")
                self.network(batch)
        finally:
            hook.remove()
        return torch.cat(caught)


def _final_linear(network: nn.Module) -> nn.Linear:
    for name in ("fc", "_fc"):  # MONAI ResNet, EfficientNetBN
        layer = getattr(network, name, None)
        if isinstance(layer, nn.Linear):
            return layer
    raise ConfigValueError(
        f"network {type(network).__name__} has no final linear layer `fc` or `_fc`; expected a MONAI ResNet or "
        "EfficientNetBN classifier (the view classifier's network_def)"
    )


def frechet_distance(real_features: Tensor, fake_features: Tensor) -> float:
    """Frechet distance between Gaussians fitted to two (N, D) feature sets (MONAI `FIDMetric`; Heusel et al. 2017,
    Eq. 6). Biased upward at small N: compare figures computed on sets of the same sizes."""
    _check_sets(real_features=real_features, fake_features=fake_features)
    return float(FIDMetric()(fake_features, real_features))


def mean_feature_mmd(real_features: Tensor, fake_features: Tensor) -> float:
    """Unbiased linear-kernel MMD^2 between two (N, D) feature sets (MONAI `MMDMetric`; Gretton et al. 2012, Eq. 3):
    the squared distance of the mean features. `MMDMetric` takes sets of one size: the first min(N_real, N_fake)
    of each."""
    _check_sets(real_features=real_features, fake_features=fake_features)
    n = min(len(real_features), len(fake_features))
    return float(MMDMetric()(real_features[:n].double(), fake_features[:n].double()))


def split_half_realism(real_features: Tensor, other_features: Tensor, groups: Sequence[str], splits: int = 10,
                       seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """`frechet_distance` and `mean_feature_mmd` on equal halves: `real_features` (N, D) and `other_features` (N, D),
    row i of both from the same image or map, whose patient is `groups[i]`. For each of `splits` random halves A / B
    of the patients: the mean of D(real_A, other_B) and D(real_B, other_A), so no image meets its own counterpart and
    every figure (real against real, generated or blurred) is measured on the same sample sizes. Returns the means
    over the splits (`fd`, `mmd`), the per-split values (`fd_splits`, `mmd_splits`) and the half sizes."""
    _check_sets(real_features=real_features, other_features=other_features)
    if len(real_features) != len(other_features) or len(groups) != len(real_features):
        raise ShapeMismatchError(f"{len(real_features)} real, {len(other_features)} other feature rows and "
                                 f"{len(groups)} groups; expected one of each per image")  # fmt: skip
    patients = list(dict.fromkeys(groups))
    if len(patients) < 4:
        raise ShapeMismatchError(f"{len(patients)} patients; expected at least 4 to split into halves")
    rng = np.random.default_rng(seed)
    fd, mmd, sizes = [], [], []
    for _ in range(splits):
        first = set(rng.permutation(patients)[: len(patients) // 2].tolist())
        in_a = torch.as_tensor([g in first for g in groups])
        pairs = ((real_features[in_a], other_features[~in_a]), (real_features[~in_a], other_features[in_a]))
        fd.append(float(np.mean([frechet_distance(r, o) for r, o in pairs])))
        mmd.append(float(np.mean([mean_feature_mmd(r, o) for r, o in pairs])))
        sizes.append([int(in_a.sum()), int((~in_a).sum())])
    return {"fd": float(np.mean(fd)), "mmd": float(np.mean(mmd)), "fd_splits": fd, "mmd_splits": mmd,
            "half_sizes": sizes[0], "splits": splits}  # fmt: skip


def two_sample_accuracy(train_real: Tensor, train_other: Tensor, test_real: Tensor, test_other: Tensor,
                        steps: int = 200, batch_size: int = 32, seed: int = 0,
                        device: str | torch.device = "cpu") -> float:  # fmt: skip
    """Classifier two-sample test (Lopez-Paz & Oquab 2017, Sec. 3): a small MONAI `ResNet` (one basic block per stage,
    16-128 channels) trained for `steps` AdamW steps (cosine learning rate from 1e-3, balanced batches, random
    horizontal flips) to tell `train_real` from `train_other` (N, 1, H, W) images, then its balanced accuracy on the
    held-out `test_real` / `test_other`: 0.5 when the sets cannot be told apart, 1 when every image is."""
    for name, images in {"train_real": train_real, "train_other": train_other, "test_real": test_real,
                         "test_other": test_other}.items():  # fmt: skip
        if images.ndim != 4 or images.shape[1] != 1 or len(images) == 0:
            raise ShapeMismatchError(f"{name} has shape {tuple(images.shape)}; expected (N >= 1, 1, H, W) images")
    torch.manual_seed(seed)
    net = ResNet("basic", (1, 1, 1, 1), (16, 32, 64, 128), spatial_dims=2, n_input_channels=1, num_classes=1).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    rng = torch.Generator().manual_seed(seed)
    half = max(1, batch_size // 2)
    target = torch.cat([torch.zeros(half), torch.ones(half)]).to(device)
    net.train()
    for _ in range(steps):
        batch = torch.cat([train_real[torch.randint(len(train_real), (half,), generator=rng)],
                           train_other[torch.randint(len(train_other), (half,), generator=rng)]]).float().to(device)  # fmt: skip
        if torch.rand(1, generator=rng) < 0.5:
            batch = batch.flip(-1)
        loss = F.binary_cross_entropy_with_logits(net(batch).squeeze(1), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    net.eval()
    with torch.no_grad():
        def other_share(images: Tensor) -> float:
            logits = torch.cat([net(images[i : i + 64].float().to(device)).squeeze(1).cpu()
                                for i in range(0, len(images), 64)])  # fmt: skip
            return float((logits > 0).double().mean())

        return 0.5 * ((1.0 - other_share(test_real)) + other_share(test_other))


def intra_map_ms_ssim(images: Tensor) -> float:
    """Mean MS-SSIM (`DIVERSITY_MS_SSIM` settings, data range 1) over every pair of seeds of each map, for images
    (M maps, S seeds, 1, H, W) in [0, 1]: 1 when the seeds give identical images, lower when they differ."""
    if images.ndim != 5 or images.shape[1] < 2:
        raise ShapeMismatchError(
            f"images of shape {tuple(images.shape)}; expected (maps, seeds >= 2, 1, H, W): several seeds per map"
        )
    first, second = torch.triu_indices(images.shape[1], images.shape[1], offset=1)
    metric = MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0, **DIVERSITY_MS_SSIM)
    try:
        metric(images[:, first].flatten(0, 1).float(), images[:, second].flatten(0, 1).float())
    except ValueError as err:  # MONAI's size check
        raise ShapeMismatchError(f"images of {images.shape[-2]} x {images.shape[-1]} px are too small: {err}") from err
    return float(metric.aggregate())


def nearest_distances(features: Tensor, reference_features: Tensor) -> Tensor:
    """(N,) Euclidean distance from each of `features` (N, D) to its nearest one in `reference_features` (M, D)."""
    _check_sets(1, features=features, reference_features=reference_features)
    return torch.cdist(features.double(), reference_features.double()).min(dim=1).values


@dataclass(frozen=True)
class Privacy:
    """Nearest-training-image distances of synthetic and held-out real images, the copy threshold (a percentile of
    the held-out distances) and the copy rate (share of synthetic distances below it)."""

    synthetic_distances: Tensor
    heldout_distances: Tensor
    threshold: float
    copy_rate: float


def privacy(synthetic_features: Tensor, training_features: Tensor, heldout_features: Tensor,
            percentile: float = 5.0) -> Privacy:  # fmt: skip
    """Memorisation check of EchoNet-Synthetic / EchoFlow (Reynaud et al. 2024, 2025) in a feature space: a synthetic
    image closer to a training image than `percentile` % of real held-out images (never trained on) are is a copy."""
    threshold, heldout = _copy_threshold(training_features, heldout_features, percentile)
    synthetic = nearest_distances(synthetic_features, training_features)
    return Privacy(synthetic, heldout, threshold, float((synthetic < threshold).double().mean()))


def _copy_threshold(training_features: Tensor, heldout_features: Tensor, percentile: float) -> tuple[float, Tensor]:
    if not 0 < percentile < 100:
        raise ConfigValueError(f"percentile={percentile}; expected 0 < percentile < 100")
    heldout = nearest_distances(heldout_features, training_features)
    return float(torch.quantile(heldout, percentile / 100)), heldout


@dataclass(frozen=True)
class PrivacyFilter:
    """Keeps a generated image only when its nearest training image (in `features`) is at least `threshold` away,
    the `percentile`-th percentile of the held-out real images' distances (`privacy`), computed once by `fit`."""

    features: Callable[[Tensor], Tensor]
    training_features: Tensor
    threshold: float
    percentile: float

    @classmethod
    def fit(cls, features: Callable[[Tensor], Tensor], training_images: Tensor, heldout_images: Tensor,
            percentile: float = 5.0) -> PrivacyFilter:  # fmt: skip
        training = features(training_images)
        threshold, _ = _copy_threshold(training, features(heldout_images), percentile)
        return cls(features, training, threshold, percentile)

    def distances(self, images: Tensor) -> Tensor:
        """(N,) distance of each image to its nearest training image; below `threshold` means drop it."""
        return nearest_distances(self.features(images), self.training_features)


def camus_privacy_filter(classifier_path: str | Path, dataset_dir: str | Path, image_size: int,
                         training_split: str = "training", heldout_split: str = "testing", percentile: float = 5.0,
                         device: str | torch.device = "cpu") -> tuple[PrivacyFilter, dict[str, Any]]:  # fmt: skip
    """`PrivacyFilter` in the feature space of the view classifier `classifier_path` (input `image_size` px square),
    from the real images of `training_split` (the generator's training images) and `heldout_split` (never trained
    on) of a CAMUS-layout `dataset_dir`, and what it was built from (for the synthesis settings)."""
    size = [image_size, image_size]
    features = FeatureSpace.from_view_classifier(classifier_path, size, device=device)
    training, heldout = (load_camus_images(dataset_dir, split, size) for split in (training_split, heldout_split))
    info = {"classifier": str(Path(classifier_path).resolve()), "dataset_dir": str(Path(dataset_dir).resolve()),
            "image_size": size, "training_split": training_split, "heldout_split": heldout_split}
    return PrivacyFilter.fit(features, training, heldout, percentile), info


def _check_sets(minimum: int = 2, **sets: Tensor) -> None:
    """Each named set is (N >= minimum, D), all with the same D."""
    for name, features in sets.items():
        if features.ndim != 2 or len(features) < minimum:
            raise ShapeMismatchError(
                f"{name} has shape {tuple(features.shape)}; expected (N, D) features of at least {minimum} images"
            )
    widths = {name: features.shape[1] for name, features in sets.items()}
    if len(set(widths.values())) > 1:
        raise ShapeMismatchError(f"feature widths differ ({widths}); expected features of one network")
