"""Where extracted documents wait between tasks: files under an Airflow `ObjectStoragePath`.

XCom carries only the paths and counts written here, never documents. The root is the
configuration's `staging:` (any fsspec URL Airflow's object storage understands, e.g.
`s3://bucket/ragloop` with `staging_conn_id:`), else `RAGLOOP_STAGING`, else
`file://<state dir>/staging`. Each DAG run gets its own folder; re-running a task rewrites the
same files, so retries converge.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any, Iterable, Iterator

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from ragloop.documents import Document

STAGING_ENV = "RAGLOOP_STAGING"
DOCS_PER_SHARD = 500  # documents per JSON-lines file: an index batch reads only the shards it needs
RUNS_KEPT = 5  # staged runs kept for clearing and re-running tasks; older ones are removed


def staging_root(url: str | None = None, conn_id: str | None = None) -> "ObjectStoragePath":
    from airflow.sdk import ObjectStoragePath

    url = url or os.environ.get(STAGING_ENV)
    if not url:
        from ragloop.localenv import state_dir

        url = f"file://{state_dir() / 'staging'}"
    return ObjectStoragePath(url, conn_id=conn_id) if conn_id else ObjectStoragePath(url)


def run_folder(root: "ObjectStoragePath", run_id: str) -> "ObjectStoragePath":
    # Run ids hold ':' and '+' (timestamps), which some stores dislike in keys.
    return root / re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)


def path(url: str) -> "ObjectStoragePath":
    """A staged file from the URL a task passed through XCom."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(url)


def write_json(target: "ObjectStoragePath", data: Any) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w") as handle:
        json.dump(data, handle, ensure_ascii=False, default=str)
    return str(target)


def read_json(url: str) -> Any:
    with path(url).open("r") as handle:
        return json.load(handle)


class ShardWriter:
    """Writes documents as JSON lines, DOCS_PER_SHARD per file, and says where each one went."""

    def __init__(self, folder: "ObjectStoragePath"):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._shard_number = -1
        self._handle = None
        self._lines = DOCS_PER_SHARD
        self.shards: list[str] = []

    def add(self, document: "Document") -> tuple[str, int]:
        if self._lines >= DOCS_PER_SHARD:
            self._next_shard()
        self._handle.write(json.dumps(document.to_json(), ensure_ascii=False) + "\n")
        self._lines += 1
        return self.shards[-1], self._lines - 1

    def _next_shard(self) -> None:
        if self._handle:
            self._handle.close()
        self._shard_number += 1
        shard = self.folder / f"documents-{self._shard_number:05d}.jsonl"
        self._handle = shard.open("w")
        self.shards.append(str(shard))
        self._lines = 0

    def close(self) -> None:
        if self._handle:
            self._handle.close()
            self._handle = None


def read_documents(locations: Iterable[tuple[str, int]]) -> Iterator[tuple[tuple[str, int], "Document"]]:
    """The staged documents at (shard URL, line) locations, reading each shard once."""
    from ragloop.documents import Document

    wanted: dict[str, set[int]] = {}
    for shard, line in locations:
        wanted.setdefault(shard, set()).add(line)
    for shard in sorted(wanted):
        lines = wanted[shard]
        with path(shard).open("r") as handle:
            for number, raw in enumerate(handle):
                if number in lines:
                    yield (shard, number), Document.from_json(json.loads(raw))


def remove_old_runs(root: "ObjectStoragePath", keep: int = RUNS_KEPT) -> int:
    """Remove all but the `keep` most recently written run folders."""
    if not root.exists():
        return 0
    runs = [folder for folder in root.iterdir() if folder.is_dir()]
    runs.sort(key=lambda folder: folder.stat().get("mtime", 0) or folder.stat().get("created", 0))
    removed = 0
    for folder in runs[:-keep] if keep else runs:
        folder.rmdir(recursive=True)
        removed += 1
    return removed
