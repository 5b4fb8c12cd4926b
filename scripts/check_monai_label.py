"""Serve a bundle through MONAI Label's `BundleInferTask` (the class its radiology app uses for Model Zoo bundles) and
check every answer against the bundle's own prediction for the same image and weights.

Run it with the MONAI Label environment's Python (`bash scripts/setup_monailabel_env.sh` makes `.venv-monailabel`,
with echodiff installed: the bundle configs import it). It checks MONAI Label's inference task in-process, without
a server; tests/test_monai_label_server.py checks the real server (docs/monai_label.md).

    .venv-monailabel/bin/python scripts/check_monai_label.py --bundle echo_pddpm_segmentation --model runs/seg/models/model.pt \\
        --images '["/data/CAMUS/database_nifti/patient0001/patient0001_4CH_ED.nii.gz"]'
    .venv-monailabel/bin/python scripts/check_monai_label.py --bundle echo_pddpm_segmentation \\
        --configs "['inference.json','inference_pddpm.json']" --model runs/seg/models/pddpm.pt \\
        --extra_models "{'presegmentation_ckpt': 'runs/seg/models/model.pt'}" --images ...
    .venv-monailabel/bin/python scripts/check_monai_label.py --bundle echo_view_classification --model runs/vc/models/model.pt --images ...

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

import fire
import torch
from echodiff.bundle import answer_agreement, export_for_monai_label


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
            row = {"image": str(image_path), "type": str(task.type),
                   **answer_agreement(export, str(image_path), result_file, result_json, seed)}  # fmt: skip
            print(json.dumps(row))
            rows.append(row)
    if not all(row["agrees"] for row in rows):
        raise SystemExit("MONAI Label's answers differ from the bundle's predictions (rows above).")


if __name__ == "__main__":
    fire.Fire(check)
