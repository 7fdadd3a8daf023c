"""Helpers for the Slack and GitHub source tests: a sources.yaml writer, DAG and pipeline runs,
and what the index holds (chunks, watermarks). The wire servers are in wire_slack / wire_github."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "include" / "samples"


def write_sources(folder: Path, collection: str, sources: list[dict], embedder: str = "hash") -> Path:
    """A sources.yaml with the given sources, writing to `collection` (the hash embedder by
    default: these tests are about reading sources, not about the model)."""
    config = {"collection": collection, "embedder": embedder, "chunking": {"max_tokens": 128, "overlap_tokens": 16},
              "staging": f"file://{folder / 'staging'}", "sources": sources}
    path = folder / "sources.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return path


def run_ingest_dag(dag_id: str, config: Path, **conf) -> tuple[dict, object]:
    from ragloop.airflow.dagrun import run_dag

    result = run_dag(dag_id, {"config": str(config), "sources": [], "full_refresh": False, **conf}, retries=0)
    return result.returns["report"], result


def run_pipeline(config: Path, source_type: str, run_id: str, **kwargs) -> dict:
    """The same task bodies in this process, without a DAG run: for the extra runs of a scenario."""
    from ragloop.ingest import ingest

    return dict(ingest(run_id, str(config), source_type=source_type, **kwargs))


def indexed(client, collection: str) -> dict[str, list[dict]]:
    """doc_id -> its chunks' properties in chunk order."""
    documents: dict[str, list[dict]] = {}
    for obj in client.collections.use(collection).iterator(
        return_properties=["doc_id", "chunk_index", "chunk_hash", "text", "url", "title", "kind"]
    ):
        documents.setdefault(obj.properties["doc_id"], []).append(obj.properties)
    for chunks in documents.values():
        chunks.sort(key=lambda p: p["chunk_index"])
    return documents


def document_text(chunks: list[dict]) -> str:
    return "\n".join(c["text"] for c in chunks)


def watermarks(client, collection: str, source_id: str) -> dict[str, dict]:
    from ragloop.index import read_watermarks

    return read_watermarks(client, collection, source_id)
