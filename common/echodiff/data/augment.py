"""Label-map augmentation for dataset synthesis (Stojanovski et al. 2024; docs/methods.md section 4): random affine, then elastic deformation.

Defaults follow the generator paper: rotation +-5 degrees, translation <= 5 % of the size, scale 0.8-1.05,
shear 5 degrees, then an elastic deformation from a 10 x 10 grid of control points with displacements of at
most 30 px at 256 px (scaled with the frame size); nearest-neighbour sampling, zeros outside.

"Control points + maximum displacement" is TorchIO's `RandomElasticDeformation` model: each control point moves
uniformly within +-max per axis and a cubic B-spline spreads the moves over the image. MONAI's `Rand2DElastic`
draws Gaussian control offsets (no maximum) and `RandGridDistortion` only moves whole grid lines, so the
displacement field is built here: B-spline weights are non-negative and sum to at most 1, so no pixel moves
further than the largest control-point move. The affine and elastic maps are composed into one sampling grid
and resampled once with MONAI's `Resample`, so labels stay integers from the original set.

Augment training label maps only; test label maps are never augmented (a config concern).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.transforms import AffineGrid, Compose, MapTransform, RandomizableTransform, Resample
from monai.transforms.utils import create_grid
from monai.utils import convert_to_dst_type, convert_to_tensor

__all__ = ["RandLabelMapAugmentd", "bspline_displacement", "label_map_augmentation"]


def cubic_bspline(t: np.ndarray) -> np.ndarray:
    """Uniform cubic B-spline kernel B3(t), support |t| < 2, integrating to 1."""
    t = np.abs(t)
    return np.where(t < 1, 2 / 3 - t**2 + t**3 / 2, np.where(t < 2, (2 - t) ** 3 / 6, 0.0))


def bspline_displacement(coefficients: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Dense (2, H, W) displacement field from (2, n, n) control-point moves spread evenly over an (H, W) frame."""
    n = coefficients.shape[-1]
    weights = [
        cubic_bspline(np.arange(size)[:, None] / max(size - 1, 1) * (n - 1) - np.arange(n)[None, :]) for size in shape
    ]
    return np.einsum("hk,ckl,wl->chw", weights[0], coefficients, weights[1])


class RandLabelMapAugmentd(RandomizableTransform, MapTransform):
    """Random affine followed by a B-spline elastic deformation, applied alike to all `keys` (nearest, zero padding).

    `scale_range` is the zoom of the content (0.8 shrinks the map to 80 %). `max_displacement` is in pixels at
    `reference_size`; a frame of another size gets it scaled per axis. `spatial_size` is the output size
    (None keeps the input size).
    """

    def __init__(
        self,
        keys: Sequence[Hashable] | Hashable = ("label",),
        spatial_size: Sequence[int] | int | None = None,
        prob: float = 1.0,
        rotate_deg: float = 5.0,
        translate_fraction: float = 0.05,
        scale_range: tuple[float, float] = (0.8, 1.05),
        shear_deg: float = 5.0,
        control_points: int = 10,
        max_displacement: float = 30.0,
        reference_size: int = 256,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.spatial_size = (spatial_size, spatial_size) if isinstance(spatial_size, int) else spatial_size
        self.rotate_deg, self.translate_fraction, self.shear_deg = rotate_deg, translate_fraction, shear_deg
        self.scale_range, self.control_points = scale_range, control_points
        self.max_displacement, self.reference_size = max_displacement, reference_size
        self.resample = Resample(mode="nearest", padding_mode="zeros", dtype=np.float32)

    def randomize(self, data: object = None) -> None:
        """Draw whether to augment, the affine parameters and the control-point moves (in units of the maximum)."""
        super().randomize(None)
        self.angle = np.deg2rad(self.R.uniform(-self.rotate_deg, self.rotate_deg))
        self.shear = np.tan(np.deg2rad(self.R.uniform(-self.shear_deg, self.shear_deg, size=2)))
        self.zoom = self.R.uniform(*self.scale_range)
        self.shift = self.R.uniform(-self.translate_fraction, self.translate_fraction, size=2)
        moves = self.R.uniform(-1.0, 1.0, size=(2, self.control_points, self.control_points))
        moves[:, [0, -1], :] = 0.0  # locked borders: the frame edges stay in place
        moves[:, :, [0, -1]] = 0.0
        self.moves = moves

    def sampling_grid(self, shape: Sequence[int]) -> torch.Tensor:
        """Homogeneous (3, H, W) grid of input positions for an (H, W) output, from the drawn parameters."""
        size = np.asarray(shape, dtype=np.float64)
        scale_to_size = (self.max_displacement * size / self.reference_size)[:, None, None]
        displacement = bspline_displacement(self.moves * scale_to_size, shape)
        grid = create_grid(shape, backend="numpy", dtype=np.float32)
        grid[:2] += displacement.astype(np.float32)
        affine = AffineGrid(
            rotate_params=self.angle,
            shear_params=tuple(self.shear),
            translate_params=tuple(self.shift * size),
            scale_params=(1.0 / self.zoom, 1.0 / self.zoom),
        )
        return affine(grid=torch.from_numpy(grid))[0]

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        self.randomize()
        grid = None
        for key in self.key_iterator(d):
            image: NdarrayOrTensor = d[key]
            shape = tuple(self.spatial_size or image.shape[1:])
            if not self._do_transform and tuple(image.shape[1:]) == shape:
                continue
            if grid is None or tuple(grid.shape[1:]) != shape:
                grid = self.sampling_grid(shape) if self._do_transform else torch.from_numpy(create_grid(shape))
            warped = self.resample(convert_to_tensor(image, dtype=torch.float32, track_meta=False), grid)
            d[key] = convert_to_dst_type(warped, image, dtype=image.dtype)[0]
        return d


def label_map_augmentation(
    keys: Sequence[Hashable] | Hashable = ("label",), spatial_size: Sequence[int] | int | None = None, prob: float = 1.0
) -> Compose:
    """The paper's label-map augmentation as a MONAI `Compose` (see `RandLabelMapAugmentd` for every setting)."""
    return Compose([RandLabelMapAugmentd(keys, spatial_size=spatial_size, prob=prob)])
