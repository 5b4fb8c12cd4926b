"""Bundle helpers: locating a bundle folder from its configs and checking a bundle the way the Model Zoo does."""

from __future__ import annotations

from .checks import BundleCheckError, check_bundle_files, check_properties, run_ci_plan, validate_metadata
from .location import REPO_BUNDLES, bundle_names, find_bundle_root
from .networks import load_bundle_network

__all__ = [
    "REPO_BUNDLES",
    "BundleCheckError",
    "bundle_names",
    "check_bundle_files",
    "check_properties",
    "find_bundle_root",
    "load_bundle_network",
    "run_ci_plan",
    "validate_metadata",
]
