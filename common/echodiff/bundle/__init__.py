"""Bundle helpers: locating a bundle folder from its configs, checking a bundle the way the Model Zoo does, packaging
it for the Model Zoo, and exporting a copy that MONAI Label serves."""

from __future__ import annotations

from .checks import BundleCheckError, check_bundle_files, check_properties, run_ci_plan, validate_metadata
from .export import SERVED_LABELS_KEY, export_for_monai_label, merged_config, served_task_type
from .location import REPO_BUNDLES, bundle_names, find_bundle_root
from .monai_label import answer_agreement, bundle_prediction, world_agreement
from .networks import load_bundle_network, load_weights
from .package import check_package, package_bundle

__all__ = [
    "REPO_BUNDLES",
    "SERVED_LABELS_KEY",
    "BundleCheckError",
    "answer_agreement",
    "bundle_names",
    "bundle_prediction",
    "check_bundle_files",
    "check_package",
    "check_properties",
    "export_for_monai_label",
    "find_bundle_root",
    "load_bundle_network",
    "load_weights",
    "merged_config",
    "package_bundle",
    "run_ci_plan",
    "served_task_type",
    "validate_metadata",
    "world_agreement",
]
