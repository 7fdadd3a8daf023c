"""Document and Chunk: what every source produces and what the index stores.

This is the only place ids and content hashes are made, so a document keeps its chunk ids and
hashes whichever source, task or process computes them.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any


class Kind(StrEnum):
    """What produced a document (stored as its value)."""

    DOCS = "docs"
    SLACK = "slack"
    GITHUB = "github"
    QA = "qa"  # a written-back answer


KINDS = tuple(kind.value for kind in Kind)


class Visibility(StrEnum):
    """Who may retrieve a document: `public` for everyone, `internal` for internal callers only.
    An audience sees the visibilities up to its own (see `visible_to`)."""

    PUBLIC = "public"
    INTERNAL = "internal"


VISIBILITIES = tuple(v.value for v in Visibility)


def visible_to(audience: str) -> list[str]:
    """The visibilities an audience may retrieve."""
    if audience not in VISIBILITIES:
        raise ValueError(f"audience must be one of {', '.join(VISIBILITIES)}, not {audience!r}")
    return [Visibility.PUBLIC.value] if audience == Visibility.PUBLIC else list(VISIBILITIES)


# Written-back answers are a source of their own, fed by the feedback DAG, not by sources.yaml:
# a configured source cannot take this id.
QA_SOURCE_ID = Kind.QA.value

# Fixed namespace: chunk ids must be the same in every process and on every machine.
RAGLOOP_NAMESPACE = uuid.UUID("5b0c3f1e-8a52-5d7e-9f1a-2c6d4e8b7a10")


def normalize_content(text: str) -> str:
    """The form a content hash is taken of: NFC, LF line ends, no trailing spaces, no edge blank lines.

    Changes that do not change what is read (CRLF checkouts, trailing spaces) do not re-index.
    """
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def qa_doc_id(run_id: str) -> str:
    """The document a written-back run becomes: one per run, so writing it again replaces it."""
    return f"{QA_SOURCE_ID}:{run_id}"


def qa_run_id(doc_id: str) -> str:
    """The run a written-back document came from: the inverse of qa_doc_id."""
    prefix = f"{QA_SOURCE_ID}:"
    if not doc_id.startswith(prefix):
        raise ValueError(f"{doc_id!r} is not a written-back answer's doc_id")
    return doc_id[len(prefix) :]


def chunk_uuid(doc_id: str, index: int) -> str:
    """uuid5(doc_id, index): the same chunk position of the same document is the same object, so a
    rewrite replaces it in place instead of adding a copy."""
    return str(uuid.uuid5(uuid.uuid5(RAGLOOP_NAMESPACE, doc_id), str(index)))


@dataclass
class Document:
    doc_id: str  # stable across runs: "<source id>:<path>", "channel/thread_ts", an issue URL
    source_id: str
    kind: str
    title: str
    content: str  # markdown (or rst, see metadata["format"])
    url: str = ""
    updated_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    visibility: str = Visibility.PUBLIC.value  # set from the source's `visibility:` (see sources.base)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Document {self.doc_id!r}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.visibility not in VISIBILITIES:
            raise ValueError(f"Document {self.doc_id!r}: visibility must be one of {VISIBILITIES}, not {self.visibility!r}")
        if not self.doc_id:
            raise ValueError("Document without a doc_id")

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the normalized content and of every field stored with the chunks.

        Timestamps are left out on purpose: a checkout or a touch changes them without changing
        what a reader sees, and must not re-index the document.
        """
        payload = {
            "content": normalize_content(self.content),
            "title": self.title,
            "url": self.url,
            "kind": self.kind,
            "source_id": self.source_id,
            "metadata": self.metadata,
        }
        if self.visibility != Visibility.PUBLIC:
            # Only when not public, so public documents keep their hashes; a document whose
            # visibility changes is re-indexed with it.
            payload["visibility"] = self.visibility
        return text_hash(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str))

    def to_json(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "source_id": self.source_id,
            "kind": self.kind,
            "title": self.title,
            "url": self.url,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "metadata": self.metadata,
            "visibility": self.visibility,
            "content": self.content,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Document:
        updated = data.get("updated_at")
        return cls(
            doc_id=data["doc_id"],
            source_id=data["source_id"],
            kind=data["kind"],
            title=data.get("title", ""),
            content=data.get("content", ""),
            url=data.get("url", ""),
            updated_at=datetime.fromisoformat(updated) if updated else None,
            metadata=data.get("metadata") or {},
            visibility=data.get("visibility") or Visibility.PUBLIC.value,
        )


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    index: int
    text: str  # exactly what is embedded: the heading path line, a blank line, then the body
    heading_path: tuple[str, ...] = ()

    @property
    def chunk_id(self) -> str:
        return chunk_uuid(self.doc_id, self.index)

    @cached_property
    def chunk_hash(self) -> str:
        """Hash of the embedded text: equal hashes have equal vectors, in any document."""
        return text_hash(self.text)


def indexed_hash(content_hash: str, chunking_signature: str) -> str:
    """The `doc_hash` stored with a document's chunks: its content hash and how it was split, so
    a change of chunking settings re-splits documents whose text did not change."""
    return text_hash(f"{content_hash}|{chunking_signature}")
