"""`ask` end to end: the sample docs in a real Weaviate, the local model, and the chat model
through the real `openai` client against a local server speaking chat completions."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import copy_samples, run_cli, write_config
from ragloop.answer import WRITTEN_BACK_LABEL, ask, format_answer
from ragloop.chat import count_message_tokens
from ragloop.runs import RunRecorder, RunStore
from wire_servers import OpenAIWireServer, ScriptedReply

pytestmark = pytest.mark.integration

API_KEY = "sk-chat-test-0a1b2c"
QUESTIONS = {
    "How much clock skew is allowed when verifying a webhook signature?": "docs:guides/webhooks.md",
    "Which signal makes fernd reopen its log files?": "docs:configuration/logging.rst",
    "How long does an old SDK key keep working after rotation?": "docs:api/authentication-tokens.md",
}


REWRITE_REPLY = json.dumps({"queries": ["webhook timestamp tolerance", "replay attack signature check"]})
ANSWER_REPLY = "Fernwood rejects webhook timestamps more than 300 seconds from your clock [1]."


@pytest.fixture(scope="module")
def knowledge_base(tmp_path_factory, weaviate_server):
    """The sample docs ingested once (task bodies in process) into a collection of this module."""
    from ragloop.ingest import ingest

    folder = tmp_path_factory.mktemp("answer")
    config = write_config(folder, "AnswerSamples", copy_samples(folder), product="Fernwood")
    report = ingest("answer-tests", str(config))
    assert report["sources"]["docs"]["documents"]["failed"] == 0
    return folder, config


def with_llm(folder, config, model="gpt-test") -> str:
    data = yaml.safe_load(config.read_text())
    data["llm"] = {"connection": "openai_default", "model": model}
    path = folder / f"sources-llm-{model}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture
def chat_server(monkeypatch):
    def responder(body):
        if body.get("response_format", {}).get("type") == "json_object":
            return REWRITE_REPLY
        return ANSWER_REPLY

    with OpenAIWireServer(api_key=API_KEY, chat_responder=responder) as server:
        monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT",
                           json.dumps({"conn_type": "openai", "host": server.base_url, "password": API_KEY}))
        yield server


@pytest.fixture
def store(tmp_path):
    with RunStore(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        yield store


def cited_doc_ids(answer) -> set[str]:
    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
    return {s.doc_id for s in answer.sources if s.number in numbers}


@pytest.mark.parametrize("question", list(QUESTIONS))
def test_offline_answer_is_extractive_says_so_and_cites_the_right_document(knowledge_base, store, question):
    _, config = knowledge_base
    with RunRecorder(app="tests", store=store) as recorder:
        answer = ask(question, config_path=str(config))
    assert answer.mode == "extractive" and answer.text.startswith("No language model is configured")
    assert QUESTIONS[question] in cited_doc_ids(answer), (answer.text, [s.doc_id for s in answer.sources])
    run = store.get_run(recorder.run_ids[0])
    assert run["answer"] == answer.text and run["app"] == "tests"
    assert (run["model"], run["prompt_tokens"], run["token_source"]) == ("extractive", 0, "none")
    assert {s["doc_id"] for s in run["sources"]} == {s.doc_id for s in answer.sources}
    assert all(s["text"] for s in run["sources"])  # the text the answer saw is kept for grading


def test_llm_answer_uses_rewrites_and_records_the_api_usage(knowledge_base, chat_server, store):
    folder, config = knowledge_base
    question = "How much clock skew is allowed when verifying a webhook signature?"
    with RunRecorder(app="tests", store=store) as recorder:
        answer = ask(question, config_path=with_llm(folder, config))
    assert answer.mode == "llm" and answer.model == "gpt-test"
    assert answer.rewrites == ["webhook timestamp tolerance", "replay attack signature check"]
    assert "docs:guides/webhooks.md" in cited_doc_ids(answer)

    rewrite_request, answer_request = chat_server.chat_requests()
    assert rewrite_request.body["response_format"] == {"type": "json_object"}
    assert answer_request.body["temperature"] == 0.1 and answer_request.body["max_tokens"] == 700
    user_message = answer_request.body["messages"][-1]["content"]
    assert user_message.count("<source id=") == len(answer.sources) and user_message.rstrip().endswith(question)
    assert "Fernwood" in answer_request.body["messages"][0]["content"]

    run = store.get_run(recorder.run_ids[0])
    def words(r):
        return sum(len(m["content"].split()) for m in r.body["messages"])  # the server's usage figure
    assert run["prompt_tokens"] == words(rewrite_request) + words(answer_request)
    assert run["completion_tokens"] == len(REWRITE_REPLY.split()) + len(ANSWER_REPLY.split())
    assert (run["token_source"], run["prompt_name"], run["prompt_version"], run["model"]) == ("api", "answer", "1", "gpt-test")
    assert run["rewrites"] == answer.rewrites and run["latency_ms"] > 0


def test_without_usage_figures_tokens_are_counted_with_tiktoken(knowledge_base, chat_server, store):
    folder, config = knowledge_base
    chat_server.chat_usage = False
    with RunRecorder(app="tests", store=store) as recorder:
        answer = ask("Which signal makes fernd reopen its log files?", config_path=with_llm(folder, config, "gpt-4"))
    requests = chat_server.chat_requests()
    expected_prompt = sum(count_message_tokens(r.body["messages"], "gpt-4") for r in requests)
    run = store.get_run(recorder.run_ids[0])
    assert run["token_source"] == "tiktoken" and run["prompt_tokens"] == expected_prompt
    assert run["completion_tokens"] > 0 and answer.token_source == "tiktoken"


def test_a_failing_model_falls_back_to_an_extractive_answer(knowledge_base, chat_server, store):
    folder, config = knowledge_base
    chat_server.chat_responder = lambda body: ScriptedReply(500, {"error": {"message": "overloaded", "type": "server_error"}})
    with RunRecorder(app="tests", store=store):
        answer = ask("Which signal makes fernd reopen its log files?", config_path=with_llm(folder, config))
    assert answer.mode == "extractive" and "could not be reached" in answer.text
    assert "docs:configuration/logging.rst" in cited_doc_ids(answer)
    assert len(answer.notes) == 2 and "overloaded" in answer.notes[1]
    assert len(chat_server.chat_requests()) == 6  # the client's 2 retries, for the rewrite and the answer


def test_recording_failure_never_breaks_answering(knowledge_base, tmp_path):
    _, config = knowledge_base
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with RunRecorder(app="tests", store_url=f"sqlite:///{blocker / 'runs.db'}") as recorder:
        answer = ask("Which signal makes fernd reopen its log files?", config_path=str(config))
    assert answer.run_id is None and answer.text and recorder.errors == 1
    assert any("run store unavailable" in note for note in answer.notes), answer.notes


def test_written_back_answers_are_retrieved_and_marked(knowledge_base, weaviate_client):
    from ragloop.chunking import ChunkingSettings, chunker_for
    from ragloop.documents import Document, indexed_hash
    from ragloop.embedding import make_embedder
    from ragloop.index import chunk_object, write_objects

    _, config = knowledge_base
    qa = Document(doc_id="qa:run-1", source_id="qa", kind="qa", title="Can I pause a percentage rollout?",
                  content="Yes. Set the rollout's percentage to zero in the flag's page; it keeps its targeting rules.",
                  url="ragloop://runs/run-1", metadata={"run_id": "run-1"})
    embedder = make_embedder("local")
    chunks = chunker_for(embedder, ChunkingSettings(max_tokens=256, overlap_tokens=32)).split(qa)
    vectors = embedder.embed([c.text for c in chunks])
    write_objects(weaviate_client, "AnswerSamples", [
        chunk_object(qa, chunk, indexed_hash(qa.content_hash, "test"), len(chunks), vector) for chunk, vector in zip(chunks, vectors, strict=False)])
    answer = ask("How do I pause a percentage rollout?", config_path=str(config))
    marked = [s for s in answer.sources if s.written_back]
    assert [s.doc_id for s in marked] == ["qa:run-1"]
    assert f"({WRITTEN_BACK_LABEL})" in format_answer(answer)
    assert answer.to_json()["sources"][answer.sources.index(marked[0])]["written_back"] is True


def test_cli_ask_feedback_runs_and_import(knowledge_base, tmp_path):
    _, config = knowledge_base
    runs_db = tmp_path / "cli-runs.db"
    env = {"AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(runs_db)})}
    asked = run_cli("ask", "Which signal makes fernd reopen its log files?", "--config", str(config), "--json", env=env)
    assert asked.returncode == 0, asked.stderr[-3000:]
    answer = json.loads(asked.stdout)
    assert answer["run_id"] and answer["mode"] == "extractive"

    voted = run_cli("feedback", answer["run_id"], "down", "--comment", "wrong signal", "--user", "tester", env=env)
    assert voted.returncode == 0, voted.stderr[-2000:]
    assert "Recorded down vote" in voted.stdout and "(0 up, 1 down)" in voted.stdout

    bad_lines = tmp_path / "runs.jsonl"
    bad_lines.write_text(json.dumps({"run_id": "imported-1", "question": "q", "created_at": "2026-11-01T00:00:00Z"})
                         + "\n" + json.dumps({"run_id": "imported-2", "created_at": "2026-11-01T00:00:00Z"}) + "\n")
    imported = run_cli("runs", "import", str(bad_lines), env=env)
    assert imported.returncode == 1 and f"{bad_lines}:2: question: Field required" in imported.stderr
    assert "1 runs imported" in imported.stdout

    listed = run_cli("runs", "--json", "--limit", "5", env=env)
    runs = {r["run_id"]: r for r in json.loads(listed.stdout)["runs"]}
    assert set(runs) == {answer["run_id"], "imported-1"}
    assert runs[answer["run_id"]]["vote_summary"] == {"up": 0, "down": 1, "votes": 1}
    assert runs[answer["run_id"]]["app"] == "cli" and runs[answer["run_id"]]["votes"][0]["comment"] == "wrong signal"
    text = run_cli("runs", env=env).stdout
    assert answer["run_id"] in text and "+0/-1" in text and "not graded" in text
