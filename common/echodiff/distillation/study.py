"""Teacher vs distilled students on real data (echo_dfkd_segmentation; `scripts/dfkd_study.py` is its command line):
train each student with the bundle's own train.json, score the teacher and every student on EchoNet-Dynamic videos (Dice
at the traced frames, aFD for ED and ES, EF-proxy Pearson r ours and the paper's, the LV area curve's jitter, frames/s)
and on CAMUS frames (LV Dice), and write results.json, results_per_video.json, results.md and a parameters-vs-Dice
plot (params_vs_dice.png).

`students`: a JSON file listing {"name", "train_data" (words for the table), "dataset_dir", "targets_dir", "overrides"
(train.json keys, e.g. k_blocks, n_layers, image_size, clip_length, time_limit_minutes)}, optionally "extra_configs"
(config files of the bundle laid over train.json), "eval_clip_length" (the window it is scored with; default its
training `clip_length`: 1 on frames, 25 on videos unless overridden) and "data_free" (true for a student that never saw
a real image and was selected on synthetic data only; default false). A student whose training finished is not
retrained (the bundle resumes a killed one); `train=False` only evaluates; `only` trains and scores the named students
alone (two processes side by side, then one `train=False` run over the whole file).
"""


from __future__ import annotations

import json
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from monai.bundle import ConfigParser  # noqa: E402
from monai.bundle import run as bundle_run  # noqa: E402

from echodiff.bundle import find_bundle_root, load_weights  # noqa: E402
from echodiff.distillation.evaluation import evaluate_camus_lv, evaluate_echonet  # noqa: E402
from echodiff.errors import ConfigKeyError, as_flag  # noqa: E402
from echodiff.io import atomic_write, atomic_write_json, atomic_write_text  # noqa: E402
from echodiff.networks import FrameWise  # noqa: E402

__all__ = ["COLUMNS", "compare_students"]

BUNDLE = "echo_dfkd_segmentation"
COLUMNS = ("student", "k", "n", "params", "clip_length", "train_data", "data_free", "dice_echonet", "dice_camus_lv",
           "afd_ed", "afd_es", "ef_r", "ef_r_paper", "area_jitter", "frames_per_s", "device")  # fmt: skip


def _configs(*names: str) -> list[str]:
    return [str(Path(find_bundle_root(BUNDLE)) / "configs" / name) for name in names]


def _student(spec: dict, ckpt_dir: Path) -> tuple[torch.nn.Module, int]:
    """The trained student and the window it is scored with: `eval_clip_length`, else its training `clip_length`."""
    parser = ConfigParser()
    parser.read_config(_configs("train.json", *spec.get("extra_configs", [])))
    parser.update({"dataset_dir": spec["dataset_dir"], **spec.get("overrides", {})})
    network = parser.get_parsed_content("network_def")
    clip_length = spec.get("eval_clip_length", parser.get_parsed_content("clip_length"))
    hint = "train it first (--train true)"
    return load_weights(network, ckpt_dir / "model.pt", "student checkpoint", hint), clip_length


def _teacher(teacher_path: str, teacher_filters: list[int]) -> torch.nn.Module:
    parser = ConfigParser()
    parser.read_config(_configs("train.json"))
    parser.update({"teacher_filters": teacher_filters})
    return FrameWise(load_weights(parser.get_parsed_content("teacher_def"), teacher_path, "teacher checkpoint"))


def _row(name: str, network: torch.nn.Module, spec: dict, scores: dict) -> dict:
    overrides = spec.get("overrides", {})
    return {"student": name, "k": overrides.get("k_blocks"), "n": overrides.get("n_layers"),
            "params": sum(p.numel() for p in network.parameters()), "train_data": spec.get("train_data", ""),
            "data_free": bool(spec.get("data_free", False)), **scores}  # fmt: skip


def _score(network: torch.nn.Module, clip_length: int, image_size: list[int], echonet_dir: str, camus_dir: str,
           camus_split: str, device: str) -> dict:  # fmt: skip
    echonet = evaluate_echonet(network, echonet_dir, None, image_size, clip_length, device)
    camus = evaluate_camus_lv(network, camus_dir, camus_split, image_size, device)
    return {"clip_length": clip_length, "dice_echonet": echonet["dice"], "dice_camus_lv": camus["dice_lv"],
            "afd_ed": echonet["afd_ed"], "afd_es": echonet["afd_es"], "ef_r": echonet["ef_r"],
            "ef_r_paper": echonet["ef_r_paper"],
            "area_jitter": echonet["area_jitter"], "frames_per_s": echonet["frames_per_s"],
            "device": f"{device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
            "echonet_videos": echonet["videos"]}  # fmt: skip


def _table(rows: list[dict]) -> str:
    def cell(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else "" if value is None else str(value)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict], path: Path) -> None:
    figure, ax = plt.subplots(figsize=(5, 3.4))
    for row in rows:
        marker = "*" if row["student"] == "teacher" else "o"
        ax.scatter(row["params"], row["dice_echonet"], marker=marker, s=60 if marker == "*" else 25)
        ax.annotate(row["student"], (row["params"], row["dice_echonet"]), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("Dice, EchoNet traced frames")
    ax.grid(alpha=0.3)
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=120), suffix=".png")
    plt.close(figure)


def compare_students(students: str, teacher_path: str, echonet_dir: str, camus_dir: str, camus_split: str = "testing",
         workdir: str = "runs/dfkd", out_dir: str = "runs/dfkd/report", teacher_filters: list[int] | None = None,
         image_size: list[int] | None = None, train: bool = True, device: str = "cpu",
         only: str | list[str] | None = None) -> list[dict]:  # fmt: skip
    """Train (unless trained) and score every student of the `students` file, or the students named in `only` (e.g.
    two processes side by side, each with its own `out_dir`), and the teacher (module docstring)."""
    specs = json.loads(Path(students).read_text())
    if only is not None:
        names = [only] if isinstance(only, str) else list(only)
        unknown = sorted(set(names) - {spec["name"] for spec in specs})
        if unknown:
            raise ConfigKeyError(f"only={unknown} names no student of {students}; expected some of "
                                 f"{', '.join(spec['name'] for spec in specs)}")  # fmt: skip
        specs = [spec for spec in specs if spec["name"] in names]
    image_size = list(image_size or [64, 64])
    teacher = _teacher(teacher_path, list(teacher_filters or [32, 64, 128, 256, 320]))
    rows = [_row("teacher", teacher, {"train_data": "real CAMUS frames with labels"},
                 _score(teacher, 1, image_size, echonet_dir, camus_dir, camus_split, device))]  # fmt: skip
    for spec in specs:
        ckpt_dir = Path(workdir) / "students" / spec["name"]
        if as_flag(train, "train"):
            bundle_run("training", config_file=_configs("train.json", *spec.get("extra_configs", [])),
                       dataset_dir=spec["dataset_dir"], teacher_path=teacher_path, ckpt_dir=str(ckpt_dir),
                       output_dir=str(ckpt_dir / "eval"), targets_dir=spec["targets_dir"], image_size=image_size,
                       progress_bar=True, **spec.get("overrides", {}))  # fmt: skip
        network, clip_length = _student(spec, ckpt_dir)
        rows.append(_row(spec["name"], network, spec,
                         _score(network, clip_length, image_size, echonet_dir, camus_dir, camus_split, device)))
    out = Path(out_dir)
    atomic_write_json(out / "results.json", [{k: v for k, v in row.items() if k != "echonet_videos"} for row in rows])
    atomic_write_json(out / "results_per_video.json", {row["student"]: row["echonet_videos"] for row in rows})
    atomic_write_text(out / "results.md", _table(rows))
    _plot(rows, out / "params_vs_dice.png")
    print(_table(rows))
    return rows
