"""Items for 2CH-vs-4CH view classification from any CAMUS-layout folder (real or synthetic)."""

from __future__ import annotations

from .camus import VIEWS, list_camus

VIEW_CLASSES = dict(enumerate(VIEWS))  # 0: 2CH, 1: 4CH


def view_classification_items(
    dataset_dir: str, split: str = "training", phases: tuple[str, ...] = ("ED", "ES")
) -> list[dict]:
    """One item per image of the split: {"image", "source": image path, "label": 0 for 2CH / 1 for 4CH, "patient",
    "view", "phase"}. Label maps are neither needed nor read, so unlabelled folders work too."""
    return [
        {"image": item["image"], "source": item["image"], "label": item["view_index"], "patient": item["patient"],
         "view": item["view"], "phase": item["phase"]}
        for item in list_camus(dataset_dir, split=split, phases=phases, require_label=False)
    ]
