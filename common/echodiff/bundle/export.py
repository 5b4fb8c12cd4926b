"""A copy of a bundle that MONAI Label serves. MONAI Label's `BundleInferTask` reads one `configs/inference.json` (the
first of `BundleConstants.configs()` that exists, never a list) and `models/model.pt`, so an inference made of overlays,
e.g. PD-DDPM's `['inference.json', 'inference_pddpm.json']`, is merged into that one file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser

from echodiff.bundle.location import find_bundle_root
from echodiff.errors import ConfigValueError, MissingFileError

__all__ = ["SERVED_LABELS_KEY", "export_for_monai_label", "merged_config", "served_task_type"]

SERVED_LABELS_KEY = "monai_label_labels"
"""Config key of a segmenter's served label map values -> names ({"0": "background", "1": "LV cavity", ...})."""


def merged_config(bundle: str, config_files: Sequence[str] | str, overrides: Mapping[str, Any] | None = None) -> dict:
    """The config `python -m monai.bundle run --config_file [config_files]` runs (later files override earlier keys,
    `a#b` keys set nested values), with `overrides`, as one dict that needs no other file."""
    config_files = [config_files] if isinstance(config_files, str) else list(config_files)
    configs = Path(find_bundle_root(bundle)) / "configs"
    missing = [name for name in config_files if not (configs / name).is_file()]
    if missing:
        raise MissingFileError(f"{bundle} has no config {', '.join(missing)} in {configs}")
    parser = ConfigParser()
    parser.read_config([str(configs / name) for name in config_files])
    parser.update(dict(overrides or {}))
    return {key: value for key, value in parser.get().items() if key != parser.meta_key}


def _names_path(value: Any, path: str) -> bool:
    """Whether a config value is an expression or a path naming `path` (not free text such as `ckpt_hint`)."""
    return isinstance(value, str) and path in value and (value.startswith("$") or value.endswith(path))


def served_task_type(name: str) -> str:
    """The task type MONAI Label 0.8's `BundleInferTask` reads from a served folder's name (its `_get_type`)."""
    lowered = name.lower()
    for word in ("deepedit", "deepgrow", "detection", "segmentation", "classification"):
        if word in lowered:
            return word
    return "segmentation"


def _name_served_labels(metadata_file: Path, labels: Any, key: str) -> None:
    """MONAI Label names a segmenter's labels after the `channel_def` of the first output in
    `network_data_format.outputs`, which describes the network's raw channels (logits); the export names the
    post-processed label map's values instead."""
    if not isinstance(labels, Mapping) or not all(str(v).isdigit() for v in labels):
        raise ConfigValueError(f"config key {key} is {labels!r}; expected label values -> names, e.g. "
                               "{'0': 'background', '1': 'LV cavity'}")  # fmt: skip
    metadata = json.loads(metadata_file.read_text())
    outputs = metadata.get("network_data_format", {}).get("outputs")
    if not outputs:
        raise ConfigValueError(f"{metadata_file} has no network_data_format.outputs; expected the network's outputs")
    next(iter(outputs.values()))["channel_def"] = {str(value): str(name) for value, name in labels.items()}
    metadata_file.write_text(json.dumps(metadata, indent=4) + "\n")


def export_for_monai_label(
    bundle: str,
    out_dir: str | Path,
    model: str | Path,
    config_files: Sequence[str] | str = ("inference.json",),
    overrides: Mapping[str, Any] | None = None,
    extra_models: Mapping[str, str | Path] | None = None,
    name: str | None = None,
) -> Path:
    """Write `out_dir/<name>` (default: the bundle's folder name; MONAI Label serves it under that name and reads
    the task type from it: "segmentation" or "classification" in it): the bundle's configs, `configs/inference.json` = `merged_config(config_files,
    overrides)` with `ckpt_path` at `models/model.pt`, `model` as `models/model.pt` and each of `extra_models` ({config key: weights}, e.g. PD-DDPM's
    {"presegmentation_ckpt": segmenter.pt}) as `models/<key>.pt`, its key pointing there; returns that folder (pass
    it to MONAI Label as a bundle model; it needs no file outside it). A segmenter's `monai_label_labels` key (label
    value -> name) becomes the exported metadata's output `channel_def`, the label names MONAI Label shows.

    A config key other than `ckpt_path` that still points at `models/model.pt` (PD-DDPM's presegmentation checkpoint
    does by default) would load the served weights in its place: refused, naming the key."""
    paths = {"model": Path(model), **{key: Path(path) for key, path in (extra_models or {}).items()}}
    for key, path in paths.items():
        if not path.is_file():
            what = f"the checkpoint {bundle} serves" if key == "model" else f"the weights of config key {key}"
            raise MissingFileError(f"model weights {path} do not exist; expected {what}")
    extra = {key: f"$@bundle_root + '/models/{key}.pt'" for key in paths}
    extra["ckpt_path"] = extra.pop("model")
    content = merged_config(bundle, config_files, {**dict(overrides or {}), **extra})  # `monai.bundle run` in it too
    stale = [key for key, value in content.items()
             if key != "ckpt_path" and _names_path(value, "models/model.pt")]  # fmt: skip
    if stale:
        raise ConfigValueError(
            f"{bundle}: config key(s) {', '.join(stale)} point at models/model.pt, which the export fills with {model}; "
            f"expected their weights in extra_models (--extra_models \"{{'{stale[0]}': 'PATH.pt'}}\")"
        )
    root = Path(find_bundle_root(bundle))
    name = name or root.name
    if served_task_type(name) != served_task_type(root.name):
        raise ConfigValueError(
            f"served name {name!r} makes MONAI Label treat {bundle} as a {served_task_type(name)} model; expected a "
            f"name containing {served_task_type(root.name)!r} (MONAI Label reads the task type from the folder name)"
        )
    export = Path(out_dir) / name
    shutil.copytree(root / "configs", export / "configs", dirs_exist_ok=True)
    (export / "configs" / "inference.json").write_text(json.dumps(content, indent=4) + "\n")
    if SERVED_LABELS_KEY in content:
        labels = ConfigParser(content).get_parsed_content(SERVED_LABELS_KEY)
        _name_served_labels(export / "configs" / "metadata.json", labels, SERVED_LABELS_KEY)
    (export / "models").mkdir(exist_ok=True)
    for key, path in paths.items():
        shutil.copy(path, export / "models" / f"{key}.pt")  # model.pt: what MONAI Label loads
    return export
