"""Slack workspace exports and GitHub issue exports: the bundled samples through the ingest DAGs
into real Weaviate (and search over them), malformed day files and records named with the rest
indexed, a missing users.json, a zipped export, and the config checks that name the key."""

from __future__ import annotations

import json
import logging
import shutil
import zipfile

import pytest

from source_helpers import SAMPLES, document_text, indexed, run_ingest_dag, run_pipeline, write_sources

SLACK_SAMPLE_THREADS = 6  # threads with people's messages in include/samples/slack
GITHUB_SAMPLE_KEPT = {101, 102, 106, 107}  # 103 wontfix, 104 duplicate, 105 a pull request


def sample_sources(slack_export=None, github_export=None) -> list[dict]:
    return [
        {"id": "samples-slack", "type": "slack", "export": str(slack_export or SAMPLES / "slack")},
        {"id": "samples-github", "type": "github_issues", "repo": "fernwood/fernwood",
         "export": str(github_export or SAMPLES / "github" / "issues.json"), "labels_exclude": ["wontfix", "duplicate"]},
    ]


@pytest.mark.integration
def test_bundled_exports_ingest_through_the_dags_and_are_searchable(tmp_path, airflow_db, weaviate_server, weaviate_client, collection_name):
    from ragloop.embedding import make_embedder
    from ragloop.index import search

    config = write_sources(tmp_path, collection_name, sample_sources())
    slack_report, slack_run = run_ingest_dag("ragloop_ingest_slack", config)
    github_report, github_run = run_ingest_dag("ragloop_ingest_github_issues", config)
    assert slack_run.state == github_run.state == "success"
    slack = slack_report["sources"]["samples-slack"]
    assert slack["documents"]["new"] == SLACK_SAMPLE_THREADS and slack["documents"]["failed"] == 0
    assert slack["prune"] == "done"  # an export is a complete listing
    github = github_report["sources"]["samples-github"]
    assert github["documents"]["new"] == len(GITHUB_SAMPLE_KEPT) and github["documents"]["skipped"] == 3
    chunks = indexed(weaviate_client, collection_name)
    assert {d for d in chunks if d.startswith("samples-github:")} == {f"samples-github:fernwood/fernwood#{n}" for n in GITHUB_SAMPLE_KEPT}
    traefik = chunks["samples-slack:C01FERNHELP/1740993120.000000"]
    assert "**marco.b** · 2025-03-03 09:12 UTC" in document_text(traefik)  # display names from users.json

    embedder = make_embedder("hash")  # its vectors carry no meaning: search by keywords alone (alpha 0)
    hits = search(weaviate_client, collection_name, embedder, "Traefik readTimeout stream interrupted every 60 seconds",
                  limit=3, kinds=["slack"], alpha=0)
    assert hits[0].url == "https://app.slack.com/client/T0FERNWOOD/C01FERNHELP/thread/C01FERNHELP-1740993120.000000"
    hits = search(weaviate_client, collection_name, embedder, "webhook deliveries retried forever after 410 Gone",
                  limit=3, kinds=["github"], alpha=0)
    assert hits[0].url == "https://github.com/fernwood/fernwood/issues/102"
    assert hits[0].text.startswith("[Closed as completed on 2025-03-02] Webhook deliveries retried forever after 410 Gone")

    # A second run changes nothing.
    slack_report, _ = run_ingest_dag("ragloop_ingest_slack", config)
    assert slack_report["sources"]["samples-slack"]["documents"]["unchanged"] == SLACK_SAMPLE_THREADS
    assert slack_report["totals"]["written"] == 0


@pytest.mark.integration
def test_malformed_exports_name_file_and_record_and_the_rest_is_indexed(tmp_path, airflow_db, weaviate_server, weaviate_client, collection_name):
    export = tmp_path / "slack"
    shutil.copytree(SAMPLES / "slack", export)
    (export / "help" / "2025-03-06.json").write_text('[{"type": "message", "ts": "1741258800.000000", "text": "cut off')
    day = export / "general" / "2025-03-02.json"
    day.write_text(json.dumps([*json.loads(day.read_text()), {"type": "message", "text": "no ts"}]))
    issues = json.loads((SAMPLES / "github" / "issues.json").read_text())
    issues.insert(1, "not an issue")
    issues.insert(3, {**issues[2], "number": "one hundred"})
    issues_file = tmp_path / "issues.json"
    issues_file.write_text(json.dumps(issues))
    config = write_sources(tmp_path, collection_name, sample_sources(export, issues_file))

    slack = run_pipeline(config, "slack", "malformed-slack")["sources"]["samples-slack"]
    failures = {f["item"]: f["reason"] for f in slack["failures"]}
    assert failures.keys() == {"help/2025-03-06.json", "general/2025-03-02.json record 2"}
    assert "malformed day file" in failures["help/2025-03-06.json"] and "not a message with a ts" in failures["general/2025-03-02.json record 2"]
    assert slack["documents"]["new"] == SLACK_SAMPLE_THREADS - 1  # the WebAssembly thread was in the broken file
    assert "incomplete" in slack["prune"]

    github = run_pipeline(config, "github_issues", "malformed-github")["sources"]["samples-github"]
    failures = {f["item"]: f["reason"] for f in github["failures"]}
    assert failures == {
        f"{issues_file} record 1": "not an issue object but str",
        f"{issues_file} record 3 (#one hundred)": "number must be an integer, not 'one hundred'",
    }
    assert github["documents"]["new"] == len(GITHUB_SAMPLE_KEPT)
    documents = indexed(weaviate_client, collection_name)
    assert len([d for d in documents if d.startswith("samples-github:")]) == len(GITHUB_SAMPLE_KEPT)


def test_missing_users_json_falls_back_to_user_ids_with_a_warning(tmp_path, caplog):
    from ragloop.sources import ExtractReport, make_source

    export = tmp_path / "slack"
    shutil.copytree(SAMPLES / "slack", export)
    (export / "users.json").unlink()
    source = make_source({"id": "s", "type": "slack", "export": str(export)}, tmp_path)
    report = ExtractReport("s")
    with caplog.at_level(logging.WARNING, logger="ragloop.sources.slack"):
        documents = list(source.read(report, {}))
    assert any("no users.json" in r.getMessage() and "user id" in r.getMessage() for r in caplog.records)
    assert len(documents) == SLACK_SAMPLE_THREADS and not report.failed
    assert "**U02MARCO** · 2025-03-03 09:12 UTC" in documents[0].content


def test_zipped_export_reads_like_the_folder(tmp_path):
    from ragloop.sources import ExtractReport, make_source

    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in (SAMPLES / "slack").rglob("*.json"):
            zipped.write(path, "Fernwood Slack export/" + path.relative_to(SAMPLES / "slack").as_posix())
    folder = list(make_source({"id": "s", "type": "slack", "export": str(SAMPLES / "slack")}, tmp_path).read(ExtractReport("s"), {}))
    zipped = list(make_source({"id": "s", "type": "slack", "export": str(archive)}, tmp_path).read(ExtractReport("s"), {}))
    assert [d.content_hash for d in zipped] == [d.content_hash for d in folder]


@pytest.mark.parametrize(("source", "key_line", "message"), [
    ({"type": "slack", "channels": ["help"], "connection": "slack_api_default", "export": "include/samples/slack"},
     "export", "needs exactly one of 'connection'"),
    ({"type": "slack", "channels": ["help"]}, "id", "needs exactly one of 'connection'"),
    ({"type": "slack", "connection": "slack_api_default"}, "id", "a live Slack source needs channels"),  # at the source: the key is missing
    ({"type": "slack", "export": "include/samples/slack", "lookback_days": -1}, "lookback_days", "lookback_days must be a whole number"),
    ({"type": "github_issues", "repo": "fernwood", "connection": "github_default"}, "repo", "repo must be owner/name"),
    ({"type": "github_issues", "repo": "a/b", "connection": "github_default", "states": ["merged"]}, "states", "states has 'merged'"),
    ({"type": "github_issues", "repo": "a/b", "export": "no/such/issues.json"}, "export", "no/such/issues.json does not exist"),
    ({"type": "github_issues", "repo": "a/b", "connection": "github_default", "min_comments": "2"}, "min_comments", "min_comments must be int"),
], ids=["both", "neither", "live-without-channels", "lookback", "repo", "states", "export-missing", "min-comments-type"])
def test_config_errors_name_the_key(tmp_path, source, key_line, message):
    import yaml

    from ragloop.config import ConfigError, load_config

    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({"collection": "C", "sources": [{"id": "x", **source}]}, sort_keys=False))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    lines = path.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if text.strip().lstrip("- ").startswith(f"{key_line}:"))
    assert f"{path}:{line}:" in str(raised.value) and message in str(raised.value)
