"""The passage: one chunk as retrieval returns it. The one type search returns, an answer cites
(numbered, as `Citation`) and grading reads back; the runs API's `RetrievedSource` is the same
passage as an untrusted caller sends it (validated and bounded), converted in one place
(`RetrievedSource.from_passage`, `Citation.from_record`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ragloop.documents import Kind


@dataclass
class Passage:
    doc_id: str
    source_id: str
    kind: str
    title: str
    url: str
    heading_path: str
    text: str
    score: float
    chunk_id: str
    visibility: str = "public"  # the chunk's, from the index

    @property
    def written_back(self) -> bool:
        """An earlier answer written back by the feedback loop, not a source document."""
        return self.kind == Kind.QA

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Citation(Passage):
    """A passage as an answer cites it: `number` is its [n] in the answer, and `text` the passage
    as the answer saw it (the chunk without its heading line)."""

    number: int = 0

    @classmethod
    def cite(cls, number: int, passage: Passage, text: str) -> Citation:
        """`passage` cited as [number], with `text` as the answer shows it."""
        return cls(**{**asdict(passage), "text": text, "visibility": passage.visibility or "public"}, number=number)

    @classmethod
    def from_record(cls, number: int, record: dict[str, Any]) -> Citation:
        """A source of a recorded run (the run store's JSON), numbered as the answer cited it."""
        return cls(
            number=number,
            doc_id=record.get("doc_id", ""),
            source_id=record.get("source_id", ""),
            chunk_id=record.get("chunk_id", ""),
            kind=record.get("kind", ""),
            title=record.get("title", ""),
            url=record.get("url", ""),
            heading_path=record.get("heading_path", ""),
            score=record.get("score") or 0.0,
            text=record.get("text", ""),
            visibility=record.get("visibility") or "public",
        )
