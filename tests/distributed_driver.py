"""One rank of bundle training configs under torchrun, for tests/test_distributed.py: runs each config in turn as
`python -m monai.bundle run` does and writes `<log_dir>/rank<R>.json` per run with the dataset indices this rank
trained on in each epoch (its sampler's order) and every file it wrote (`os.replace`, the last step of every atomic
write, and `torch.save` to a path).

    torchrun --standalone --nproc_per_node 2 tests/distributed_driver.py SPEC.json

SPEC.json: {"runs": [{"config_files": [...], "meta_file", "logging_file", "override": {...}, "log_dir"}, ...]}. The
first run's overlay initialises the process group; the others find it initialised (the overlays' own
`dist.is_initialized() or dist.init_process_group(...)`; so only the first run's own initialisation is exercised), the
ranks meet at a barrier after each run, and the group is destroyed once, after the last run, so that one launch
(interpreter and torch start-up on every rank) serves all runs of a bundle.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from ignite.engine import Events
from monai.bundle import ConfigWorkflow


def run_one(spec: dict, rank: int) -> None:
    writes, indices = [], {}
    replace, save = os.replace, torch.save

    def recorded_replace(src, dst, *args, **kwargs):
        writes.append(str(dst))
        return replace(src, dst, *args, **kwargs)

    def recorded_save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)):
            writes.append(str(f))
        return save(obj, f, *args, **kwargs)

    os.replace, torch.save = recorded_replace, recorded_save
    try:
        workflow = ConfigWorkflow(config_file=spec["config_files"], meta_file=spec["meta_file"],
                                  logging_file=spec["logging_file"], workflow_type="train", **spec["override"])  # fmt: skip
        workflow.initialize()
        trainer = workflow.parser.get_parsed_content("train#trainer")
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: indices.__setitem__(
            e.state.epoch, [int(i) for i in e.state.dataloader.sampler]))  # the epoch's order: set_epoch ran at its start
        workflow.run()
        workflow.finalize()
    finally:
        os.replace, torch.save = replace, save
    record = {"rank": rank, "world_size": int(os.environ["WORLD_SIZE"]), "dataset": len(trainer.data_loader.dataset),
              "indices": indices, "writes": writes}  # fmt: skip
    Path(spec["log_dir"], f"rank{rank}.json").write_text(json.dumps(record))


def main(spec_file: str) -> None:
    runs = json.loads(Path(spec_file).read_text())["runs"]
    rank, destroy = int(os.environ["RANK"]), dist.destroy_process_group
    dist.destroy_process_group = lambda *args, **kwargs: None  # the overlays' finalize; once, at the end, below
    try:
        for spec in runs:
            run_one(spec, rank)
            if dist.is_initialized():
                dist.barrier()  # the next run may read what rank 0 wrote in this one (the generator's autoencoder)
    finally:
        dist.destroy_process_group = destroy
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
