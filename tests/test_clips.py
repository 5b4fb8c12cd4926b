"""echodiff.generation.clips, the levers of the data-free clips: start noise renewed from frame to frame, several
augmented clips per patient view, timing drawn per clip; each off by default, where the clips are today's."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from echodiff.data.camus import list_camus
from echodiff.data.conditioning import camus_labels_of_condition
from echodiff.data.echonet import list_echonet_videos, read_video
from echodiff.data.label_motion import label_cycle
from echodiff.errors import ConfigValueError
from echodiff.generation import build_generator
from echodiff.generation.clips import (
    clip_condition_maps,
    clip_frames,
    generate_frames,
    given_timing,
    renewed_noise,
    synthesize_clips,
    temporal_change,
)
from echodiff.generation.synthesis import generator_fn, source_condition_map

TINY = {"channels": [8, 8], "attention_levels": [False, False], "num_res_blocks": 1, "norm_num_groups": 4,
        "num_head_channels": 8, "spade_intermediate_channels": 4}  # fmt: skip


@pytest.fixture(scope="module")
def generate():
    torch.manual_seed(0)
    return generator_fn(build_generator("edm", 32, network=TINY), sampler="euler", steps=2)


def disc_cycle(n_frames: int = 9, systole: int = 3) -> torch.Tensor:
    """Label maps (T, 32, 32) of a disc LV shrinking from ED to ES and back."""
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    ed = ((yy - 16) ** 2 + (xx - 16) ** 2 < 81).long()
    es = ((yy - 16) ** 2 + (xx - 16) ** 2 < 36).long()
    return label_cycle(ed, es, n_frames, systole)[0]


def first_pair(camus_dir) -> tuple[dict, dict]:
    """The ED and ES items of the first training 4CH patient view (the first clip)."""
    items = list_camus(camus_dir, "training", views=["4CH"])
    patient = items[0]["patient"]
    return tuple(next(i for i in items if i["patient"] == patient and i["phase"] == p) for p in ("ED", "ES"))


def test_renewed_noise_is_unit_gaussian_with_consecutive_frames_correlated_by_sqrt_one_minus_renewal():
    generator = torch.Generator().manual_seed(0)
    first, fresh = torch.randn(1, 1, 64, 64, generator=generator), torch.randn(5, 1, 64, 64, generator=generator)
    assert torch.equal(renewed_noise(first, fresh, 0.0), first.expand(6, -1, -1, -1))  # today: one noise per clip
    assert torch.equal(renewed_noise(first, fresh, 1.0)[1:], fresh)  # a new noise per frame
    noise = renewed_noise(first, fresh, 0.36)
    assert torch.equal(noise[0], first[0]) and noise.std().item() == pytest.approx(1.0, abs=0.03)
    lag_one = [float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]) for a, b in zip(noise, noise[1:])]
    assert np.mean(lag_one) == pytest.approx(0.8, abs=0.03)
    with pytest.raises(ConfigValueError, match=r"renewal=1.5; expected .* in \[0, 1\]"):
        renewed_noise(first, fresh, 1.5)


def test_renewal_zero_is_todays_clip_and_more_renewal_changes_frames_more(generate):
    cond = clip_condition_maps(torch.ones(32, 32, dtype=torch.bool), disc_cycle())
    today = generate_frames(generate, cond, [7] * len(cond))
    assert torch.equal(clip_frames(generate, cond, 7, renewal=0.0), today)
    # the explicit start-noise path that renewal takes gives today's clip when nothing is renewed
    shared = generate.start_noise(cond[:1], [7]).expand(len(cond), -1, -1, -1)
    torch.testing.assert_close(generate_frames(generate, cond, [7] * len(cond), noise=shared), today)
    sector = torch.ones(32, 32, dtype=torch.bool)
    change = [temporal_change(clip_frames(generate, cond, 7, renewal=a)[:, 0], sector) for a in (0, 0.02, 0.2, 1)]
    assert all(low < high for low, high in zip(change, change[1:])), change


def test_default_clips_are_todays_and_the_levers_make_more_varied_clips(generate, phantom_camus, tmp_path):
    timing = given_timing(50.0, [3, 6], [0.3, 0.45])
    assert (timing["systole_frames"], timing["systole_frames_range"], timing["cycle_frames"]) == (4, [3, 6], 11)
    options = dict(splits=["training"], views=["4CH"], max_clips=1, progress=False)
    default = synthesize_clips(phantom_camus, tmp_path / "default", generate, given_timing(50.0, 3), **options)
    (item,) = list_echonet_videos(tmp_path / "default")
    record = json.loads((tmp_path / "default" / "Labels" / f"{item['filename']}.json").read_text())
    labels = np.load(tmp_path / "default" / "Labels" / f"{item['filename']}.npy")
    assert default["clips"] == 1 and len(labels) == 9 and (record["ed_frame"], record["es_frame"]) == (0, 3)
    sector = source_condition_map(first_pair(phantom_camus)[0], 32)[0][0] > 0
    assert np.array_equal(labels, label_cycle(*(camus_labels_of_condition(source_condition_map(i, 32)[0][0])
                                                for i in first_pair(phantom_camus)), 9, 3)[0].numpy())
    frames = generate_frames(generate, clip_condition_maps(sector, labels), [record["seed"]] * 9, "4CH")[:, 0]
    written = torch.as_tensor(read_video(item["video"]), dtype=torch.float32) / 255
    assert (written - frames).abs().mean() < 0.01  # today's recipe: one seed for every frame (MJPG rounding aside)

    levers = synthesize_clips(phantom_camus, tmp_path / "levers", generate, timing, k=3, augment=True,
                              vary_timing=True, renewal=0.3, **options)  # fmt: skip
    items = list_echonet_videos(tmp_path / "levers")
    assert levers["clips"] == 3 and [i["filename"] for i in items] == [f"{item['filename']}{s}" for s in
                                                                     ("", "_1", "_2")]  # fmt: skip
    records = [json.loads((tmp_path / "levers" / "Labels" / f"{i['filename']}.json").read_text()) for i in items]
    clips = [np.load(tmp_path / "levers" / "Labels" / f"{i['filename']}.npy") for i in items]
    for record, clip, video in zip(records, clips, items):
        assert 3 <= record["systole_frames"] <= 6 and len(clip) == record["cycle_frames"] == video["n_frames"]
        assert 0.25 <= record["systole_frames"] / record["cycle_frames"] <= 0.5  # 0.3..0.45, rounded to frames
        assert (record["es_frame"] - record["ed_frame"]) % len(clip) == record["systole_frames"]
        assert (clip[record["ed_frame"]] == 1).sum() > (clip[record["es_frame"]] == 1).sum()  # ED at ED, wherever
    assert len({r["ed_frame"] for r in records}) > 1 or len({r["cycle_frames"] for r in records}) > 1
    assert not np.array_equal(clips[0][records[0]["ed_frame"]], clips[1][records[1]["ed_frame"]])  # augmented maps
    rows = list(csv.DictReader(open(tmp_path / "levers" / "FileList.csv")))
    assert [int(r["NumberOfFrames"]) for r in rows] == [len(c) for c in clips]
    assert json.loads((tmp_path / "levers" / "clips.json").read_text())["k"] == 3


def test_bad_lever_values_name_the_key():
    with pytest.raises(ConfigValueError, match=r"systole_frames=\[6, 3\]; expected"):
        given_timing(50.0, [6, 3])
    with pytest.raises(ConfigValueError, match=r"systole_fraction=1.2; expected"):
        given_timing(50.0, 16, 1.2)
    with pytest.raises(ConfigValueError, match="k=0; expected"):
        synthesize_clips("unused", "unused", None, given_timing(50.0, 16), k=0)
    sdm = generator_fn(build_generator("sdm", 32, network=TINY, diffusion={"num_train_timesteps": 4}))
    with pytest.raises(ConfigValueError, match="'sdm' starts from its scheduler's prior"):
        sdm.start_noise(torch.zeros(1, 1, 32, 32, dtype=torch.long), [0])
