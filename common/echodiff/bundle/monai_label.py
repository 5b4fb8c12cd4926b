"""Checking MONAI Label's answers against the bundle's own predictions, with no MONAI Label import: a served copy of
a bundle (`export_for_monai_label`) predicts an image once through its own `preprocessing`, `inferer` and
`postprocessing` keys, and MONAI Label's label file (or class) for the same image must agree with it at every pixel
of the source image, located by world coordinates (both files' affines), so grid, orientation and label values are
all checked. Used by scripts/check_monai_label.py (MONAI Label's `BundleInferTask` in-process) and the server test
(tests/test_monai_label_server.py: the real server and MONAI Label's HTTP client)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import ITKReader, NibabelReader, decollate_batch

from echodiff.data.camus import read_camus_frame
from echodiff.engines.segmentation_report import label_map_at

__all__ = ["answer_agreement", "bundle_prediction", "world_agreement"]


def bundle_prediction(export: str | Path, image_path: str, seed: int = 0) -> torch.Tensor:
    """The served bundle's own `pred` for `image_path` after its preprocessing, inferer and postprocessing, on CPU
    (a (1, H, W) label map or class scores)."""
    export = Path(export)
    parser = ConfigParser()
    parser.read_config(str(export / "configs" / "inference.json"))
    parser.update({"bundle_root": str(export), "device": "$torch.device('cpu')"})
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(export / "models" / "model.pt", map_location="cpu", weights_only=True))
    network.eval()
    data = parser.get_parsed_content("preprocessing")({"image": image_path})
    torch.manual_seed(seed)
    with torch.no_grad():
        out = parser.get_parsed_content("inferer")(torch.as_tensor(data["image"])[None], network)
    data["pred"] = decollate_batch(out)[0] if isinstance(out, dict) else out[0]
    return torch.as_tensor(parser.get_parsed_content("postprocessing")(data)["pred"])


def world_agreement(result_file: str, image_path: str, expected_hw: np.ndarray) -> tuple[float, float]:
    """(share of the source image's pixels with a label voxel at the same world point, share of those equal to
    `expected_hw`, the expected label map on the source grid)."""
    reader = NibabelReader() if result_file.endswith((".nii", ".nii.gz")) else ITKReader()
    labels, meta = reader.get_data(reader.read(result_file))
    labels, label_affine = np.asarray(labels), np.asarray(meta["original_affine"], dtype=np.float64)
    if labels.ndim == 2:
        labels = labels[..., None]
    _, source_affine = read_camus_frame(image_path)
    cols, rows = np.meshgrid(np.arange(expected_hw.shape[1]), np.arange(expected_hw.shape[0]), indexing="ij")
    points = np.stack([cols.ravel(), rows.ravel(), np.zeros(cols.size), np.ones(cols.size)])
    voxels = np.rint(np.linalg.inv(label_affine) @ source_affine @ points)[:3].astype(int)
    inside = np.all((voxels >= 0) & (voxels < np.array(labels.shape)[:, None]), axis=0)
    found = labels[tuple(voxels[:, inside])]
    same = found == expected_hw[rows.ravel()[inside], cols.ravel()[inside]]
    return float(inside.mean()), float(same.mean()) if same.size else 0.0


def answer_agreement(export: str | Path, image_path: str, result_file: str | None, result_json: dict,
                     seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """One MONAI Label answer (label file, or None and a JSON `prediction` list for a classifier) checked against the
    bundle's prediction: a row with `agrees` and, for a segmenter, `covered`, `agreement` and the labels present."""
    pred = bundle_prediction(export, image_path, seed)
    if result_file is None:
        best = max(result_json["prediction"], key=lambda p: p["score"])
        return {"monai_label": best["label"], "monai_label_idx": int(best["idx"]), "bundle_class": int(pred.argmax()),
                "agrees": int(best["idx"]) == int(pred.argmax())}  # fmt: skip
    image_hw, _ = read_camus_frame(image_path)
    expected = label_map_at(pred, image_hw.shape)[0].numpy()
    covered, agreement = world_agreement(str(result_file), image_path, expected)
    return {"result_file": Path(result_file).name, "covered": covered, "agreement": agreement,
            "labels": sorted(int(v) for v in np.unique(expected)), "agrees": covered == 1.0 and agreement == 1.0}  # fmt: skip
