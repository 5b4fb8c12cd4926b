"""Synthetic cine clips in the EchoNet-Dynamic layout from a trained label-to-image generator
(echodiff.generation.clips), with their temporal coherence measured against real clips
(echodiff.generation.clip_coherence).

    python scripts/synthesize_clips.py --checkpoint G.pt --source_dir CAMUS --out_dir CLIPS --reference_dir ECHONET \
        --sampler dpmpp_2m --steps 10 --max_clips 40

Timing (frame rate, systole length and its range) comes from the TRAIN videos of the EchoNet-Dynamic folder
`reference_dir`, or from --fps and --systole_frames (a number or "[low,high]") when there is none. Levers, off by
default: --k (clips per patient view), --augment (label-map augmentation of each clip's ED / ES pair), --vary_timing
(systole length and start phase drawn per clip), --systole_fraction "[low,high]" (drawn per clip), --renewal (start
noise partly renewed per frame, 0..1), --views 4CH. Writes `coherence.json` (mean |frame t+1 - frame t| inside the
sector of the synthetic clips, of clips generated with independent noise per frame, and of the real TRAIN clips, all at
the generator's size) and `strip.png` (frames and label maps of the first clip). Run it again with the same arguments
to resume.
"""

from __future__ import annotations

import fire
from echodiff.errors import run_cli
from echodiff.generation.clip_coherence import synthesize_and_measure_clips

if __name__ == "__main__":
    run_cli(lambda: fire.Fire(synthesize_and_measure_clips))
