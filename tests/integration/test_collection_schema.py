"""The collection records its embedder; a different embedder is refused with a way out."""

import pytest

from ragloop.embedding import LocalEmbedder, OpenAIEmbedder, TorchEmbedder
from ragloop.index import SCHEMA_VERSION, EmbedderMismatch, collection_counts, drop_collection, ensure_collection, recorded_embedder

pytestmark = pytest.mark.integration


def test_embedder_recorded_and_mismatch_refused(weaviate_client):
    name = "SchemaProbe"
    drop_collection(weaviate_client, name)
    local = LocalEmbedder()
    assert ensure_collection(weaviate_client, name, local) is True
    assert recorded_embedder(weaviate_client, name) == {
        "embedder": "local:all-MiniLM-L6-v2@onnx-int8", "dimension": 384, "quantization": "int8",
        "schema_version": SCHEMA_VERSION,
    }
    assert ensure_collection(weaviate_client, name, local) is False  # same embedder: fine

    config = weaviate_client.collections.use(name).config.get()
    filterable = {p.name for p in config.properties if p.index_filterable}
    assert {"doc_id", "source_id", "kind", "doc_hash", "chunk_hash"} <= filterable

    with pytest.raises(EmbedderMismatch) as refused:
        ensure_collection(weaviate_client, name, OpenAIEmbedder(model="text-embedding-3-small"))
    message = str(refused.value)
    assert "'local:all-MiniLM-L6-v2@onnx-int8' (384 dimensions, int8)" in message
    assert "'openai:text-embedding-3-small' (1536 dimensions)" in message
    assert "set `embedder:` back to `local`." in message
    assert "set `collection:` in sources.yaml to a new name and run `ragloop ingest`" in message
    assert collection_counts(weaviate_client)[name] == 0
    assert drop_collection(weaviate_client, name) is True


def test_torch_and_onnx_vectors_are_not_mixed(weaviate_client):
    """The same weights through torch and through the int8 ONNX model give different vectors: a
    collection filled by one refuses the other, both ways, and says which setting fills it."""
    name = "SchemaProbeTorch"
    drop_collection(weaviate_client, name)
    torch_model = TorchEmbedder()  # never loaded: ensure_collection needs only its name
    assert ensure_collection(weaviate_client, name, torch_model) is True
    assert recorded_embedder(weaviate_client, name) == {
        "embedder": "local:all-MiniLM-L6-v2", "dimension": 384, "schema_version": SCHEMA_VERSION,
    }
    with pytest.raises(EmbedderMismatch) as refused:
        ensure_collection(weaviate_client, name, LocalEmbedder())
    assert "'local:all-MiniLM-L6-v2' (384 dimensions)" in str(refused.value)
    assert "set `embedder:` back to `local-torch`" in str(refused.value)
    assert drop_collection(weaviate_client, name) is True

    drop_collection(weaviate_client, name)
    assert ensure_collection(weaviate_client, name, LocalEmbedder(quantization="fp32")) is True
    with pytest.raises(EmbedderMismatch) as refused:
        ensure_collection(weaviate_client, name, LocalEmbedder())  # int8 on an fp32 collection
    assert "(384 dimensions, fp32)" in str(refused.value) and "(384 dimensions, int8)" in str(refused.value)
    assert "`{type: local, quantization: fp32}`" in str(refused.value)
    assert drop_collection(weaviate_client, name) is True


def test_connect_checks_grpc_itself_and_names_the_port(weaviate_server, monkeypatch):
    """The client's init checks are skipped (they would query the package index on every
    connect); a gRPC port that does not answer is still refused at connect, by name."""
    import json
    import socket

    from ragloop.index import WeaviateIndexError, connect

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    conn = {"conn_type": "weaviate", "host": "127.0.0.1", "port": weaviate_server.http_port,
            "extra": {"grpc_host": "127.0.0.1", "grpc_port": weaviate_server.grpc_port}}
    monkeypatch.setenv("AIRFLOW_CONN_WEAVIATE_PROBE", json.dumps(conn))
    with connect("weaviate_probe") as client:
        assert client.collections.exists("NoSuchCollection") is False
    conn["extra"]["grpc_port"] = closed
    monkeypatch.setenv("AIRFLOW_CONN_WEAVIATE_PROBE", json.dumps(conn))
    with pytest.raises(WeaviateIndexError) as refused, connect("weaviate_probe"):
        pass
    assert f"gRPC port 127.0.0.1:{closed} does not answer: UNAVAILABLE" in str(refused.value)
    assert "Cannot reach Weaviate" in str(refused.value)


def test_search_checks_its_collection_once_per_client_until_it_changes(weaviate_client, monkeypatch):
    """A kept client searching again sends only the query: the collection's checks (exists, the
    embedder record, the records collection) ran on its first search. A collection this process
    drops and rebuilds with another embedder is refused at the next search, and after the TTL a
    change made elsewhere would be seen too."""
    from ragloop.embedding import make_embedder
    import importlib

    from ragloop.index import search

    search_module = importlib.import_module("ragloop.index.search")  # the module (the package exports the function)

    name = "SchemaProbeChecks"
    drop_collection(weaviate_client, name)
    hashed = make_embedder("hash")
    ensure_collection(weaviate_client, name, hashed)
    calls: list[str] = []
    real_exists = weaviate_client.collections.exists
    monkeypatch.setattr(weaviate_client.collections, "exists", lambda n: calls.append(n) or real_exists(n))
    search(weaviate_client, name, hashed, "first query")
    checked = len(calls)
    assert checked >= 1
    for _ in range(3):
        search(weaviate_client, name, hashed, "again")
    assert len(calls) == checked  # no check again within the TTL

    # Rebuilt by this process with another embedder of the same size: refused at once.
    drop_collection(weaviate_client, name)
    ensure_collection(weaviate_client, name, LocalEmbedder())
    with pytest.raises(EmbedderMismatch):
        search(weaviate_client, name, hashed, "after the rebuild")

    # After the TTL the check runs again (how a change made by another process is seen).
    monkeypatch.setattr(search_module, "CHECK_TTL_SECONDS", 0.0)
    before = len(calls)
    with pytest.raises(EmbedderMismatch):
        search(weaviate_client, name, hashed, "after the TTL")
    assert len(calls) > before
    assert drop_collection(weaviate_client, name) is True
