"""The repository documents itself: no file points users at documents outside it."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"ALGORITHMS\.md|DESIGN\.md|STYLE\.md|CPU_GENERATOR_NOTES|\.\./shared/(reference|monai)")


def test_no_source_or_doc_cites_a_document_outside_the_repository() -> None:
    found = []
    for folder in ("common", "bundles", "scripts", "docs", "tests", "README.md"):
        root = REPO_ROOT / folder
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.suffix in {".py", ".md", ".json", ".sh"} and path != Path(__file__).resolve():
                found += [f"{path.relative_to(REPO_ROOT)}:{i}" for i, line in enumerate(path.read_text().splitlines(), 1)
                          if OUTSIDE.search(line)]  # fmt: skip
    assert found == []


def test_scripts_are_thin_command_lines_of_at_most_120_lines() -> None:
    """Logic lives in echodiff; scripts/ and bundles/*/scripts only turn command-line flags into a library call."""
    scripts = [p for p in (*REPO_ROOT.glob("scripts/*"), *REPO_ROOT.glob("bundles/*/scripts/*")) if p.is_file()]
    too_long = {str(p.relative_to(REPO_ROOT)): n for p in scripts if (n := len(p.read_text().splitlines())) > 120}
    assert scripts and too_long == {}
