"""What every ragloop DAG declares to Airflow: the shared defaults (owner, retries with backoff,
tags) and the assets the DAGs update and are scheduled on, built as Airflow `Asset`s from the
names in ragloop/catalog.py (the core's plain strings)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from ragloop.catalog import INGEST_ASSET_PREFIX, INGEST_ASSET_URI_PREFIX, RUNS_ASSET_NAME, RUNS_ASSET_URI

if TYPE_CHECKING:
    from airflow.sdk import Asset

DEFAULT_ARGS = {
    "owner": "ragloop",
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}
TAGS = ["ragloop"]


def ingest_asset(config_path: str | None = None) -> Asset:
    """The asset ingest runs update: the collection of `config_path` (default: the project's
    sources.yaml). Read at parse time without
    validating (a mistake in sources.yaml must fail the run's first task with its message, not
    make the DAG vanish as an import error)."""
    from airflow.sdk import Asset

    collection = "RagloopChunks"
    try:
        import yaml

        from ragloop.config import default_config_path

        from pathlib import Path

        path = Path(config_path) if config_path else default_config_path()
        data = yaml.safe_load(path.read_text()) or {}
        if isinstance(data.get("collection"), str):
            collection = data["collection"]
    except Exception:  # noqa: BLE001 - any problem is reported by the run itself
        pass
    return Asset(name=f"{INGEST_ASSET_PREFIX}{collection}", uri=f"{INGEST_ASSET_URI_PREFIX}{collection}", group="ragloop")


def runs_asset() -> Asset:
    """The asset a recorded run or vote updates; the grading DAG is scheduled on it."""
    from airflow.sdk import Asset  # Airflow's SDK is loaded when an asset is made, not when ids are read

    return Asset(name=RUNS_ASSET_NAME, uri=RUNS_ASSET_URI, group="ragloop")
