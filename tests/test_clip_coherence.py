"""echodiff.generation.clip_coherence (scripts/synthesize_clips.py): clips from a generator checkpoint, their temporal
coherence against the independent-noise ablation, and the strip figure."""

from __future__ import annotations

import json

import torch
from echodiff.generation import build_generator, save_generator
from echodiff.generation.clip_coherence import COHERENCE_FILE, synthesize_and_measure_clips
from echodiff.generation.clips import given_timing


def test_clips_from_a_checkpoint_report_shared_noise_more_coherent_than_independent_noise(phantom_camus, tmp_path):
    torch.manual_seed(0)
    generator = build_generator("edm", 32, network={"channels": [8, 8], "attention_levels": [False, False],
                                                    "num_res_blocks": 1, "norm_num_groups": 4, "num_head_channels": 8,
                                                    "spade_intermediate_channels": 4})  # fmt: skip
    checkpoint = save_generator(tmp_path / "generator.pt", generator)
    out = tmp_path / "clips"
    options = dict(sampler="euler", steps=2, systole_frames=3, split="training", views="4CH", max_clips=1,
                   progress=False)  # fmt: skip
    report = synthesize_and_measure_clips(str(checkpoint), str(phantom_camus), str(out), **options)
    assert json.loads((out / COHERENCE_FILE).read_text()) == json.loads(json.dumps(report))
    change = report["temporal_change"]
    assert set(change) == {"synthetic", "synthetic_independent_noise"}  # no reference_dir: no real clips
    assert change["synthetic"] < change["synthetic_independent_noise"] and report["renewal"] == 0.0
    assert report["timing"] == given_timing(50.0, 3) and report["image_size"] == 32
    assert (out / "strip.png").is_file() and report["written"] == 1
    assert synthesize_and_measure_clips(str(checkpoint), str(phantom_camus), str(out), **options)["written"] == 0
