"""The study in MLflow (`run_study(tracking="mlflow")`, `scripts/pipeline.py study --tracking mlflow`): every finished
stage of a study folder becomes one MLflow run named after the stage, so runs can be browsed and compared in the MLflow
UI (`mlflow ui --backend-store-uri sqlite:///<workdir>/mlruns.db`).

A stage's run holds, from its `stage.json` (`echodiff.study.cache`): tags `stage`, `fingerprint` and `workdir`; params
= the fingerprint and the flattened key (settings, data and config digests, code version, upstream fingerprints);
metrics = the numeric leaves of its result (the report stage: of `report.json`) and `seconds`; artifacts = the PNG
figures of its folder and `report.md`. A stage already logged with the same fingerprint is not logged again, so a
cached rerun adds nothing. The store is local: by default the SQLite database `<workdir>/mlruns.db` with artifacts in
`<workdir>/mlruns/`, the layout MONAI's default tracking settings give a bundle run; nothing is served or fetched.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai.utils import path_to_sqlite_uri

from echodiff.errors import ConfigKeyError

if TYPE_CHECKING:  # mlflow itself is imported where it is used: importing it takes seconds
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

__all__ = ["EXPERIMENT", "TRACKERS", "checked_tracking", "default_tracking_uri", "track_study"]

TRACKERS = ("mlflow",)
EXPERIMENT = "echodiff_study"
STAGE_FILE = "stage.json"
MAX_PARAM_LENGTH, MAX_KEY_LENGTH = 6000, 250  # MLflow's limits on a parameter value and on a key


def checked_tracking(tracking: str | None) -> str | None:
    """`tracking` when it is None or one of `TRACKERS`, else a `ConfigKeyError` listing them."""
    if tracking is not None and tracking not in TRACKERS:
        raise ConfigKeyError(f"--tracking {tracking!r}; expected one of {', '.join(TRACKERS)} (or none)")
    return tracking


def default_tracking_uri(workdir: str | Path) -> str:
    """The study's local store: the SQLite database `<workdir>/mlruns.db` (MONAI's default layout)."""
    return path_to_sqlite_uri(Path(workdir).resolve() / "mlruns.db")


def _flat(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path/to/leaf, leaf) of nested dicts and lists."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flat(item, f"{prefix}{key}/")
    elif isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        for index, item in enumerate(value):
            yield from _flat(item, f"{prefix}{index}/")
    else:
        yield prefix.rstrip("/"), value


def _key(path: str) -> str:
    """An MLflow key: letters, digits and `_-. /` only (a config id's `#` becomes `_`), at most 250 characters."""
    return re.sub(r"[^\w\-. /]", "_", path)[:MAX_KEY_LENGTH]


def _params(record: dict) -> list[Param]:
    """The fingerprint and the flattened key of a stage (strings as they are, other values as JSON)."""
    from mlflow.entities import Param

    params = {"fingerprint": record["fingerprint"], **dict(_flat(record["key"]))}
    text = {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in params.items()}
    return [Param(_key(k), v[:MAX_PARAM_LENGTH]) for k, v in text.items()]


def _metrics(result: dict, seconds: float) -> list[Metric]:
    """Finite numbers (not booleans) among the leaves of `result`, and the stage's seconds."""
    from mlflow.entities import Metric

    numbers = {k: float(v) for k, v in _flat(result) if isinstance(v, (int, float)) and not isinstance(v, bool)}
    numbers = {**{k: v for k, v in numbers.items() if math.isfinite(v)}, "seconds": float(seconds)}
    now = int(time.time() * 1000)
    return [Metric(_key(k), v, now, 0) for k, v in numbers.items()]


def _experiment(client: MlflowClient, name: str, artifact_location: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name, artifact_location)


def _stage_records(workdir: Path, stages: Iterable[str] | None, folders: Mapping[str, Path]) -> list[dict]:
    """The `stage.json` of the finished `stages` (default: every finished stage of `workdir`), each in its folder
    (`folders`, else `workdir/<stage>`), in the order they finished, with that folder under "folder"."""
    names = [p.parent.name for p in sorted(workdir.glob(f"*/{STAGE_FILE}"))] if stages is None else list(stages)
    records = []
    for name in names:
        folder = Path(folders.get(name, workdir / name)).resolve()
        if (folder / STAGE_FILE).is_file():
            records.append({**json.loads((folder / STAGE_FILE).read_text()), "folder": folder})
    return sorted(records, key=lambda record: record["finished"])


def _figures(folder: Path) -> list[Path]:
    """PNG figures of a stage folder (its own and those of its `eval` folder: sample and reconstruction grids) and its
    markdown report; not the per-image PNGs that inference writes elsewhere."""
    return sorted([*folder.glob("*.png"), *folder.glob("eval/*.png"), *folder.glob("*.md")])


def track_study(workdir: str | Path, tracking_uri: str | None = None, experiment: str = EXPERIMENT,
                stages: Iterable[str] | None = None, folders: Mapping[str, str | Path] | None = None) -> list[str]:  # fmt: skip
    """Log the finished `stages` of the study in `workdir` (default: every finished stage; `run_study` passes those of
    its run, with the `folders` of those kept outside `workdir`, e.g. baselines shared by several studies) as MLflow
    runs (module docstring); returns the names of the stages logged now. A stage run already logged (same fingerprint
    and run id: a `--force` rerun keeps its fingerprint but gets a new run id) is skipped."""
    from mlflow.tracking import MlflowClient

    workdir = Path(workdir).resolve()
    client = MlflowClient(tracking_uri or default_tracking_uri(workdir))
    experiment_id = _experiment(client, experiment, (workdir / "mlruns").as_uri())
    logged = []
    for record in _stage_records(workdir, stages, folders or {}):
        stage, digest, run = record["stage"], record["fingerprint"], record.get("run", record["fingerprint"])
        query = (f"tags.stage = '{stage}' and tags.fingerprint = '{digest}' and tags.run = '{run}' and "
                 f"tags.workdir = '{workdir}'")  # fmt: skip
        if client.search_runs([experiment_id], filter_string=query, max_results=1):
            continue
        result = record["result"]
        report = record["folder"] / "report.json"
        if stage == "report" and report.is_file():
            result = json.loads(report.read_text())
        run_id = client.create_run(experiment_id, run_name=stage,
                                   tags={"stage": stage, "fingerprint": digest, "run": run,
                                         "workdir": str(workdir)}).info.run_id
        client.log_batch(run_id, metrics=_metrics(result, record["seconds"]), params=_params(record))
        for path in _figures(record["folder"]):
            folder = path.parent.relative_to(record["folder"]).as_posix()
            client.log_artifact(run_id, str(path), None if folder == "." else folder)
        client.set_terminated(run_id)
        logged.append(stage)
    return logged
