"""`ragloop ingest` as a user runs it with docs, Slack and GitHub sources configured: with no
--source it runs each type's DAG and prints one report of all three; --source routes to the DAG
of the source's type; `ragloop search` then finds the thread or issue by its URL."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import run_cli
from source_helpers import SAMPLES, write_sources

pytestmark = pytest.mark.integration


def test_ingest_routes_each_source_to_its_types_dag(tmp_path, airflow_db, weaviate_server, collection_name):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(SAMPLES / "docs" / "guides" / "webhooks.md", docs / "webhooks.md")
    config = write_sources(tmp_path, collection_name, [
        {"id": "docs", "type": "docs", "path": str(docs)},
        {"id": "slack", "type": "slack", "export": str(SAMPLES / "slack")},
        {"id": "github", "type": "github_issues", "repo": "fernwood/fernwood", "export": str(SAMPLES / "github" / "issues.json"),
         "labels_exclude": ["wontfix", "duplicate"]},
    ])

    everything = run_cli("ingest", "--config", str(config), "--json")
    assert everything.returncode == 0, everything.stderr[-3000:]
    report = json.loads(everything.stdout)
    assert [run["dag_id"] for run in report["runs"]] == ["ragloop_ingest_docs", "ragloop_ingest_slack", "ragloop_ingest_github_issues"]
    assert report["state"] == "success" and all(run["state"] == "success" for run in report["runs"])
    assert {sid: s["documents"]["new"] for sid, s in report["sources"].items()} == {"docs": 1, "slack": 6, "github": 4}
    assert report["collection_chunks"] == report["totals"]["written"]

    only_github = run_cli("ingest", "--config", str(config), "--source", "github", "--json")
    assert only_github.returncode == 0, only_github.stderr[-3000:]
    report = json.loads(only_github.stdout)
    assert list(report["sources"]) == ["github"] and report["sources"]["github"]["documents"]["unchanged"] == 4
    assert "through ragloop_ingest_github_issues" in only_github.stderr and "ragloop_ingest_docs" not in only_github.stderr

    # The hash embedder's vectors carry no meaning: keywords alone (--alpha 0).
    found = run_cli("search", "webhook retried forever after 410 Gone", "--config", str(config), "--kind", "github",
                    "--alpha", "0", "--json")
    assert found.returncode == 0, found.stderr[-3000:]
    hit = json.loads(found.stdout.splitlines()[0])
    assert hit["url"] == "https://github.com/fernwood/fernwood/issues/102"
    assert hit["text"].startswith("[Closed as completed on 2025-03-02]")
