"""Training clips for the student: frames of a source with the teacher's soft masks (Petit et al. 2024, "EchoDFKD",
section 3: clips of `clip_length` frames, targets = teacher probabilities)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from monai.transforms import Randomizable
from torch.utils.data import Dataset
from tqdm import tqdm

from echodiff.errors import ConfigValueError, ShapeMismatchError

from .sources import load_frames
from .targets import read_target

__all__ = ["DistillationClips"]


class DistillationClips(Dataset, Randomizable):
    """Items {"image": (1, L, H, W) float32 in [0, 1], "label": (C, L, H, W) float32 teacher probabilities} with
    L = `clip_length`: a random window of each source when `random_window`, else its first window (validation).

    Frames and targets are read on first use (the targets may be produced after the dataset is built) and kept in
    memory as uint8 (a 64 px frame with 4 classes: 20 kB). A source shorter than `clip_length` is refused: the
    student's window must fit in every clip.
    """

    def __init__(
        self,
        sources: Sequence[dict],
        targets_dir: str | os.PathLike,
        image_size: Sequence[int],
        clip_length: int = 1,
        random_window: bool = True,
        progress: bool = False,
    ) -> None:
        if int(clip_length) < 1:
            raise ConfigValueError(f"clip_length={clip_length}; expected at least 1 frame")
        self.sources, self.targets_dir, self.image_size = list(sources), targets_dir, list(image_size)
        self.clip_length, self.random_window, self.progress = int(clip_length), random_window, progress
        self._clips: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # read on first use: targets come later
        self.set_random_state(seed=0)

    @property
    def clips(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(frames, targets) of every source, uint8, read once."""
        if self._clips is None:
            self._clips = [self._read(source) for source in tqdm(
                self.sources, desc="loading clips", unit="source", disable=not self.progress, dynamic_ncols=True)]
        return self._clips

    def _read(self, source: dict) -> tuple[torch.Tensor, torch.Tensor]:
        frames = load_frames(source, self.image_size)
        if len(frames) < self.clip_length:
            raise ShapeMismatchError(
                f"{source['path']} has {len(frames)} frame(s), fewer than the student's window clip_length="
                f"{self.clip_length}; expected clips of at least clip_length frames (lower --clip_length)"
            )
        target = torch.from_numpy(read_target(self.targets_dir, source, len(frames), self.image_size))
        return (frames * 255).round().to(torch.uint8), target

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict:
        frames, target = self.clips[index]
        last = len(frames) - self.clip_length
        start = int(self.R.randint(0, last + 1)) if self.random_window and last > 0 else 0
        window = slice(start, start + self.clip_length)
        return {"image": frames[window][None].float() / 255.0,
                "label": target[window].permute(1, 0, 2, 3).float() / 255.0}  # fmt: skip

    def randomize(self, data: object = None) -> None:  # windows are drawn in __getitem__
        return None

