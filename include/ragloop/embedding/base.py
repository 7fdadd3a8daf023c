"""What every embedder is: the Embedder protocol, what it has cost (EmbeddingUsage), and its error."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from collections.abc import Sequence

from ragloop.errors import RagloopError

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


class EmbeddingError(RagloopError):
    """Embedding failed for good; the message says what was tried."""


@runtime_checkable
class Embedder(Protocol):
    # Read-only: some embedders compute them (OpenAI: from the model and its dimensions).
    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    max_input_tokens: int
    usage: EmbeddingUsage  # what it has embedded in this process: reports quote it

    def count_tokens(self, text: str) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


@dataclass
class EmbeddingUsage:
    """What embedding has cost so far in this process."""

    texts: int = 0
    tokens: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
