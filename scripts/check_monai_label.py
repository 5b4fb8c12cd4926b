"""Serve a bundle through MONAI Label's `BundleInferTask` (the class its radiology app uses for Model Zoo bundles) and
check every answer against the bundle's own prediction for the same image and weights.

Run it in a MONAI Label environment that also has echodiff installed (`pip install -e .` from this repository): the
bundle configs import `echodiff`. MONAI Label is not a dependency of echodiff, so CI does not run this script.

    python scripts/check_monai_label.py --bundle echo_pddpm_segmentation --model runs/seg/models/model.pt \\
        --images '["/data/CAMUS/database_nifti/patient0001/patient0001_4CH_ED.nii.gz"]'
    python scripts/check_monai_label.py --bundle echo_pddpm_segmentation \\
        --configs "['inference.json','inference_pddpm.json']" --model runs/seg/models/pddpm.pt \\
        --extra_models "{'presegmentation_ckpt': 'runs/seg/models/model.pt'}" --images ...
    python scripts/check_monai_label.py --bundle echo_view_classification --model runs/vc/models/model.pt --images ...

Segmentation: MONAI Label writes the label file itself (NIfTI for NIfTI input, `.mhd` for `.mhd` input); for every
pixel of the source image the script finds the label voxel at the same world point (both files' affines) and reports
the share that holds the bundle's label (1.0 = same grid, orientation and labels). Classification: the class MONAI
Label reports against the bundle's argmax. The bundle is exported to a temporary folder by
`echodiff.bundle.export_for_monai_label` (`--configs` merged into its `inference.json`, `--model` as
`models/model.pt`, `--extra_models` beside it), as MONAI Label expects; `--overrides` are config keys (a Python-literal dict: `True`/`False`, not
JSON's `true`/`false`, which fire reads as strings).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import fire
import numpy as np
import torch
from echodiff.bundle import export_for_monai_label
from echodiff.data.camus import read_camus_frame
from echodiff.engines.segmentation_report import label_map_at
from monai.bundle import ConfigParser
from monai.data import ITKReader, NibabelReader, decollate_batch


def bundle_prediction(export: Path, image_path: str, seed: int) -> torch.Tensor:
    """The bundle's own `pred` after its preprocessing, inferer and postprocessing, on CPU (label map or scores)."""
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
    """(share of source pixels with a label voxel at the same world point, share of those equal to `expected_hw`)."""
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


def check(bundle: str, model: str, images: list[str], configs: tuple[str, ...] = ("inference.json",),
          overrides: dict | None = None, extra_models: dict | None = None, seed: int = 0) -> None:
    """Print one row per image, MONAI Label's answer checked against the bundle's prediction; exit 1 on a mismatch."""
    from monailabel.tasks.infer.bundle import BundleInferTask  # MONAI Label is only needed here

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        export = export_for_monai_label(bundle, tmp, model, configs, overrides, extra_models)
        task = BundleInferTask(str(export), {})
        if not task.is_valid():
            raise RuntimeError(f"MONAI Label did not accept the exported bundle {export} (see its log above).")
        for image_path in images:
            torch.manual_seed(seed)
            result_file, result_json = task({"image": str(image_path), "device": "cpu"})
            pred = bundle_prediction(export, str(image_path), seed)
            row = {"image": str(image_path), "type": str(task.type)}
            if result_file is None:  # classification: MONAI Label answers in JSON
                best = max(result_json["prediction"], key=lambda p: p["score"])
                row.update(monai_label=best["label"], bundle_class=int(pred.argmax()),
                           agrees=best["idx"] == int(pred.argmax()))
            else:
                image_hw, _ = read_camus_frame(image_path)
                expected = label_map_at(pred, image_hw.shape)[0].numpy()
                covered, agreement = world_agreement(result_file, str(image_path), expected)
                row.update(result_file=Path(result_file).name, covered=covered, agreement=agreement,
                           agrees=covered == 1.0 and agreement == 1.0)
            print(json.dumps(row))
            rows.append(row)
    if not all(row["agrees"] for row in rows):
        raise SystemExit("MONAI Label's answers differ from the bundle's predictions (rows above).")


if __name__ == "__main__":
    fire.Fire(check)
