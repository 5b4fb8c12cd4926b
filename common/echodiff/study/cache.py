"""Stage cache of the study: fingerprints of a stage's inputs, and the rule for reusing, resuming or rerunning it.

A stage's key is {"data", "config", "code", "settings", "upstream"}: content hashes of the data files it reads, of the
bundle config files it runs, the echodiff version, its own settings, and the fingerprints of the stages whose outputs
it uses. The fingerprint is the SHA-256 of that key. A stage folder holds `started.json` (written before any work)
and, once finished, `stage.json` (fingerprint, key, result, seconds). On the next run:

- `stage.json` with the same fingerprint: the stage is skipped and its result reused;
- a different fingerprint (finished or interrupted): the folder, checkpoints included, is deleted and the stage reruns,
  with a message naming what changed; so no checkpoint is ever reused for other data or settings;
- `started.json` with the same fingerprint but no `stage.json` (a killed run): the stage runs again in the same
  folder, and the bundle trainers resume from their last epoch checkpoint.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echodiff.fingerprints import file_digest, files_digest, fingerprint
from echodiff.io import atomic_write

__all__ = ["StageRecord", "file_digest", "files_digest", "fingerprint", "run_cached"]

STARTED, DONE = "started.json", "stage.json"


@dataclass
class StageRecord:
    """What a finished stage left: its name, fingerprint, result, seconds and whether this run reused it."""

    name: str
    fingerprint: str
    result: dict
    seconds: float
    cached: bool


def _write_json(path: Path, value: Any) -> None:
    text = json.dumps(value, indent=2, default=str) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text), suffix=".json")


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    parts = [name for name in new if old.get(name) != new.get(name)]
    upstream_old, upstream_new = old.get("upstream", {}), new.get("upstream", {})
    stages = [s for s in upstream_new if upstream_old.get(s) != upstream_new.get(s)]
    text = ", ".join(p if p != "upstream" else f"upstream stages ({', '.join(stages)})" for p in parts)
    return text or "its inputs"


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
    if force and folder.exists():
        say(f"[{name}] --force: rerunning from scratch")
        shutil.rmtree(folder)
    elif previous is not None and previous["fingerprint"] == digest:
        say(f"[{name}] cached: same inputs as its run of {previous['finished']} ({previous['seconds']:.0f} s)")
        return StageRecord(name, digest, previous["result"], previous["seconds"], True)
    elif previous is not None:
        say(f"[{name}] {_changed(previous['key'], key)} changed since its last run: rerunning")
        shutil.rmtree(folder)
    elif partial is not None and partial["fingerprint"] != digest:
        say(f"[{name}] an interrupted run with other {_changed(partial['key'], key)} is discarded: rerunning")
        shutil.rmtree(folder)
    elif partial is not None:
        say(f"[{name}] resuming an interrupted run with the same inputs")
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(started, {"stage": name, "fingerprint": digest, "key": key, "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    start = time.perf_counter()
    result = work(folder)
    seconds = time.perf_counter() - start
    _write_json(done, {"stage": name, "fingerprint": digest, "key": key, "result": result, "seconds": seconds,
                       "finished": time.strftime("%Y-%m-%d %H:%M:%S")})  # fmt: skip
    return StageRecord(name, digest, json.loads(json.dumps(result, default=str)), seconds, False)
