"""Find a bundle's root folder, so configs work from the repository root, the bundle folder or an exported copy."""

from __future__ import annotations

from pathlib import Path

from echodiff.errors import MissingFileError

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../echodiff
REPO_BUNDLES = _PACKAGE_DIR.parents[1] / "bundles"  # <repo>/common/echodiff -> <repo>/bundles


def _is_bundle(folder: Path) -> bool:
    return (folder / "configs" / "metadata.json").is_file()


def bundle_names(bundles_dir: Path = REPO_BUNDLES) -> list[str]:
    """Names of the bundle folders (those holding configs/metadata.json) under `bundles_dir`."""
    if not bundles_dir.is_dir():
        return []
    return sorted(p.name for p in bundles_dir.iterdir() if _is_bundle(p))


def find_bundle_root(name: str) -> str:
    """Root of bundle `name`: the current folder if it is that bundle, else ./bundles/<name>, else the folder an exported
    bundle copied `echodiff` into, else <repo>/bundles/<name> next to this package."""
    cwd = Path.cwd()
    candidates = [
        cwd if cwd.name == name else None,
        cwd / "bundles" / name,
        _PACKAGE_DIR.parent if _PACKAGE_DIR.parent.name == name else None,
        REPO_BUNDLES / name,
    ]
    for folder in candidates:
        if folder is not None and _is_bundle(folder):
            return str(folder)
    raise MissingFileError(
        f"bundle '{name}' not found: looked for configs/metadata.json in {cwd}, {cwd / 'bundles' / name} and "
        f"{REPO_BUNDLES / name}; run from the repository root or the bundle folder, or set 'bundle_root' explicitly."
    )
