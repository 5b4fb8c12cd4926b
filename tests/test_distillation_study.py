"""echodiff.distillation.study (scripts/dfkd_study.py): the teacher and every student scored on EchoNet videos and
CAMUS frames, written as results.json / results.md / the parameters-vs-Dice plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from echodiff.bundle import REPO_BUNDLES
from echodiff.distillation.study import COLUMNS, compare_students
from echodiff.errors import ConfigKeyError
from monai.bundle import ConfigParser

STUDENT = {"k_blocks": 2, "n_layers": 1, "clip_length": 8}


def test_teacher_and_students_are_scored_and_written_with_the_documented_columns(
    phantom_echonet, phantom_camus, dfkd_teacher, tmp_path
):
    parser = ConfigParser()
    parser.read_config(str(REPO_BUNDLES / "echo_dfkd_segmentation" / "configs" / "train.json"))
    parser.update({"dataset_dir": str(phantom_echonet), **STUDENT})
    ckpt = tmp_path / "work" / "students" / "tiny" / "model.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save(parser.get_parsed_content("network_def").state_dict(), ckpt)
    students = tmp_path / "students.json"
    untrained = {"name": "untrained", "dataset_dir": str(phantom_echonet), "targets_dir": str(tmp_path / "targets")}
    students.write_text(json.dumps([{"name": "tiny", "train_data": "phantom clips", "dataset_dir": str(phantom_echonet),
                                     "targets_dir": str(tmp_path / "targets"), "overrides": STUDENT,
                                     "data_free": True}, untrained]))  # fmt: skip
    out = tmp_path / "report"
    options = dict(workdir=str(tmp_path / "work"), out_dir=str(out), teacher_filters=[8, 16, 32], image_size=[32, 32],
                   train=False)  # fmt: skip
    with pytest.raises(ConfigKeyError, match=r"only=\['tinny'\] names no student of .*; expected some of tiny, unt"):
        compare_students(str(students), str(dfkd_teacher), "", "", only="tinny", **options)
    rows = compare_students(str(students), str(dfkd_teacher), str(phantom_echonet), str(phantom_camus), "testing",
                            only=["tiny"], **options)  # fmt: skip (the untrained student is left out)
    assert [(r["student"], r["k"], r["n"]) for r in rows] == [("teacher", None, None), ("tiny", 2, 1)]
    assert [(r["clip_length"], r["data_free"]) for r in rows] == [(1, False), (8, True)]  # its training window
    written = json.loads((out / "results.json").read_text())
    assert [set(COLUMNS) <= set(r) for r in written] == [True, True] and "echonet_videos" not in written[0]
    assert all(r["params"] > 0 and 0 <= r["dice_echonet"] <= 1 for r in written)
    per_video = json.loads((out / "results_per_video.json").read_text())
    assert set(per_video) == {"teacher", "tiny"}
    for row in written:  # the area curve's jitter: the mean of the videos' (those with a curve to measure)
        jitters = [v["area_jitter"] for v in per_video[row["student"]] if np.isfinite(v["area_jitter"])]
        assert row["area_jitter"] == pytest.approx(np.mean(jitters)) if jitters else np.isnan(row["area_jitter"])
    assert (out / "results.md").read_text().startswith("| " + " | ".join(COLUMNS))
    assert (out / "params_vs_dice.png").is_file()
