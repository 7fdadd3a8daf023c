"""The one list of ragloop's DAGs and assets: every DAG id, what every DAG shares (owner, retries
with backoff, tags), and the assets the DAGs update and are scheduled on."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

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

CHECK_DAG_ID = "ragloop_check"
GRADE_DAG_ID = "ragloop_grade_feedback"
# One ingest DAG per source type (the `type` of a source in sources.yaml).
INGEST_DAG_IDS = {
    "docs": "ragloop_ingest_docs",
    "slack": "ragloop_ingest_slack",
    "github_issues": "ragloop_ingest_github_issues",
}
INGEST_DAG_ID = INGEST_DAG_IDS["docs"]

RUNS_ASSET_NAME = "ragloop_runs"
RUNS_ASSET_URI = "ragloop://runs"


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
    return Asset(name=f"ragloop_{collection}", uri=f"ragloop://weaviate/{collection}", group="ragloop")


def runs_asset() -> Asset:
    """The asset a recorded run or vote updates; the grading DAG is scheduled on it."""
    from airflow.sdk import Asset  # Airflow's SDK is loaded when an asset is made, not when ids are read

    return Asset(name=RUNS_ASSET_NAME, uri=RUNS_ASSET_URI, group="ragloop")
