"""Where extracted documents wait between tasks: files under an Airflow `ObjectStoragePath`.

XCom carries only the paths and counts written here, never documents. The root is the
configuration's `staging:` (any fsspec URL Airflow's object storage understands, e.g.
`s3://bucket/ragloop` with `staging_conn_id:`), else `RAGLOOP_STAGING`, else
`file://<state dir>/staging`. Each DAG run gets its own folder, keyed by the DAG id *and* the
run id: the scheduler gives every nightly DAG the same run id (`scheduled__<date>`), so a folder
keyed by the run id alone would be shared by three ingest DAGs and a grading DAG at once.
Re-running a task rewrites the same files, so retries converge.

Clean-up removes only folders of finished runs of the same DAG: a run writes `run.json` when it
starts staging and `finished.json` when its last task is done, and a folder without the second
belongs to a run that may still be reading it (unless Airflow says that run has ended).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, UTC
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Iterable, Iterator

from ragloop.errors import ConnectionProblem, RagloopError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from ragloop.documents import Document

STAGING_ENV = "RAGLOOP_STAGING"
DOCS_PER_SHARD = 500  # documents per JSON-lines file: an index batch reads only the shards it needs
RUNS_KEPT = 5  # finished runs kept per DAG for clearing and re-running tasks; older ones are removed
RUN_MANIFEST = "run.json"
FINISHED_MARKER = "finished.json"
FINISHED_STATES = {"success", "failed"}

log = logging.getLogger(__name__)


class StagingError(RagloopError):
    """The staging store failed (unreachable, refused, a missing connection); the message names
    the URL and the connection, and the task fails so that its retry starts over."""


_CHECKED_CONNECTIONS: set[str] = set()


def check_connection(conn_id: str) -> None:
    """The staging connection must exist: the object-store filesystems of Airflow's providers
    fall back to anonymous or ambient credentials when it does not, which would stage somewhere
    else, or nowhere, without a word."""
    if conn_id in _CHECKED_CONNECTIONS:
        return
    from ragloop.airflow.connections import get_connection  # through Airflow's secrets backends

    try:
        get_connection(conn_id)
    except ConnectionProblem as err:
        raise StagingError(f"staging connection {conn_id!r}: {err}") from None
    _CHECKED_CONNECTIONS.add(conn_id)


@contextmanager
def _store(action: str, where: Any) -> Iterator[None]:
    """Say which staged object failed, whatever the filesystem raised."""
    try:
        yield
    except StagingError:
        raise
    except Exception as err:
        raise StagingError(f"staging store: {action} {where} failed: {type(err).__name__}: {err}") from err


@dataclass(frozen=True)
class DagRunRef:
    """The Airflow DAG run a staged folder belongs to. Both parts are needed: scheduled runs of
    different DAGs share run ids."""

    dag_id: str
    run_id: str

    @classmethod
    def from_context(cls, dag_run: Any) -> DagRunRef:
        """From the `dag_run` a task receives in its context."""
        return cls(dag_run.dag_id, dag_run.run_id)


def safe_key(name: str) -> str:
    """`name` as one object-store key segment that cannot leave its folder.

    Characters outside [A-Za-z0-9._-] become `_` (run ids hold ':' and '+', which some stores
    dislike), leading dots go (no `.`, `..` or hidden folders), and a short hash of the original
    keeps two names that read alike apart (`a:b` and `a+b`)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")[:80] or "_"
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{readable}-{digest}"


def staging_root(url: str | None = None, conn_id: str | None = None) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    url = url or os.environ.get(STAGING_ENV)
    if not url:
        from ragloop.paths import state_dir

        url = f"file://{state_dir() / 'staging'}"
    if conn_id:
        check_connection(conn_id)
        return ObjectStoragePath(url, conn_id=conn_id)
    return ObjectStoragePath(url)


def dag_folder(root: ObjectStoragePath, dag_id: str) -> ObjectStoragePath:
    return root / safe_key(dag_id)


def run_folder(root: ObjectStoragePath, dag_run: DagRunRef) -> ObjectStoragePath:
    """The run's own folder, `<root>/<dag id>/<run id>` (each made safe); records which run it is."""
    folder = dag_folder(root, dag_run.dag_id) / safe_key(dag_run.run_id)
    manifest = folder / RUN_MANIFEST
    with _store("checking", manifest):
        exists = manifest.exists()
    if not exists:
        write_json(manifest, {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id, "created_at": datetime.now(UTC).isoformat()})
    return folder


def mark_finished(root: ObjectStoragePath, dag_run: DagRunRef) -> None:
    """The run's last task is done with its folder: clean-up may now remove it."""
    write_json(run_folder(root, dag_run) / FINISHED_MARKER, {"finished_at": datetime.now(UTC).isoformat()})


def path(url: str) -> ObjectStoragePath:
    """A staged file from the URL a task passed through XCom."""
    from airflow.sdk import ObjectStoragePath

    staged = ObjectStoragePath(url)
    if staged.conn_id:
        check_connection(staged.conn_id)
    return staged


def write_json(target: ObjectStoragePath, data: Any) -> str:
    # dumps, not dump: json.dump always takes the pure-Python encoder, dumps the C one (a plan's
    # batch files took 2.8 s of a 35 s hash-embedder ingest of 15,249 chunks with dump).
    text = json.dumps(data, ensure_ascii=False, default=str)
    with _store("writing", target):
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w") as handle:
            handle.write(text)
    return str(target)


def read_json(url: str) -> Any:
    with _store("reading", url), path(url).open("r") as handle:
        text = handle.read()
    return json.loads(text)


class ShardWriter:
    """Writes documents as JSON lines, DOCS_PER_SHARD per file, and says where each one went."""

    def __init__(self, folder: ObjectStoragePath):
        self.folder = folder
        with _store("creating", folder):
            self.folder.mkdir(parents=True, exist_ok=True)
        self._shard_number = -1
        self._handle: Any = None  # the open shard (a file-like object of the store)
        self._pending: list[str] = []  # the open shard's lines, written when it closes
        self._lines = DOCS_PER_SHARD
        self.shards: list[str] = []

    def add(self, document: Document) -> tuple[str, int]:
        if self._lines >= DOCS_PER_SHARD:
            self._next_shard()
        # Lines are kept and written once per shard: each write through the object store's file
        # object costs a wrapper call and a syscall (1.1 s of a no-change run's 9 s at 26k files),
        # and an object store sends the object only when the handle closes anyway.
        with _store("writing", self.shards[-1]):  # a value JSON cannot hold fails naming the shard, as before
            self._pending.append(json.dumps(document.to_json(), ensure_ascii=False))
        self._lines += 1
        return self.shards[-1], self._lines - 1

    def _next_shard(self) -> None:
        self.close()
        self._shard_number += 1
        shard = self.folder / f"documents-{self._shard_number:05d}.jsonl"
        with _store("writing", shard):
            self._handle = shard.open("w")
        self.shards.append(str(shard))
        self._lines = 0

    def close(self) -> None:
        # An object store writes the object when the handle closes: that is where it fails.
        if self._handle:
            handle, self._handle = self._handle, None
            pending, self._pending = self._pending, []
            with _store("writing", self.shards[-1]):
                try:
                    if pending:
                        handle.write("\n".join(pending) + "\n")
                finally:
                    handle.close()


def read_documents(locations: Iterable[tuple[str, int]]) -> Iterator[tuple[tuple[str, int], Document]]:
    """The staged documents at (shard URL, line) locations, reading each shard once."""
    from ragloop.documents import Document

    wanted: dict[str, set[int]] = {}
    for shard, line in locations:
        wanted.setdefault(shard, set()).add(line)
    for shard in sorted(wanted):
        lines = wanted[shard]
        # Read the whole shard before yielding any of it: a store that fails half way fails the
        # task before a single document of a half-read shard is used.
        with _store("reading", shard), path(shard).open("r") as handle:
            raws = [(number, raw) for number, raw in enumerate(handle) if number in lines]
        for number, raw in raws:
            yield (shard, number), Document.from_json(json.loads(raw))


def airflow_run_state(dag_run: DagRunRef) -> str | None:
    """The state Airflow holds for a DAG run, asked through the Task SDK from inside a task; None
    outside a task or when Airflow has no such run."""
    try:
        from airflow.sdk.execution_time import task_runner

        if getattr(task_runner, "SUPERVISOR_COMMS", None) is None:
            return None
        state = task_runner.RuntimeTaskInstance.get_dagrun_state(dag_id=dag_run.dag_id, run_id=dag_run.run_id)
    except Exception as err:  # noqa: BLE001 - a run deleted from the metadata DB, an older Airflow: not known
        log.debug("No state for %s/%s: %s", dag_run.dag_id, dag_run.run_id, err)
        return None
    return str(getattr(state, "value", state)) if state else None


def remove_old_runs(
    root: ObjectStoragePath,
    dag_run: DagRunRef,
    keep: int = RUNS_KEPT,
    run_state: Callable[[DagRunRef], str | None] = airflow_run_state,
) -> int:
    """Remove the folders of finished runs of `dag_run`'s DAG, all but the `keep` most recent.

    A run is finished when its folder has the finished marker, or when Airflow says it ended
    (a run that failed before its last task). Any other folder may belong to a run still
    reading it, and stays. Folders of other DAGs are never touched."""
    folder = dag_folder(root, dag_run.dag_id)
    if not folder.exists():
        return 0
    finished: list[tuple[str, ObjectStoragePath]] = []
    for run in folder.iterdir():
        if not run.is_dir():
            continue
        marker = run / FINISHED_MARKER
        if marker.exists():
            finished.append((read_json(str(marker)).get("finished_at", ""), run))
            continue
        manifest = run / RUN_MANIFEST
        if not manifest.exists():
            continue  # being created right now: its manifest comes first, so this is a young run
        about = read_json(str(manifest))
        if about.get("run_id") == dag_run.run_id:
            continue
        if run_state(DagRunRef(about["dag_id"], about["run_id"])) in FINISHED_STATES:
            finished.append((about.get("created_at", ""), run))
    finished.sort(key=lambda pair: pair[0])
    removed = 0
    for _, run in finished[:-keep] if keep else finished:
        if run.name == safe_key(dag_run.run_id):
            continue
        run.rmdir(recursive=True)
        removed += 1
    return removed
