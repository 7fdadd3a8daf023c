"""The setup checks the `ragloop_check` DAG and `ragloop check` run: Weaviate reachable, the
collection made for the configured embedder, and the embedder's rate on the sample docs."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from ragloop.config import load_config
from ragloop.errors import RagloopError
from ragloop.index.endpoint import WEAVIATE_CONN_ID

log = logging.getLogger(__name__)


def check_weaviate(weaviate_conn_id: str = WEAVIATE_CONN_ID) -> dict:
    """Reach Weaviate through the connection; report its version and what it holds."""
    from ragloop.index import collection_counts, connect, endpoint_from_connection

    endpoint = endpoint_from_connection(weaviate_conn_id)
    with connect(weaviate_conn_id) as client:
        meta = client.get_meta()
        counts = collection_counts(client)
    report = {"url": endpoint.url, "version": meta.get("version"), "collections": counts}
    log.info("Weaviate %s at %s holds %s", report["version"], report["url"], counts or "no collections")
    return report


def prepare_collection(config_path: str | None = None, weaviate_conn_id: str = WEAVIATE_CONN_ID) -> dict:
    """Create the configured collection for the configured embedder, or refuse a mismatch."""
    from ragloop.embedding import make_embedder
    from ragloop.index import connect, ensure_collection

    config = load_config(config_path)
    embedder = make_embedder(config.embedder)
    with connect(weaviate_conn_id) as client:
        created = ensure_collection(client, config.collection, embedder, config.replication)
    return {
        "collection": config.collection,
        "created": created,
        "embedder": embedder.name,
        "dimension": embedder.dimension,
    }


FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)


def sample_passages(folder: Path, words: int = 200) -> list[str]:
    """Consecutive `words`-word passages of the markdown under `folder`: the unit the embedder's
    rate is quoted in (chunks of 200 words), independent of how the chunker splits."""
    passages = []
    for path in sorted(folder.rglob("*")):
        if path.suffix not in {".md", ".mdx", ".rst"} or not path.is_file():
            continue
        text_words = FRONT_MATTER.sub("", path.read_text(errors="replace")).split()
        passages += [" ".join(text_words[i : i + words]) for i in range(0, len(text_words), words)]
    return passages


def measure_embedder(config_path: str | None = None, samples: str | None = None, limit: int | None = None) -> dict:
    """Embed the bundled sample docs with the configured embedder and report its rate."""
    from ragloop.embedding import LocalEmbedder, make_embedder
    from ragloop.paths import project_root

    config = load_config(config_path)
    folder = Path(samples) if samples else project_root() / "include" / "samples" / "docs"
    passages = sample_passages(folder)[:limit]
    if not passages:
        raise RagloopError(f"No markdown or rst files under {folder} to measure the embedder on")
    embedder = make_embedder(config.embedder)
    load_seconds = 0.0
    if isinstance(embedder, LocalEmbedder):
        started = time.monotonic()
        _ = embedder.model  # load outside the timed run: a task pays it once per batch of documents
        load_seconds = time.monotonic() - started
    tokens_before = embedder.usage.tokens
    started = time.monotonic()
    vectors = embedder.embed(passages)
    seconds = time.monotonic() - started
    # The embedder already counts what it embeds (OpenAI: the API's own figure); no second pass.
    tokens = embedder.usage.tokens - tokens_before
    report = {
        "embedder": embedder.name,
        "dimension": len(vectors[0]),
        "passages": len(passages),
        "words_per_passage": 200,
        "tokens": tokens,
        "load_seconds": round(load_seconds, 2),
        "embed_seconds": round(seconds, 2),
        "passages_per_second": round(len(passages) / seconds, 1) if seconds else None,
    }
    log.info("Embedded %(passages)d passages (%(tokens)d tokens) with %(embedder)s in %(embed_seconds)s s", report)
    return report
