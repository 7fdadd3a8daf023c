"""What every ragloop DAG shares: owner, retries with backoff, tags."""

from __future__ import annotations

from datetime import timedelta

DEFAULT_ARGS = {
    "owner": "ragloop",
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}
TAGS = ["ragloop"]


def ingest_asset():
    """The asset ingest runs update: the configured collection. Read at parse time without
    validating (a mistake in sources.yaml must fail the run's first task with its message, not
    make the DAG vanish as an import error)."""
    from airflow.sdk import Asset

    collection = "RagloopChunks"
    try:
        import yaml

        from ragloop.config import default_config_path

        data = yaml.safe_load(default_config_path().read_text()) or {}
        if isinstance(data.get("collection"), str):
            collection = data["collection"]
    except Exception:  # noqa: BLE001 - any problem is reported by the run itself
        pass
    return Asset(name=f"ragloop_{collection}", uri=f"ragloop://weaviate/{collection}", group="ragloop")
