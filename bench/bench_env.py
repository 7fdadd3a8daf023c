"""What the benchmarks share: a temporary work folder, offline model settings, quiet Airflow
logs, and a Weaviate: a private one on free loopback ports (the server binds its gRPC and
cluster ports on all interfaces itself, as the README says), or the one `weaviate_default`
names. Everything started here is stopped and removed on the way out, even on failure."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tempfile
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Callable, Iterator


def add_common_arguments(parser: argparse.ArgumentParser, results: Path) -> None:
    parser.add_argument("--out", type=Path, default=results, help="where the results file is written")
    parser.add_argument("--use-connection", action="store_true",
                        help="use the Weaviate of weaviate_default instead of starting a private one")


def log(message: str) -> None:
    """Progress: stderr, so stdout holds only the table and the JSON line."""
    print(message, file=sys.stderr, flush=True)


@contextmanager
def bench_environment(prefix: str, use_connection: bool, log: Callable[[str], None],
                      private_state: bool = True) -> Iterator[Path]:
    """Yields the work folder. `private_state`: Airflow's metadata DB and ragloop's state live in
    the work folder, not in the developer's `.ragloop/` (always so with a private Weaviate)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    if private_state or not use_connection:
        os.environ["RAGLOOP_STATE_DIR"] = str(work / "state")
        os.environ.pop("AIRFLOW_HOME", None)
        # The run store `ask` reads feedback from (hidden chunks, boosts, curated answers), as a
        # deployment has it: an SQLite file here. Without the connection, every ask would look
        # it up in a metadata DB the bench never migrates, fail, and answer without feedback.
        os.environ["AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT"] = json.dumps({"conn_type": "sqlite", "host": str(work / "runs.db")})
    from ragloop.local import localenv

    localenv.configure_airflow_env()
    server = None
    try:
        if not use_connection:
            from ragloop.local.weaviate_local import LocalWeaviate

            server = LocalWeaviate.with_free_ports(work / "weaviate")
            server.state_dir.mkdir(parents=True, exist_ok=True)
            server.start(timeout=120, progress=log)
            os.environ["AIRFLOW_CONN_WEAVIATE_DEFAULT"] = json.dumps({
                "conn_type": "weaviate", "host": "127.0.0.1", "port": server.http_port,
                "extra": {"grpc_host": "127.0.0.1", "grpc_port": server.grpc_port},
            })
        yield work
    finally:
        if server:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def git_commit(repo: Path | None = None) -> str:
    """The commit of `repo` (default: this checkout), for a results file; "" outside git."""
    repo = repo or Path(__file__).resolve().parent.parent
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()


def write_results(out: Path, prefix: str, result: dict) -> Path:
    """`result` as `<out>/<prefix>-<local time>.json`; prints and returns the path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(path)
    return path
