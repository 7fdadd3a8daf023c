"""The live GitHub issues source through the real PyGithub client (the provider's GithubHook, its
host pointing at a local server speaking the REST API), ingested by the
`ragloop_ingest_github_issues` DAG into real Weaviate: pagination, a 429 with Retry-After, the
config's filters, an incremental run that lists only issues updated since the watermark, an
edited issue re-indexed with only its changed chunks embedded, a failure mid-pagination that
leaves the watermark in place, and a full-listing run that prunes a deleted issue."""

from __future__ import annotations

from datetime import datetime, timedelta, UTC

import pytest

from source_helpers import document_text, indexed, run_ingest_dag, run_pipeline, watermarks, write_sources
from wire_github import GithubWireServer, iso

pytestmark = pytest.mark.integration

REPO = "fernwood/fernwood"
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
LONG_BODY = "\n\n".join(
    f"### Step {n}\n\nRun `fernd backup --target s3://bucket/{n}` and check that the archive holds the ruleset "
    f"of every environment; step {n} fails when the bucket policy denies PutObject, with error code E{n}00."
    for n in range(1, 5)
)


@pytest.fixture
def github(monkeypatch):
    with GithubWireServer(REPO, page_size=3) as server:
        monkeypatch.setenv("AIRFLOW_CONN_GITHUB_WIRE", server.connection_json())
        yield server


def doc_id(number: int) -> str:
    return f"issues:{REPO}#{number}"


def test_live_github_issues_incremental_to_the_chunk(tmp_path, github, airflow_db, weaviate_server, weaviate_client, collection_name):
    hour = timedelta(hours=1)
    for number in range(1, 6):
        github.add_issue(number, f"Issue number {number}", f"<!-- template -->\nSomething {number} broke.\n\n### Logs\n\n_No response_\n",
                         BASE + number * hour)
    github.add_comment(2, "ingrid-s", "Fixed on main.", BASE + 2 * hour)
    github.add_comment(2, "github-actions[bot]", "This issue is stale.", BASE + 2 * hour)
    github.edit_issue(4, BASE + 4 * hour, body=LONG_BODY, title="Backups to S3 fail")
    github.add_issue(6, "Stop retrying 410s", "Fixes #2.", BASE + 6 * hour, pull_request=True)
    github.add_issue(7, "Webhooks retried forever", "After a 410.", BASE + 7 * hour, state="closed",
                     state_reason="completed", closed=BASE + 7 * hour)
    github.add_issue(8, "Add MySQL", "Please.", BASE + 7.5 * hour, labels=["wontfix"])
    github.fail("issues", 429, "API rate limit exceeded", after=1, headers={"Retry-After": "1"})
    config = write_sources(tmp_path, collection_name, [{
        "id": "issues", "type": "github_issues", "repo": REPO, "connection": "github_wire",
        "include_pull_requests": False, "labels_exclude": ["wontfix"], "chunking": {"max_tokens": 64, "overlap_tokens": 0},
    }])

    # 1. First run: three pages (one refused with a 429 and retried), the filters applied.
    report, result = run_ingest_dag("ragloop_ingest_github_issues", config)
    source = report["sources"]["issues"]
    assert result.state == "success"
    assert source["documents"]["new"] == 6 and source["documents"]["skipped"] == 2 and source["documents"]["failed"] == 0
    assert sorted(s["item"] for s in source["skipped_items"]) == [f"{REPO}#6", f"{REPO}#8"]
    listing = github.calls("issues")
    assert [q.get("page") for q in listing] == [None, "2", "2", "3"]
    assert all(q["state"] == "all" and q["sort"] == "updated" and "since" not in q for q in listing)
    assert len(github.calls("comments")) == 1  # only issue 2 has comments
    chunks = indexed(weaviate_client, collection_name)
    assert set(chunks) == {doc_id(n) for n in (1, 2, 3, 4, 5, 7)}
    closed = document_text(chunks[doc_id(7)])
    assert closed.startswith(f"[Closed as completed on {BASE + 7 * hour:%Y-%m-%d}] Webhooks retried forever (#7)")
    assert chunks[doc_id(7)][0]["url"] == f"https://github.com/{REPO}/issues/7" and chunks[doc_id(7)][0]["kind"] == "github"
    two = document_text(chunks[doc_id(2)])
    assert "Fixed on main." in two and "stale" not in two and "template" not in two and "Logs" not in two
    mark = watermarks(weaviate_client, collection_name, "issues")[REPO]["watermark"]
    assert datetime.fromisoformat(mark) == BASE + 7.5 * hour

    # 2. A new comment on the long issue: only issues updated since the watermark are listed,
    # and only the new comment's chunk is embedded.
    github.reset_counts()
    before = {c["chunk_hash"] for c in chunks[doc_id(4)]}
    github.add_comment(4, "tomas-o", "Granting s3:PutObject on the prefix fixed it for us.", BASE + 9 * hour)
    report, _ = run_ingest_dag("ragloop_ingest_github_issues", config)
    source = report["sources"]["issues"]
    listing = github.calls("issues")
    assert len(listing) == 1 and listing[0]["since"] == iso(BASE + 7.5 * hour - timedelta(minutes=10))
    assert next(q for q in github.requests if q[0] == "comments")[1].endswith("/issues/4/comments")
    assert source["documents"]["changed"] == 1 and source["documents"]["new"] == 0
    after = indexed(weaviate_client, collection_name)[doc_id(4)]
    assert len(before) >= 4 and source["chunks"]["embedded"] == len({c["chunk_hash"] for c in after} - before) == 1
    assert "Granting s3:PutObject" in document_text(after)
    mark = watermarks(weaviate_client, collection_name, "issues")[REPO]["watermark"]
    assert datetime.fromisoformat(mark) == BASE + 9 * hour

    # 3. A failure in the middle of the listing (a 500 that outlasts the retries): the watermark stays.
    github.reset_counts()
    for number in (1, 3, 5):
        github.edit_issue(number, BASE + 10 * hour, title=f"Issue number {number}, retitled")
    github.fail("issues", 500, "Server Error", after=1)
    for _ in range(10):  # more than the client's retries
        github.fail("issues", 500, "Server Error", after=1)
    report = run_pipeline(config, "github_issues", "github-run-3")
    github.failures.clear()
    source = report["sources"]["issues"]
    assert source["failures"][0]["item"] == REPO and "cannot list issues" in source["failures"][0]["reason"]
    assert watermarks(weaviate_client, collection_name, "issues")[REPO]["watermark"] == mark
    # What the first page held is indexed all the same; the rest waits for the next run.
    assert source["documents"]["changed"] == 2 and "retitled" in indexed(weaviate_client, collection_name)[doc_id(3)][0]["text"]
    assert "retitled" not in indexed(weaviate_client, collection_name)[doc_id(5)][0]["text"]

    # 4. The next run picks the same window up again.
    report = run_pipeline(config, "github_issues", "github-run-4")
    assert (report["sources"]["issues"]["documents"]["changed"], report["sources"]["issues"]["documents"]["unchanged"]) == (1, 3)
    assert "retitled" in indexed(weaviate_client, collection_name)[doc_id(5)][0]["text"]
    assert datetime.fromisoformat(watermarks(weaviate_client, collection_name, "issues")[REPO]["watermark"]) == BASE + 10 * hour

    # 5. An issue deleted at the source: incremental runs keep it; a full-listing run prunes it.
    del github.issues[5]
    report = run_pipeline(config, "github_issues", "github-run-5")
    assert report["sources"]["issues"]["documents"]["deleted"] == 0
    report = run_pipeline(config, "github_issues", "github-run-6", full_listing=True)
    source = report["sources"]["issues"]
    assert source["documents"]["deleted"] == 1 and source["prune"] == "done"
    assert doc_id(5) not in indexed(weaviate_client, collection_name)


def test_secondary_rate_limit_is_waited_out(tmp_path, github, airflow_db):
    """GitHub's secondary limit is a 403 whose message says so, with Retry-After: the client waits
    it out (bounded) and the listing completes."""
    from ragloop.sources import ExtractReport, make_source

    for number in range(1, 4):
        github.add_issue(number, f"Issue {number}", f"Body {number}.", BASE + number * timedelta(hours=1))
    github.add_comment(2, "ingrid-s", "Seen on 2.6.0 too.", BASE + 3 * timedelta(hours=1))
    github.fail("comments", 403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                headers={"Retry-After": "1"})
    source = make_source({"id": "issues", "type": "github_issues", "repo": REPO, "connection": "github_wire"}, tmp_path)
    report = ExtractReport("issues")
    documents = {d.doc_id: d for d in source.read(report, {}, full_listing=True)}
    assert report.failed == [] and sorted(documents) == [doc_id(n) for n in (1, 2, 3)]
    assert "Seen on 2.6.0 too." in documents[doc_id(2)].content
    assert len(github.calls("comments")) == 2  # issue 2's comments: refused once, then read after the wait
