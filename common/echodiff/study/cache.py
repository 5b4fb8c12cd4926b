"""Stage cache of the study: fingerprints of a stage's inputs, and the rule for reusing, resuming or rerunning it.

A stage's key is {"data", "config", "code", "settings", "upstream"}: content hashes of the data files it reads, of the
bundle config files it runs, the code (`echodiff.fingerprints.code_identity`: echodiff version and source digest, torch
and MONAI versions), its own settings, and the output identity of the stages whose outputs it uses
(`StageRecord.output`: their fingerprint and the run id that each finished run draws anew, so a forced rerun changes
what depends on it even with the same inputs). The fingerprint is the SHA-256 of that key. A stage folder holds
`started.json` (written before any work, with the sittings so far) and, once finished, `stage.json` (fingerprint, key,
run id, result, seconds over all sittings and per sitting). On the next run:

- `stage.json` with the same fingerprint: the stage is skipped and its result reused;
- a different fingerprint (finished or interrupted): the folder, checkpoints included, is deleted and the stage reruns,
  with a message naming what changed; so no checkpoint is ever reused for other data or settings;
- `started.json` with the same fingerprint but no `stage.json` (a killed run): the stage runs again in the same
  folder, and the bundle trainers resume from their last epoch checkpoint; its seconds add up over the sittings (a
  sitting ended by an exception records its own; one ended by SIGKILL counts until the last file it wrote).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echodiff.errors import MissingFileError
from echodiff.fingerprints import file_digest, files_digest, fingerprint
from echodiff.io import atomic_write

__all__ = ["StageRecord", "file_digest", "files_digest", "finished_stage", "fingerprint", "run_cached"]

STARTED, DONE = "started.json", "stage.json"


@dataclass
class StageRecord:
    """What a finished stage left: its name, fingerprint, result, seconds (all sittings), whether this run reused it,
    and the id of the run that made its output."""

    name: str
    fingerprint: str
    result: dict
    seconds: float
    cached: bool
    run: str

    @property
    def output(self) -> dict[str, str]:
        """The identity of this stage's output, which the keys of the stages that use it hold."""
        return {"fingerprint": self.fingerprint, "run": self.run}


def finished_stage(folder: str | Path) -> StageRecord:
    """The record of the finished stage in `folder` (its `stage.json`); `MissingFileError` when it has not finished."""
    path = Path(folder) / DONE
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist: stage {Path(folder).name} has not finished; run it first")
    done = json.loads(path.read_text())
    return StageRecord(done["stage"], done["fingerprint"], done["result"], done["seconds"], True,
                       done.get("run", done["fingerprint"]))  # fmt: skip


def _write_json(path: Path, value: Any) -> None:
    text = json.dumps(value, indent=2, default=str) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text), suffix=".json")


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    parts = [name for name in new if old.get(name) != new.get(name)]
    upstream_old, upstream_new = old.get("upstream", {}), new.get("upstream", {})
    stages = [s for s in upstream_new if upstream_old.get(s) != upstream_new.get(s)]
    text = ", ".join(p if p != "upstream" else f"upstream stages ({', '.join(stages)})" for p in parts)
    return text or "its inputs"


def _past_sittings(partial: Mapping[str, Any], folder: Path) -> list[dict]:
    """The sittings of an interrupted run; one without seconds (ended by SIGKILL) lasted until its last file write."""
    sittings = [dict(s) for s in partial.get("sittings", [])]
    for sitting in sittings:
        if sitting["seconds"] is None:
            last = max((p.stat().st_mtime for p in folder.rglob("*") if p.is_file()), default=sitting["start_time"])
            sitting["seconds"] = max(0.0, last - sitting["start_time"])
    return sittings


def run_cached(
    folder: str | Path,
    name: str,
    key: Mapping[str, Any],
    work: Callable[[Path], dict],
    force: bool = False,
    say: Callable[[str], None] = print,
) -> StageRecord:
    """Run `work(folder)` for stage `name` unless `folder` already holds its result for the same `key` (see module
    docstring); `force` reruns from scratch. Returns the stage's record."""
    folder = Path(folder)
    key = json.loads(json.dumps(key, sort_keys=True, default=str))
    digest = fingerprint(key)
    done, started = folder / DONE, folder / STARTED
    previous = json.loads(done.read_text()) if done.is_file() else None
    partial = json.loads(started.read_text()) if previous is None and started.is_file() else None
    sittings: list[dict] = []
    if force and folder.exists():
        say(f"[{name}] --force: rerunning from scratch")
        shutil.rmtree(folder)
    elif previous is not None and previous["fingerprint"] == digest:
        say(f"[{name}] cached: same inputs as its run of {previous['finished']} ({previous['seconds']:.0f} s)")
        return StageRecord(name, digest, previous["result"], previous["seconds"], True, previous.get("run", digest))
    elif previous is not None:
        say(f"[{name}] {_changed(previous['key'], key)} changed since its last run: rerunning")
        shutil.rmtree(folder)
    elif partial is not None and partial["fingerprint"] != digest:
        say(f"[{name}] an interrupted run with other {_changed(partial['key'], key)} is discarded: rerunning")
        shutil.rmtree(folder)
    elif partial is not None:
        sittings = _past_sittings(partial, folder)
        say(f"[{name}] resuming an interrupted run with the same inputs ({sum(s['seconds'] for s in sittings):.0f} s "
            f"in {len(sittings)} sitting(s) so far)")
    folder.mkdir(parents=True, exist_ok=True)
    sittings.append({"started": time.strftime("%Y-%m-%d %H:%M:%S"), "start_time": time.time(), "seconds": None})
    begun = {"stage": name, "fingerprint": digest, "key": key, "started": sittings[0]["started"]}
    _write_json(started, {**begun, "sittings": sittings})
    start = time.perf_counter()
    try:
        result = work(folder)
    finally:
        sittings[-1]["seconds"] = time.perf_counter() - start
        _write_json(started, {**begun, "sittings": sittings})
    seconds, run = sum(s["seconds"] for s in sittings), uuid.uuid4().hex
    _write_json(done, {"stage": name, "fingerprint": digest, "key": key, "run": run, "result": result,
                       "seconds": seconds, "sitting_seconds": [s["seconds"] for s in sittings],
                       "finished": time.strftime("%Y-%m-%d %H:%M:%S")})  # fmt: skip
    return StageRecord(name, digest, json.loads(json.dumps(result, default=str)), seconds, False, run)
