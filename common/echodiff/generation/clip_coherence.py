"""Synthetic cine clips from a trained generator (`echodiff.generation.clips`) with their temporal coherence measured
against real clips (`scripts/synthesize_clips.py` is its command line).

Timing (frame rate, systole length and its range) comes from the TRAIN videos of the EchoNet-Dynamic folder
`reference_dir`, or from `fps` and `systole_frames` (a number or a [low, high] range) when there is none. Writes
`coherence.json`: `temporal_change` (mean |frame t+1 - frame t| inside the sector) of the synthetic clips (`synthetic`:
start noise shared, or partly renewed per frame with `renewal`), of one clip regenerated with independent noise per
frame (`synthetic_independent_noise`, the ablation of the shared noise), and of the real TRAIN clips of
`reference_dir` (`real`; test videos never tune the clips), all at the generator's size; and `strip.png` (frames and
label maps of the first clip). Running it again with the same arguments resumes.
"""


from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from echodiff.data.conditioning import sector_mask  # noqa: E402
from echodiff.data.echonet import list_echonet_videos, read_video  # noqa: E402
from echodiff.data.label_motion import SYSTOLE_FRACTION  # noqa: E402
from echodiff.errors import as_flag  # noqa: E402
from echodiff.distillation.sources import resize_frames  # noqa: E402
from echodiff.generation.checkpoints import load_generator  # noqa: E402
from echodiff.generation.clips import (  # noqa: E402
    clip_condition_maps,
    echonet_timing,
    generate_frames,
    given_timing,
    synthesize_clips,
    temporal_change,
)
from echodiff.generation.synthesis import generator_fn  # noqa: E402
from echodiff.io import atomic_write, atomic_write_json  # noqa: E402

__all__ = ["COHERENCE_FILE", "synthesize_and_measure_clips"]

COHERENCE_FILE = "coherence.json"

SECTOR_LEVEL = 8 / 255  # above video-compression noise outside the sector


def _sector(frames: torch.Tensor) -> np.ndarray:
    """Sector of a clip (T, H, W) in [0, 1]: hole-filled pixels whose mean over the clip exceeds SECTOR_LEVEL."""
    return sector_mask((frames.mean(0) > SECTOR_LEVEL).numpy())


def _frames(path: Path, size: int) -> torch.Tensor:
    return resize_frames(read_video(path).astype(np.float32) / 255.0, (size, size))


def _coherence_of_videos(videos: list[Path], size: int) -> list[float]:
    """temporal_change of each video, frames area-resized to size x size, inside its `_sector`."""
    return [temporal_change(frames, _sector(frames)) for frames in (_frames(path, size) for path in videos)]


def _independent_noise_change(generate, out_dir: Path, name: str, seed: int) -> float:
    """temporal_change of a clip regenerated from its label maps with a different seed for every frame (the
    ablation of the shared noise), inside the sector of the shared-noise clip."""
    labels = np.load(out_dir / "Labels" / f"{name}.npy")
    sector = torch.as_tensor(_sector(_frames(out_dir / "Videos" / f"{name}.avi", generate.image_size)))
    cond = clip_condition_maps(sector, labels)
    view = json.loads((out_dir / "Labels" / f"{name}.json").read_text())["view"]
    images = generate_frames(generate, cond, [seed + 1 + t for t in range(len(cond))], view)
    return temporal_change(images[:, 0], sector)


def _strip(out_dir: Path, name: str, n_shown: int = 8) -> Path:
    frames = read_video(out_dir / "Videos" / f"{name}.avi")
    labels = np.load(out_dir / "Labels" / f"{name}.npy")
    shown = np.linspace(0, len(frames) - 1, n_shown).round().astype(int)
    figure, axes = plt.subplots(2, n_shown, figsize=(1.5 * n_shown, 3.2))
    for column, t in enumerate(shown):
        axes[0, column].imshow(frames[t], cmap="gray", vmin=0, vmax=255)
        axes[1, column].imshow(labels[t], cmap="viridis", vmin=0, vmax=3, interpolation="nearest")
        axes[0, column].set_title(f"frame {t}", fontsize=7)
        for row in (0, 1):
            axes[row, column].axis("off")
    figure.suptitle(f"synthetic clip {name}: generated frames (shared noise) and their label maps", fontsize=8)
    figure.tight_layout()
    path = out_dir / "strip.png"
    atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=110), suffix=".png")
    plt.close(figure)
    return path


def synthesize_and_measure_clips(
    checkpoint: str,
    source_dir: str,
    out_dir: str,
    reference_dir: str | None = None,
    fps: float = 50.0,
    systole_frames: int | list[int] = 16,
    systole_fraction: float | list[float] = SYSTOLE_FRACTION,
    sampler: str | None = None,
    steps: int | None = None,
    max_clips: int | None = None,
    split: str | list[str] = ("training", "validation"),
    views: str | list[str] = ("4CH", "2CH"),
    k: int = 1,
    augment: bool = False,
    vary_timing: bool = False,
    renewal: float = 0.0,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """`k` clips per patient view of `split` (at most `max_clips` patient views per split; `augment`, `vary_timing`,
    `systole_fraction` and `renewal` as in `synthesize_clips`), then coherence.json and strip.png (module docstring)."""
    generator = load_generator(checkpoint, map_location=device)
    generate = generator_fn(generator, sampler=sampler, steps=steps, device=device)
    timing = (echonet_timing(reference_dir, systole_fraction) if reference_dir is not None
              else given_timing(fps, systole_frames, systole_fraction))  # fmt: skip
    splits = [split] if isinstance(split, str) else list(split)
    summary = synthesize_clips(source_dir, out_dir, generate, timing, splits=splits,
                               views=[views] if isinstance(views, str) else list(views), max_clips=max_clips,
                               seed=seed, progress=progress, k=k, augment=as_flag(augment, "augment"),
                               vary_timing=as_flag(vary_timing, "vary_timing"), renewal=renewal)  # fmt: skip
    out = Path(out_dir)
    synthetic = sorted((out / "Videos").glob("*.avi"))
    coherence = {"synthetic": float(np.mean(_coherence_of_videos(synthetic, generator.image_size))),
                 "synthetic_independent_noise": _independent_noise_change(generate, out, synthetic[0].stem, seed)}
    if reference_dir is not None:
        real = [Path(item["video"]) for item in list_echonet_videos(reference_dir, "TRAIN")]
        coherence["real"] = float(np.mean(_coherence_of_videos(real, generator.image_size)))
    report = {**summary, "timing": timing, "renewal": renewal, "temporal_change": coherence,
              "image_size": generator.image_size,
              "strip": str(_strip(out, synthetic[0].stem))}  # fmt: skip
    atomic_write_json(out / COHERENCE_FILE, report)
    print(json.dumps(report, indent=2))
    return report
