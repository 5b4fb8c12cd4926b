"""One rank of a bundle training config under torchrun, for tests/test_distributed.py: runs the config as
`python -m monai.bundle run` does and writes `<log_dir>/rank<R>.json` with the dataset indices this rank trained on in
each epoch (its sampler's order) and every file it wrote (`os.replace`, the last step of every atomic write, and
`torch.save` to a path).

    torchrun --standalone --nproc_per_node 2 tests/distributed_driver.py SPEC.json

SPEC.json: {"config_files": [...], "meta_file", "logging_file", "override": {...}, "log_dir"}.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow


def main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    rank, writes, indices = int(os.environ["RANK"]), [], {}
    replace, save = os.replace, torch.save

    def recorded_replace(src, dst, *args, **kwargs):
        writes.append(str(dst))
        return replace(src, dst, *args, **kwargs)

    def recorded_save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)):
            writes.append(str(f))
        return save(obj, f, *args, **kwargs)

    os.replace, torch.save = recorded_replace, recorded_save
    workflow = ConfigWorkflow(config_file=spec["config_files"], meta_file=spec["meta_file"],
                              logging_file=spec["logging_file"], workflow_type="train", **spec["override"])  # fmt: skip
    workflow.initialize()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: indices.__setitem__(
        e.state.epoch, [int(i) for i in e.state.dataloader.sampler]))  # the epoch's order: set_epoch ran at its start
    workflow.run()
    workflow.finalize()
    os.replace = replace
    record = {"rank": rank, "world_size": int(os.environ["WORLD_SIZE"]), "dataset": len(trainer.data_loader.dataset),
              "indices": indices, "writes": writes}  # fmt: skip
    Path(spec["log_dir"], f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1])
