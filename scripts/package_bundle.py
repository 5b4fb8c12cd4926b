"""Turn a bundle into a Model Zoo package (echodiff.bundle.package_bundle): the bundle folder without local data, runs
or weights, metadata versions from this environment, weights listed in `large_files.yml` (URL placeholder, SHA-256)
and copied when under the Zoo's 25 MB limit; then the Zoo's offline checks on it.

    python scripts/package_bundle.py --bundle echo_pddpm_segmentation --out_dir dist/zoo \\
        --weights "{'models/model.pt': 'runs/seg/models/model.pt'}"

The configs import `echodiff`, a pinned dependency of the package (`required_packages_version`): build its wheel with
`pip wheel --no-deps -w dist .` and install it beside MONAI where the package runs. Before publishing, replace the URL
placeholders in `large_files.yml` with the release URLs of the weights.
"""

from __future__ import annotations

import fire
from echodiff.bundle import package_bundle
from echodiff.errors import run_cli


def main(bundle: str, out_dir: str, weights: dict | None = None) -> None:
    """Write `out_dir/<bundle>` and print its path."""
    print(package_bundle(bundle, out_dir, weights))


if __name__ == "__main__":
    run_cli(lambda: fire.Fire(main))
