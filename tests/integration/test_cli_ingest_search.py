"""`ragloop ingest` and `ragloop search` as a user runs them: a bad sources.yaml stops before
anything runs; the samples ingest with the local model; a second run embeds nothing; search
finds the documents that answer sample questions."""

from __future__ import annotations

import json

import pytest

from conftest import REPO, copy_samples, run_cli, write_config

pytestmark = pytest.mark.integration

# Questions whose answers live in one sample document (see include/samples/docs/).
QUESTIONS = {
    "How much clock skew is allowed when verifying a webhook timestamp?": "docs:guides/webhooks.md",
    "Which signal makes fernd reopen its log files?": "docs:configuration/logging.rst",
    "What does exit status 4 mean when the server will not start?": "docs:troubleshooting/server-wont-start.md",
    "How long does an old SDK key keep working after rotation?": "docs:api/authentication-tokens.md",
    "How many flags can one batch evaluate request ask for?": "docs:api/evaluate-endpoint.md",
}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, airflow_db, weaviate_server):
    folder = tmp_path_factory.mktemp("cli-ingest")
    docs = copy_samples(folder)
    config = write_config(folder, "CliSamples", docs, source={"exclude": ["**/changelog*"]})
    first = run_cli("ingest", "--config", str(config), "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    return config, json.loads(first.stdout), first.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("collection: Docs\nsources:\n  - id: a\n    type: docs\n    path: {docs}\n    colour: blue\n", r":6: source 'a': unknown key 'colour'"),
        ("collection: Docs\nsources:\n  - id: a\n    type: wiki\n    path: {docs}\n", r":4: .*source 'a' has unknown type 'wiki'"),
        ("collection: Docs\nsources:\n  - id: a\n    type: docs\n    path: no/such/folder\n", r":5: .*no/such/folder"),
    ],
    ids=["unknown-key", "unknown-type", "missing-path"],
)
def test_bad_config_is_named_before_anything_runs(tmp_path, text, expected, weaviate_server):
    import re

    config = tmp_path / "sources.yaml"
    config.write_text(text.format(docs=REPO / "include" / "samples" / "docs"))
    result = run_cli("ingest", "--config", str(config))
    assert result.returncode == 1
    assert re.search(str(config) + expected, result.stderr), result.stderr[-2000:]
    assert "dag.test" not in result.stderr  # it stopped before starting the run


def test_cli_ingest_reports_and_second_run_embeds_nothing(ingested):
    config, first, progress = ingested
    # Progress while it runs (stderr), and none of Airflow's noise that reads like a failure.
    assert "docs: 35 documents staged" in progress and "batch 1/" in progress, progress[-2000:]
    assert "XCom not found" not in progress and "No tasks to run" not in progress
    source = first["sources"]["docs"]
    assert first["state"] == "success" and source["documents"]["new"] == 35
    assert first["collection_chunks"] == source["chunks"]["written"] > 35
    second = run_cli("ingest", "--config", str(config), "--json")
    assert second.returncode == 0, second.stderr[-3000:]
    report = json.loads(second.stdout)
    assert report["totals"]["embedded"] == 0 and report["totals"]["written"] == 0
    assert report["sources"]["docs"]["documents"]["unchanged"] == 35
    text = run_cli("ingest", "--config", str(config))
    assert "docs" in text.stdout and "embedded 0" in text.stdout
    assert "Plan: 0 documents to index" in text.stderr and "No tasks to run" not in text.stderr


def test_search_json_names_the_answering_document(ingested):
    config, _, _ = ingested
    for question, expected in QUESTIONS.items():
        result = run_cli("search", question, "--config", str(config), "--limit", "3", "--json")
        assert result.returncode == 0, result.stderr[-2000:]
        hits = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(hits) == 3
        assert set(hits[0]) >= {"doc_id", "url", "title", "source_id", "kind", "score", "text"}
        assert expected in [h["doc_id"] for h in hits], (question, [h["doc_id"] for h in hits])
    filtered = run_cli("search", "webhook", "--config", str(config), "--kind", "slack", "--json")
    assert filtered.returncode == 0 and filtered.stdout.strip() == ""
    text = run_cli("search", "Which signal reopens the log files?", "--config", str(config))
    assert "https://docs.example/configuration/logging.rst" in text.stdout
