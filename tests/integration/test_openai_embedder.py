"""OpenAIEmbedder through the real `openai` client, against a local server speaking the API."""

from __future__ import annotations

import json
import logging

import pytest

from ragloop.embedding import EmbeddingError, OpenAIEmbedder
from wire_servers import OpenAIWireServer, ScriptedReply, fake_vector

API_KEY = "sk-test-9f8e7d6c5b4a-never-log-me"


@pytest.fixture
def openai_server(monkeypatch):
    with OpenAIWireServer(api_key=API_KEY) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_OPENAI_DEFAULT",
            json.dumps({"conn_type": "openai", "host": server.base_url, "password": API_KEY}),
        )
        yield server


@pytest.fixture
def sleeps(monkeypatch):
    """Record the embedder's back-off waits instead of sleeping through them."""
    waited: list[float] = []
    monkeypatch.setattr("ragloop.embedding.openai_api.time.sleep", waited.append)
    return waited


def test_batches_by_token_budget_and_keeps_order(openai_server):
    embedder = OpenAIEmbedder(model="text-embedding-3-small", max_batch_tokens=40)
    texts = [f"passage {i} " + "word " * (5 + i) for i in range(12)]
    vectors = embedder.embed(texts)

    assert vectors == [fake_vector(t, 8) for t in texts]  # order restored from `index`
    requests = openai_server.embedding_requests()
    expected = embedder.batches(texts)
    assert len(requests) == len(expected) > 1
    for request, group in zip(requests, expected, strict=False):
        assert request.body["input"] == [texts[i] for i in group]
        assert sum(embedder.count_tokens(t) for t in request.body["input"]) <= 40
        assert request.body["model"] == "text-embedding-3-small"
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert embedder.usage.requests == len(requests)
    assert embedder.usage.tokens == sum(len(t.split()) for t in texts)  # the API's usage figures


def test_input_count_cap(openai_server):
    embedder = OpenAIEmbedder(max_batch_inputs=3)
    embedder.embed([f"text {i}" for i in range(7)])
    assert [len(r.body["input"]) for r in openai_server.embedding_requests()] == [3, 3, 1]


def test_one_429_with_retry_after_then_success(openai_server, sleeps):
    openai_server.script.append(
        ScriptedReply(429, {"error": {"message": "Rate limit reached", "type": "requests"}}, {"Retry-After": "7"})
    )
    embedder = OpenAIEmbedder()
    vectors = embedder.embed(["one", "two"])
    assert vectors == [fake_vector("one", 8), fake_vector("two", 8)]
    assert len(openai_server.embedding_requests()) == 2
    assert sleeps == [7.0]  # the server's Retry-After, not our own back-off
    assert embedder.usage.retries == 1


def test_repeated_500s_fail_clearly_after_bounded_retries(openai_server, sleeps, caplog):
    for _ in range(10):
        openai_server.script.append(ScriptedReply(500, {"error": {"message": "upstream exploded"}}))
    embedder = OpenAIEmbedder(max_retries=3, backoff_base=0.5)
    with caplog.at_level(logging.DEBUG), pytest.raises(EmbeddingError) as failure:
        embedder.embed(["doomed"])
    message = str(failure.value)
    assert "failed after 4 attempts" in message and "500" in message
    assert len(openai_server.embedding_requests()) == 4
    assert len(sleeps) == 3 and sleeps == sorted(sleeps)  # exponential back-off
    assert API_KEY not in message


def test_api_key_never_logged(openai_server, sleeps, caplog, capfd):
    openai_server.script.append(ScriptedReply(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"}))
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("openai").setLevel(logging.DEBUG)
        logging.getLogger("httpx").setLevel(logging.DEBUG)
        OpenAIEmbedder().embed(["a text to embed"])
    out, err = capfd.readouterr()
    assert caplog.records, "expected debug logs from openai/httpx to check"
    assert API_KEY not in caplog.text
    assert API_KEY not in out + err


def test_refused_request_is_not_retried(openai_server, sleeps):
    openai_server.script.append(ScriptedReply(400, {"error": {"message": "input too long"}}))
    with pytest.raises(EmbeddingError, match="refused the request"):
        OpenAIEmbedder().embed(["x"])
    assert len(openai_server.embedding_requests()) == 1 and sleeps == []


def test_missing_connection_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_OPENAI_DEFAULT", raising=False)
    with pytest.raises(EmbeddingError, match="'openai_default' is not defined"):
        OpenAIEmbedder().embed(["x"])
