"""The live Slack source through the real slack_sdk client (the provider's SlackHook) against a
local server speaking the Web API, ingested by the `ragloop_ingest_slack` DAG into real Weaviate:
pagination over several pages, a 429 with Retry-After, a channel the token cannot read failing
alone, an incremental run that fetches only the new window and the active threads (a late reply
to a thread older than the watermark included), and a failure mid-pagination that leaves the
watermark where it was."""

from __future__ import annotations

import time

import pytest

from source_helpers import document_text, indexed, run_ingest_dag, run_pipeline, watermarks, write_sources
from wire_slack import SlackWireServer

pytestmark = pytest.mark.integration

DAY = 86_400
HELP, PRIVATE = "C0HELP0001", "C0PRIV0001"


@pytest.fixture
def slack(monkeypatch):
    with SlackWireServer(page_size=2) as server:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_WIRE", server.connection_json())
        server.add_channel(HELP, "help")
        server.add_channel(PRIVATE, "private")
        server.unreadable.add(PRIVATE)
        server.add_user("U1ANA", "Ana")
        server.add_user("U2BO", "Bo")
        yield server


def test_live_slack_is_incremental_and_picks_up_late_replies(tmp_path, slack, airflow_db, weaviate_server, weaviate_client, collection_name):
    now = time.time()
    old = [slack.post(HELP, "U1ANA", f"Old question {i} about fernd backups?", now - 10 * DAY + i * 60) for i in range(6)]
    slack.post(HELP, "U2BO", "<@U2BO> has joined the channel", now - 9 * DAY, subtype="channel_join")
    thread = slack.post(HELP, "U1ANA", "How do I rotate the SDK key without downtime?", now - 2 * DAY)
    slack.post(HELP, "U2BO", "Create the new key first:\n```fern keys create --env production```\nthen deploy.", now - 2 * DAY + 600, thread_ts=thread)
    slack.post(PRIVATE, "U1ANA", "secret stuff", now - DAY)
    slack.fail("conversations.history", status=429, error="ratelimited", after=1, headers={"Retry-After": "1"})
    config = write_sources(tmp_path, collection_name, [{
        "id": "community", "type": "slack", "channels": ["help", PRIVATE], "connection": "slack_wire", "lookback_days": 3,
    }])

    # 1. First run: everything readable is read, in pages, through one 429.
    report, result = run_ingest_dag("ragloop_ingest_slack", config)
    source = report["sources"]["community"]
    assert result.state == "success"
    assert source["documents"]["new"] == 7 and source["documents"]["failed"] == 1
    assert source["failures"] == [{"item": f"#private ({PRIVATE})",
                                   "reason": "Slack API conversations.history failed: not_in_channel"}]
    help_history = [p for p in slack.calls("conversations.history") if p["channel"] == HELP]
    assert len(help_history) == 5  # 8 parents in pages of 2, and the page refused once with a 429
    assert [p.get("cursor") for p in help_history] == [None, "2", "2", "4", "6"]
    assert [p["ts"] for p in slack.calls("conversations.replies")] == [thread]  # only the thread with replies
    assert sorted(p["user"] for p in slack.calls("users.info")) == ["U1ANA", "U2BO"]  # once per user per run
    chunks = indexed(weaviate_client, collection_name)
    thread_id = f"community:{HELP}/{thread}"
    assert set(chunks) == {f"community:{HELP}/{ts}" for ts in [*old, thread]}
    text = document_text(chunks[thread_id])
    assert "**Ana** · " in text and "**Bo** · " in text and "```\nfern keys create --env production\n```" in text
    assert "has joined" not in text and "secret" not in str(chunks)
    assert chunks[thread_id][0]["url"] == f"https://fernwood.slack.com/archives/{HELP}/p{thread.replace('.', '')}"
    first_marks = watermarks(weaviate_client, collection_name, "community")
    assert set(first_marks) == {HELP}  # the unreadable channel has none
    assert float(first_marks[HELP]["watermark"]) == pytest.approx(now - 2 * DAY + 600, abs=1)
    assert report["sources"]["community"]["watermarks"] == {HELP: first_marks[HELP]["watermark"]}

    # 2. A late reply to the thread (older than the watermark) and a new thread.
    slack.reset_counts()
    slack.post(HELP, "U1ANA", "Late follow-up: the old key keeps working for 24 hours, so no rush.", now - 60, thread_ts=thread)
    new_thread = slack.post(HELP, "U2BO", "Is there a Terraform provider?", now - 300)
    slack.post(HELP, "U1ANA", "Not an official one yet.", now - 200, thread_ts=new_thread)
    report, _ = run_ingest_dag("ragloop_ingest_slack", config)
    source = report["sources"]["community"]
    assert (source["documents"]["new"], source["documents"]["changed"]) == (1, 1)
    history = [p for p in slack.calls("conversations.history") if p["channel"] == HELP]
    assert len(history) == 1 and float(history[0]["oldest"]) == pytest.approx(float(first_marks[HELP]["watermark"]) - 600, abs=0.01)
    # the old thread (now 3 messages: two pages of replies) and the new one; no old single message
    assert sorted(p["ts"] for p in slack.calls("conversations.replies")) == sorted([thread, thread, new_thread])
    assert "nothing else pruned" in source["prune"]
    chunks = indexed(weaviate_client, collection_name)
    assert len(chunks) == 8  # the old single messages were neither re-read nor pruned
    assert "keeps working for 24 hours" in document_text(chunks[thread_id])
    second_mark = watermarks(weaviate_client, collection_name, "community")[HELP]
    assert float(second_mark["watermark"]) == pytest.approx(now - 60, abs=1)
    assert set(second_mark["threads"]) == {thread, new_thread}  # the threads active within lookback_days

    # 3. A failure in the middle of pagination: the channel fails, its watermark stays.
    slack.reset_counts()  # `after` counts this run's history calls: the second is #help's second page
    fresh = [slack.post(HELP, "U1ANA", f"Fresh question {i} on webhooks", now - 40 + i) for i in range(3)]
    slack.fail("conversations.history", status=500, error="internal_error", after=1)
    report = run_pipeline(config, "slack", "slack-run-3")
    source = report["sources"]["community"]
    assert any(f["item"] == f"#help ({HELP})" and "conversations.history" in f["reason"] for f in source["failures"])
    assert watermarks(weaviate_client, collection_name, "community")[HELP] == second_mark
    assert not any(f"community:{HELP}/{ts}" in indexed(weaviate_client, collection_name) for ts in fresh)

    # 4. The next run reads the same window again.
    report = run_pipeline(config, "slack", "slack-run-4")
    assert report["sources"]["community"]["documents"]["new"] == 3
    assert all(f"community:{HELP}/{ts}" in indexed(weaviate_client, collection_name) for ts in fresh)
    assert float(watermarks(weaviate_client, collection_name, "community")[HELP]["watermark"]) > float(second_mark["watermark"])
