"""Check a CAMUS-layout dataset before training on it: every bad file at once (echodiff.data.check).

    python scripts/check_dataset.py --dataset_dir DIR [--splits training,validation] [--require_label true]

Reads every image and label map of the splits (default: every split with a split file) and lists each problem: split
files naming missing patients, missing or unreadable files, label values outside 0..3, label maps of another size than
their image. Exit code 0 and a one-line summary when all is well; otherwise the list and exit code 1.
"""

from __future__ import annotations

import fire
from echodiff.data.check import check_camus
from echodiff.errors import run_cli


def main(dataset_dir: str, splits: str | list[str] | None = None, require_label: bool = False) -> None:
    """Check `splits` of `dataset_dir`; raises one error listing every problem."""
    n_files = check_camus(dataset_dir, splits, require_label=require_label, progress=True)
    print(f"{dataset_dir}: {n_files} files read, no problems")


if __name__ == "__main__":
    run_cli(lambda: fire.Fire(main))
