"""Claims of docs/operations.md held to the code: which tasks have a `max_active_tis_per_dagrun`
limit (index and grade: 4; extract: none), and what an untested staging scheme does."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_mapped_task_limits_are_what_operations_md_says():
    from airflow.sdk import DAG

    from ragloop.airflow.task_groups import grade_runs, ingest_sources

    with DAG("claims", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        ingest_sources(group_id="docs", source_type="docs")
        grade_runs()
    limits = {task.task_id: task.max_active_tis_per_dagrun for task in dag.tasks}
    assert limits["docs.index"] == 4 and limits["grade_runs.grade"] == 4, limits
    assert limits["docs.extract"] is None, limits
    page = (REPO / "docs" / "operations.md").read_text()
    assert "4 on the index\n  and the grade tasks" in page and "The extract task, mapped per\n  source, has no limit" in page


def test_an_untested_staging_scheme_fails_naming_the_missing_package():
    """operations.md: gs:// and abfs:// need a provider and filesystem package ragloop does not
    install, and the first write says so (a StagingError naming the URL), never a silent fall-back."""
    import pytest

    from ragloop.staging import StagingError, staging_root, write_json

    with pytest.raises(StagingError, match=r"writing gs://bucket/ragloop/probe.json failed: ImportError: .*gcsfs"):
        write_json(staging_root("gs://bucket/ragloop") / "probe.json", {"probe": True})
    page = (REPO / "docs" / "operations.md").read_text()
    assert "(s3://, gs://, abfs://)" not in page and "Please install gcsfs" in page
    assert "Either executor works" not in page
