"""Lineage: what an ingest or feedback task read and wrote, told to Airflow's hook-level lineage
collector (`airflow.sdk.lineage.get_hook_lineage_collector`). With the OpenLineage provider
installed and a transport configured, its listener turns them into the datasets of the task's
OpenLineage events; Airflow's own asset events (the report tasks' outlets) are untouched.

Datasets, named after the OpenLineage naming conventions where one exists:

- the collection written: `weaviate://<host>:<port>/<collection>` (namespace: the connection's
  endpoint, so two Weaviates with a collection of one name stay apart);
- a docs folder or export file: `file://<host>/<absolute path>` (Airflow's `file` converter);
- a docs git repository: `git://<host>/<path>`; a live Slack channel:
  `slack://<connection id>/<channel>`; a GitHub repository: `github://github.com/<owner>/<repo>`;
- a source of one's own: what its class's `lineage_uris()` returns, else `ragloop://source/<id>`;
- the run store: its SQLite file, or `ragloop://runs/<host>/<database>`.

ragloop's provider info registers the converters of its schemes (`asset_to_openlineage`).
Recording lineage never fails a task: a problem is logged and the task goes on.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ragloop.config import Config

log = logging.getLogger(__name__)

# The URI schemes whose OpenLineage datasets ragloop names (see provider.get_provider_info).
SCHEMES = ["weaviate", "git", "slack", "github", "ragloop"]


def collection_uri(weaviate_conn_id: str, collection: str) -> str:
    from ragloop.airflow.hooks.weaviate import RagloopWeaviateHook

    endpoint = RagloopWeaviateHook(weaviate_conn_id).endpoint()
    return f"weaviate://{endpoint.host}:{endpoint.http_port}/{collection}"


def _file_uri(path: Path) -> str:
    return f"file://{socket.gethostname()}{path.resolve()}"


def source_uris(config: Config, source_id: str, project_root: Path) -> list[str]:
    """The datasets one configured source reads."""
    source = config.source(source_id)
    source_type = source["type"]
    if source_type == "docs":
        if source.get("repo"):
            parts = urlsplit(source["repo"])
            host = parts.hostname or "local"
            return [f"git://{host}{parts.path or '/' + source['repo']}"]
        return [_file_uri(project_root / Path(source["path"]).expanduser())]
    if source.get("export"):
        return [_file_uri(project_root / Path(source["export"]).expanduser())]
    if source_type == "slack":
        return [f"slack://{source['connection']}/{channel}" for channel in source.get("channels") or ["all-channels"]]
    if source_type == "github_issues":
        return [f"github://github.com/{source['repo']}"]
    from ragloop.sources import source_class

    cls: Any = source_class(source_type)
    if hasattr(cls, "lineage_uris"):
        return list(cls(source, project_root).lineage_uris())
    return [f"ragloop://source/{source_id}"]


def runs_store_uri() -> str:
    import sqlalchemy as sa

    from ragloop.runs.connection import runs_database_url

    url = sa.make_url(runs_database_url())
    if url.get_backend_name() == "sqlite":
        return _file_uri(Path(url.database or ""))
    return f"ragloop://runs/{url.host or 'local'}{':' + str(url.port) if url.port else ''}/{url.database or ''}"


def _report(context: Any, inputs: list[str], outputs: list[str]) -> None:
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector

        collector = get_hook_lineage_collector()
        for uri in inputs:
            collector.add_input_asset(context, uri=uri)
        for uri in outputs:
            collector.add_output_asset(context, uri=uri)
    except Exception:
        log.exception("Recording lineage failed (inputs %s, outputs %s)", inputs, outputs)


def report_extract(config_path: str | None, source_id: str, weaviate_conn_id: str) -> None:
    """An extract task: the source's datasets in, the collection out."""
    try:
        from ragloop.config import load_config
        from ragloop.paths import project_root

        config = load_config(config_path)
        inputs, outputs = source_uris(config, source_id, project_root()), [collection_uri(weaviate_conn_id, config.collection)]
    except Exception:
        log.exception("Naming the lineage of source %s failed", source_id)
        return
    _report(_Context(f"ragloop source {source_id}"), inputs, outputs)


def report_write_back(config_path: str | None, weaviate_conn_id: str) -> None:
    """The write-back task: the run store in, the collection out."""
    try:
        from ragloop.config import load_config

        config = load_config(config_path)
        inputs, outputs = [runs_store_uri()], [collection_uri(weaviate_conn_id, config.collection)]
    except Exception:
        log.exception("Naming the lineage of write-back failed")
        return
    _report(_Context("ragloop write-back"), inputs, outputs)


class _Context:
    """The 'hook' a lineage entry is attributed to (the collector keys entries by it)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


def asset_to_openlineage(asset: Any, lineage_context: Any) -> Any:
    """The OpenLineage dataset of a ragloop URI: namespace `scheme://authority`, name the path."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parts = urlsplit(asset.uri)
    return Dataset(namespace=f"{parts.scheme}://{parts.netloc}", name=parts.path.lstrip("/") or "/")
