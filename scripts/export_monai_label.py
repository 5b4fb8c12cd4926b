"""Export a copy of a bundle that MONAI Label serves (echodiff.bundle.export_for_monai_label): its inference configs
merged into the one `configs/inference.json` MONAI Label reads, and the weights as `models/model.pt`.

    python scripts/export_monai_label.py --bundle echo_pddpm_segmentation --out_dir apps/echo/model \\
        --configs "['inference.json','inference_pddpm.json']" --model runs/seg/models/pddpm.pt \\
        --extra_models "{'presegmentation_ckpt': 'runs/seg/models/model.pt'}" --name echo_pddpm_segmentation_pddpm

Export into a MONAI Label app's `model/` folder and start MONAI Label's Zoo/bundle app with `--conf models <name>`
(docs/monai_label.md: environment, server command, viewers). `--name` is the served model's name (default: the
bundle's); MONAI Label reads the task type from it ("segmentation" / "classification"). `--overrides` are config keys
(a Python-literal dict); `--extra_models` ({config key: weights}) are copied into the export's `models/` and its keys
pointed there, so the export needs no file outside it.
"""

from __future__ import annotations

import fire
from echodiff.bundle import export_for_monai_label
from echodiff.errors import run_cli


def main(bundle: str, out_dir: str, model: str, configs: tuple[str, ...] = ("inference.json",),
         overrides: dict | None = None, extra_models: dict | None = None, name: str | None = None) -> None:
    """Write `out_dir/<name>` and print its path."""
    print(export_for_monai_label(bundle, out_dir, model, configs, overrides, extra_models, name))


if __name__ == "__main__":
    run_cli(lambda: fire.Fire(main))
