"""Ignite handlers and checkpoint helpers used by the bundles where MONAI's own do not fit."""

from __future__ import annotations

from .checkpoints import latest_checkpoint, resume_handlers
from .classification_report import BootstrapAccuracySaver

__all__ = ["BootstrapAccuracySaver", "latest_checkpoint", "resume_handlers"]
