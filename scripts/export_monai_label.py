"""Export a copy of a bundle that MONAI Label serves (echodiff.bundle.export_for_monai_label): its inference configs
merged into the one `configs/inference.json` MONAI Label reads, and the weights as `models/model.pt`.

    python scripts/export_monai_label.py --bundle echo_pddpm_segmentation --out_dir served \\
        --configs "['inference.json','inference_pddpm.json']" --model runs/seg/models/pddpm.pt \\
        --extra_models "{'presegmentation_ckpt': 'runs/seg/models/model.pt'}"

To serve it, export into a MONAI Label app's `model/` folder (`--out_dir <app>/model`) and start the app with
`--conf bundles echo_pddpm_segmentation` (radiology app; MONAI Label takes a folder of that name there as a local
bundle). The MONAI Label environment needs echodiff installed, since the configs import it. `--overrides` are config
keys (a Python-literal dict); `--extra_models` ({config key: weights}) are copied into the export's `models/` and
its keys pointed there, so the export needs no file outside it.
"""

from __future__ import annotations

import fire
from echodiff.bundle import export_for_monai_label
from echodiff.errors import run_cli


def main(bundle: str, out_dir: str, model: str, configs: tuple[str, ...] = ("inference.json",),
         overrides: dict | None = None, extra_models: dict | None = None) -> None:
    """Write `out_dir/<bundle>` and print its path."""
    print(export_for_monai_label(bundle, out_dir, model, configs, overrides, extra_models))


if __name__ == "__main__":
    run_cli(lambda: fire.Fire(main))
