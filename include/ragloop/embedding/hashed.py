"""HashEmbedder: deterministic vectors at memory speed, for tests and benchmarks of everything but
the model."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from ragloop.embedding.base import EmbeddingUsage
from ragloop.embedding.local import LocalEmbedder, _CountsWordPieces

log = logging.getLogger(__name__)


class HashEmbedder(_CountsWordPieces):
    """Deterministic vectors from a hash of the text, at memory speed: isolates the cost of the
    pipeline and of Weaviate in benchmarks and large tests. Equal texts get equal vectors; the
    vectors carry no meaning, so search quality is nil. Counts tokens with all-MiniLM-L6-v2's
    tokenizer, so documents split exactly as with `local`."""

    max_input_tokens = LocalEmbedder.max_input_tokens

    def __init__(self, dimension: int = 384, model_path: str | None = None):
        self.dimension = int(dimension)
        self.name = f"hash:sha256-{self.dimension}"
        self.model_path = model_path
        self.usage = EmbeddingUsage()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import hashlib

        import numpy as np

        started = time.monotonic()
        vectors = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
            vector = np.random.default_rng(seed).standard_normal(self.dimension).astype("float32")
            vectors.append((vector / np.linalg.norm(vector)).tolist())
        self.usage.texts += len(texts)
        self.usage.tokens += sum(self.count_tokens_batch(texts)) if texts else 0  # the chunker counted them: memo hits
        self.usage.requests += 1
        self.usage.seconds += time.monotonic() - started
        return vectors
