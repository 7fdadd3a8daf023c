"""OpenAIEmbedder: OpenAI (or a compatible server) through the `openai_default` connection, in
token-bounded batches, retrying 429 and 5xx as Retry-After asks."""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from collections.abc import Sequence

from ragloop.embedding.base import EmbeddingError, EmbeddingUsage
from ragloop.errors import ConnectionProblem

if TYPE_CHECKING:
    from openai import OpenAI

log = logging.getLogger(__name__)


OPENAI_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP date) or `retry-after-ms`."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


@dataclass
class OpenAIEmbedder:
    """OpenAI (or any OpenAI-compatible server) embeddings through the `openai_default` connection.

    The base URL comes from the connection (host, or extra.openai_client_kwargs.base_url), the key
    from its password. Batches are bounded by a token budget and an input count; 429 and 5xx are
    retried a bounded number of times, honouring `Retry-After`.
    """

    model: str = "text-embedding-3-small"
    conn_id: str = "openai_default"
    dimensions: int | None = None
    # OpenAI caps one request at 300,000 tokens and 2,048 inputs; stay under both.
    max_batch_tokens: int = 250_000
    max_batch_inputs: int = 2048
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    client: OpenAI | None = None
    usage: EmbeddingUsage = field(default_factory=EmbeddingUsage)
    max_input_tokens: int = 8191
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.dimensions is None and self.model not in OPENAI_DIMENSIONS:
            raise ValueError(f"Unknown dimension for embedding model {self.model!r}: set `dimensions:` in the embedder config")

    @property
    def name(self) -> str:
        return f"openai:{self.model}" + (f"@{self.dimensions}" if self.dimensions else "")

    @property
    def dimension(self) -> int:
        return self.dimensions or OPENAI_DIMENSIONS[self.model]

    def _client(self) -> OpenAI:
        with self._lock:
            if self.client is None:
                from ragloop.airflow.connections import openai_client  # through Airflow's secrets backends

                # Our own retry loop below counts and bounds retries; the client's would double them.
                try:
                    self.client = openai_client(self.conn_id, max_retries=0)
                except ConnectionProblem as err:
                    raise EmbeddingError(str(err)) from None
            return self.client

    def count_tokens(self, text: str) -> int:
        from ragloop.tokens import count_tokens

        return count_tokens(text, self.model)

    def batches(self, texts: Sequence[str]) -> list[list[int]]:
        """Indexes of `texts` grouped so each group fits the token budget and the input cap."""
        groups: list[list[int]] = []
        current: list[int] = []
        current_tokens = 0
        for i, text in enumerate(texts):
            tokens = self.count_tokens(text)
            if tokens > self.max_input_tokens:
                raise EmbeddingError(f"Input {i} has {tokens} tokens, more than {self.model}'s limit of {self.max_input_tokens}")
            if current and (current_tokens + tokens > self.max_batch_tokens or len(current) >= self.max_batch_inputs):
                groups.append(current)
                current, current_tokens = [], 0
            current.append(i)
            current_tokens += tokens
        if current:
            groups.append(current)
        return groups

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float] | None] = [None] * len(texts)
        groups = self.batches(texts)
        for number, group in enumerate(groups, 1):
            batch = [texts[i] for i in group]
            log.info("Embedding batch %d/%d: %d texts with %s", number, len(groups), len(batch), self.model)
            for i, vector in zip(group, self._embed_batch(batch), strict=False):
                vectors[i] = vector
        return vectors  # type: ignore[return-value]

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        import openai

        retryable = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError, openai.APITimeoutError)
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            try:
                response = self._client().embeddings.create(
                    model=self.model,
                    input=batch,
                    **({"dimensions": self.dimensions} if self.dimensions else {}),  # type: ignore[arg-type]
                )
            except retryable as err:
                status = getattr(err, "status_code", None)
                if attempt == attempts:
                    raise EmbeddingError(
                        f"OpenAI embeddings failed after {attempts} attempts ({self.model}, {len(batch)} inputs); "
                        f"last error: {status or type(err).__name__}: {err}"
                    ) from err
                response_headers = getattr(getattr(err, "response", None), "headers", None)
                wait = retry_after_seconds(response_headers)
                if wait is None:
                    wait = self.backoff_base * 2 ** (attempt - 1) * (0.5 + random.random() / 2)
                wait = min(wait, self.backoff_max)
                self.usage.retries += 1
                log.warning(
                    "OpenAI embeddings returned %s; retrying in %.1f s (attempt %d of %d)",
                    status or type(err).__name__,
                    wait,
                    attempt + 1,
                    attempts,
                )
                time.sleep(wait)
                continue
            except openai.APIStatusError as err:
                raise EmbeddingError(f"OpenAI embeddings refused the request ({err.status_code}, {self.model}): {err}") from err
            data = sorted(response.data, key=lambda item: item.index)
            if len(data) != len(batch):
                raise EmbeddingError(f"OpenAI returned {len(data)} vectors for {len(batch)} inputs")
            self.usage.texts += len(batch)
            self.usage.requests += 1
            self.usage.seconds += time.monotonic() - started
            self.usage.tokens += response.usage.total_tokens if response.usage else sum(map(self.count_tokens, batch))
            return [list(item.embedding) for item in data]
        raise AssertionError("unreachable")
