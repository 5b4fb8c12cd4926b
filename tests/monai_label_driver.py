"""Driver of tests/test_monai_label_server.py, run with the MONAI Label environment's Python
(scripts/setup_monailabel_env.sh): starts the real MONAI Label server (the Zoo/bundle app, `--conf models` = the
exported bundle folders in `<app>/model`) on 127.0.0.1 at a free port, waits for it, and through MONAI Label's Python
client (`monailabel.client.MONAILabelClient`) lists the models and the study images, runs every model on every image
(label maps requested as NIfTI),
saves one answer back as the image's `final` label and downloads it again; then stops the server. Everything it got
goes to `--out` (driver.json, answers/, server.log) for the test to check in the core environment.

    .venv-monailabel/bin/python tests/monai_label_driver.py --app APP --studies STUDIES --models a,b --out OUT
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from monailabel.client import MONAILabelClient


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(client: MONAILabelClient, server: subprocess.Popen, deadline: float, log: Path) -> dict:
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"MONAI Label server exited with code {server.returncode}; see {log}")
        try:
            return client.info()
        except Exception:  # not listening yet
            time.sleep(0.5)
    raise SystemExit(f"MONAI Label server did not answer within the time limit; see {log}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", required=True)
    parser.add_argument("--studies", required=True)
    parser.add_argument("--models", required=True, help="comma-separated bundle folders in <app>/model")
    parser.add_argument("--out", required=True)
    parser.add_argument("--extensions", default='["*.nii.gz", "*.nii", "*.mhd"]', help="study image patterns (JSON)")
    parser.add_argument("--startup_s", type=float, default=120.0)
    args = parser.parse_args()
    out = Path(args.out)
    (out / "answers").mkdir(parents=True, exist_ok=True)
    port, log = _free_port(), out / "server.log"
    command = [sys.executable, "-m", "monailabel.main", "start_server", "--app", args.app, "--studies", args.studies,
               "--host", "127.0.0.1", "--port", str(port), "--conf", "models", args.models,
               "--conf", "zoo_source", "local", "--conf", "sam2", "false", "--conf", "skip_trainers", "true"]  # fmt: skip
    env = {**os.environ, "MONAI_LABEL_SESSION_PATH": str(out / "sessions"), "MONAI_LABEL_AUTO_UPDATE_SCORING": "false",
           "MONAI_LABEL_DATASTORE_FILE_EXT": args.extensions}  # fmt: skip
    started = time.monotonic()
    with open(log, "w") as log_file:
        server = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        try:
            client = MONAILabelClient(f"http://127.0.0.1:{port}", tmpdir=str(out / "client"))
            info = _wait_for(client, server, started + args.startup_s, log)
            ready_s = time.monotonic() - started
            images = sorted(client.datastore()["objects"])
            answers = []
            for model in args.models.split(","):
                for image_id in images:
                    begin = time.monotonic()
                    # a .mhd answer would be a header whose .raw stays on the server: ask for NIfTI
                    request = {"device": "cpu", "result_extension": ".nii.gz"}
                    result_file, result_json = client.infer(model, image_id, request)
                    if isinstance(result_json, bytes):  # the client leaves a JSON-only answer (a class) undecoded
                        result_json = json.loads(result_json)
                    kept = None
                    if result_file:
                        kept = out / "answers" / f"{model}__{image_id}{''.join(Path(result_file).suffixes)}"
                        shutil.move(result_file, kept)
                    answers.append({"model": model, "image": image_id, "result_file": str(kept) if kept else None,
                                    "result_json": result_json, "seconds": time.monotonic() - begin})  # fmt: skip
            first = next((a for a in answers if a["result_file"]), None)
            if first is None:
                raise SystemExit(f"no model of {args.models} answered with a label file; see {log}")
            saved = client.save_label(first["image"], first["result_file"], tag="final")
            labels = client.datastore()["objects"][first["image"]]["labels"]
            downloaded = client.download_label(first["image"], "final")
            round_trip = {"image": first["image"], "uploaded": first["result_file"], "response": saved,
                          "datastore_labels": sorted(labels),
                          "downloaded_equal": Path(downloaded).read_bytes() == Path(first["result_file"]).read_bytes()}  # fmt: skip
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    summary = {"info_models": {k: {"type": v.get("type"), "labels": v.get("labels"), "dimension": v.get("dimension")}
                               for k, v in info["models"].items()},
               "images": images, "answers": answers, "saved_label": round_trip, "ready_s": ready_s,
               "total_s": time.monotonic() - started, "port": port}  # fmt: skip
    (out / "driver.json").write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
