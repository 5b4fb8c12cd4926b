"""A bundle as a Model Zoo package: the bundle folder without local data, runs or weights, its metadata versions filled
from the running environment, and its weights listed in `large_files.yml` (URL placeholder, SHA-256) for the Zoo's
`download_large_files`; weights up to the Zoo's 25 MB file limit are also copied, so the package runs offline.

The `echodiff` code the configs import is a pinned dependency (`required_packages_version`: `echodiff` = this
version): install it from this repository's wheel (`pip wheel --no-deps .`), as the package's README says.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import monai
import numpy as np
import torch
import yaml

import echodiff
from echodiff.bundle.checks import REQUIRED_FILES, BundleCheckError, validate_metadata
from echodiff.bundle.location import find_bundle_root
from echodiff.errors import MissingFileError

__all__ = ["ZOO_MAX_FILE_BYTES", "check_package", "package_bundle"]

ZOO_MAX_FILE_BYTES = 25 * 1024 * 1024
LOCAL_FOLDERS = ("data", "models", "eval", "runs", "__pycache__")  # made by local runs, never shipped
URL_PLACEHOLDER = "https://REPLACE-WITH-THE-RELEASE-URL/{bundle}_v{version}/{name}"


def _installed_version(package: str) -> str:
    if package == "echodiff":
        return echodiff.__version__
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError as err:
        raise MissingFileError(f"required package {package} is not installed; expected it to fill its version") from err


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_bundle(bundle: str, out_dir: str | Path, weights: Mapping[str, str | Path] | None = None) -> Path:
    """Write `out_dir/<bundle>`, the Zoo package of `bundle` (module docstring), and return it. `weights` maps a path
    inside the package (e.g. "models/model.pt") to the file to ship there."""
    root = Path(find_bundle_root(bundle))
    package = Path(out_dir) / root.name
    if package.exists():
        shutil.rmtree(package)
    shutil.copytree(root, package, ignore=shutil.ignore_patterns(*LOCAL_FOLDERS))
    meta_file = package / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta.update(monai_version=monai.__version__, pytorch_version=torch.__version__.split("+")[0],
                numpy_version=np.__version__)  # fmt: skip
    meta["required_packages_version"] = {name: _installed_version(name) for name in meta["required_packages_version"]}
    meta_file.write_text(json.dumps(meta, indent=4) + "\n")
    large_files = []
    for name, source in (weights or {}).items():
        source = Path(source)
        if not source.is_file():
            raise MissingFileError(f"weights {source} do not exist; expected the file to ship as {name}")
        large_files.append({"path": name, "url": URL_PLACEHOLDER.format(bundle=root.name, version=meta["version"],
                                                                       name=Path(name).name),
                            "hash_val": _sha256(source), "hash_type": "sha256"})  # fmt: skip
        if source.stat().st_size <= ZOO_MAX_FILE_BYTES:
            (package / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, package / name)
    if large_files:
        (package / "large_files.yml").write_text(yaml.safe_dump({"large_files": large_files}, sort_keys=False))
    check_package(package)
    return package


def check_package(package: str | Path) -> dict:
    """The Zoo's offline checks of a package folder: metadata schema and changelog (`validate_metadata`), the required
    files, no file over 25 MB but those `large_files.yml` lists (downloaded by `monai.bundle download_large_files`),
    and for every listed file that is present, its hash. Returns the metadata; raises `BundleCheckError` naming what
    fails."""
    package = Path(package)
    meta = validate_metadata(package)
    missing = [name for name in REQUIRED_FILES if not (package / name).is_file()]
    if missing:
        raise BundleCheckError(f"package {package} lacks {', '.join(missing)}")
    listed = package / "large_files.yml"
    entries = yaml.safe_load(listed.read_text())["large_files"] if listed.is_file() else []
    large = [name for p in package.rglob("*") if p.is_file() and p.stat().st_size > ZOO_MAX_FILE_BYTES
             and (name := str(p.relative_to(package))) not in {e["path"] for e in entries}]  # fmt: skip
    if large:
        raise BundleCheckError(f"package {package} has files over 25 MB ({', '.join(large)}); list them in large_files.yml")
    for entry in entries:
        path = package / entry["path"]
        if path.is_file() and _sha256(path) != entry["hash_val"]:
            raise BundleCheckError(f"{path} does not match its sha256 in {listed}")
    return meta
