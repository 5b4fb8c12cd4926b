"""Bundle helpers: locating a bundle folder from its configs, checking a bundle the way the Model Zoo does, and
exporting a copy that MONAI Label serves."""

from __future__ import annotations

from .checks import BundleCheckError, check_bundle_files, check_properties, run_ci_plan, validate_metadata
from .export import export_for_monai_label, merged_config
from .location import REPO_BUNDLES, bundle_names, find_bundle_root
from .networks import load_bundle_network, load_weights

__all__ = [
    "REPO_BUNDLES",
    "BundleCheckError",
    "bundle_names",
    "check_bundle_files",
    "check_properties",
    "export_for_monai_label",
    "find_bundle_root",
    "load_bundle_network",
    "load_weights",
    "merged_config",
    "run_ci_plan",
    "validate_metadata",
]
