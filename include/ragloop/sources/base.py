"""The source protocol, in the spirit of Onyx connectors: a source says what it can do.

- `load_all()` yields every Document the source holds now (all sources).
- A source whose `load_all()` sees everything (`lists_all_ids`) gives a complete listing, so
  documents missing from it can be pruned. A failed item that names its document (a file, a
  thread) keeps only that document from being pruned; a failure that hides items (a folder that
  cannot be listed, a channel or an export file that cannot be read) makes the listing
  incomplete, and then nothing is pruned.
- `read(report, watermarks, full_listing)` is what the pipeline calls. API sources (live Slack
  and GitHub) read incrementally from per-item watermarks (a channel, a repository) that the
  pipeline keeps in the index; they propose the next watermarks in `report.watermarks` only for
  items read without a failure, and the pipeline stores them only after the documents are
  indexed. Their listing is complete only on a full-listing run (`ApiSource`).
- `list_ids(report)` (optional, Onyx's "slim" listing) yields the id of every document the source
  holds now, without reading content. When a run's own listing is not complete (an incremental
  read), the extract step lists ids too, and the plan prunes the indexed documents missing from
  that listing, so deletions are noticed without a full-listing run. A failure that names no
  document makes the ids listing incomplete, and then it prunes nothing.

Problems with one item (a file, a channel, an issue) never stop the batch: the source records
them in its `ExtractReport` with the item's name and the reason, logs them, and goes on.
"""

from __future__ import annotations

import functools
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from collections.abc import Iterator

from ragloop.documents import VISIBILITIES, Document, Visibility
from ragloop.errors import RagloopError

log = logging.getLogger(__name__)


class SourceConfigError(RagloopError, ValueError):
    """A source's configuration is wrong; `key` names the offending key when there is one."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


class SourceError(RagloopError):
    """The source as a whole cannot be read (repository unreachable, folder gone)."""


@dataclass
class Failure:
    item: str  # the file, channel or issue, as a person would name it
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"item": self.item, "reason": self.reason}


@dataclass
class ExtractReport:
    source_id: str
    seen: int = 0  # items looked at (files matched, threads, issues)
    # Items that exist but could not be read: what was indexed for them before is kept.
    failed: list[Failure] = field(default_factory=list)
    # Items read fine that hold nothing to index (an empty file): not documents, so an older
    # indexed version is pruned like a deleted file.
    skipped: list[Failure] = field(default_factory=list)
    # doc_ids of failed items, so that their indexed versions are never pruned.
    failed_doc_ids: list[str] = field(default_factory=list)
    # Failures that name no document (a folder, a channel, an export file): items may be hidden
    # behind them, so the listing is incomplete and prunes nothing.
    listing_gaps: list[Failure] = field(default_factory=list)
    # doc_ids of items seen and positively left out (filtered by the config, emptied): an
    # incremental run, which prunes nothing else, removes their indexed versions.
    skipped_doc_ids: list[str] = field(default_factory=list)
    # item (channel id, repository) -> its next watermark state, set only for items read in
    # full; the pipeline stores these in the index after the run's documents are indexed.
    watermarks: dict[str, dict] = field(default_factory=dict)

    def fail(self, item: str, reason: str, doc_id: str | None = None) -> None:
        """One item could not be read. With `doc_id`, the item is that one document and only it
        is kept from pruning; without, it may hide documents, and the listing is incomplete."""
        log.warning("%s: skipped %s: %s", self.source_id, item, reason)
        failure = Failure(item, reason)
        self.failed.append(failure)
        if doc_id:
            self.failed_doc_ids.append(doc_id)
        else:
            self.listing_gaps.append(failure)

    def skip(self, item: str, reason: str, doc_id: str | None = None) -> None:
        log.info("%s: nothing to index in %s: %s", self.source_id, item, reason)
        self.skipped.append(Failure(item, reason))
        if doc_id:
            self.skipped_doc_ids.append(doc_id)


# Slack threads are a community's or a team's conversation: internal unless a source says otherwise.
DEFAULT_VISIBILITY = {"slack": Visibility.INTERNAL.value}


def _stamping_visibility(method):
    @functools.wraps(method)
    def documents(self, *args, **kwargs):
        for document in method(self, *args, **kwargs):
            if document.visibility != self.visibility:
                document.visibility = self.visibility
                document.__dict__.pop("content_hash", None)  # a hash taken before is of the old visibility
            yield document

    documents._stamps_visibility = True  # type: ignore[attr-defined]
    return documents


class Source(ABC):
    """One configured source. Subclasses declare their kind, their config keys and what they can do."""

    type: ClassVar[str]  # the `type:` in sources.yaml
    kind: ClassVar[str]  # the Document kind it produces
    lists_all_ids: ClassVar[bool] = False
    # Keys a source of this type accepts besides id and type: name -> (python type(s), required).
    config_keys: ClassVar[dict[str, tuple[Any, bool]]] = {}

    def __init__(self, config: dict[str, Any], project_root: Path):
        self.config = config
        self.id: str = config["id"]
        self.project_root = project_root
        self.visibility: str = config.get("visibility") or DEFAULT_VISIBILITY.get(self.type, Visibility.PUBLIC.value)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every document a source yields carries the source's visibility, whichever of its
        # methods yields it, without each source type having to remember to set it.
        super().__init_subclass__(**kwargs)
        for name in ("load_all", "read"):
            if name in cls.__dict__ and not getattr(cls.__dict__[name], "_stamps_visibility", False):
                setattr(cls, name, _stamping_visibility(cls.__dict__[name]))

    @classmethod
    def check_config(cls, config: dict[str, Any], project_root: Path) -> None:
        """Raise SourceConfigError naming the key for anything wrong, before anything runs.
        The base checks unknown keys, required keys and types; subclasses add their own checks."""
        for key, value in config.items():
            if key in ("id", "type"):
                continue
            if key == "visibility":
                if value not in VISIBILITIES:
                    raise SourceConfigError(
                        f"source {config['id']!r}: visibility must be one of {', '.join(VISIBILITIES)}, not {value!r}", key
                    )
                continue
            if key not in cls.config_keys:
                known = ", ".join(sorted(["id", "type", *cls.config_keys]))
                raise SourceConfigError(
                    f"source {config['id']!r}: unknown key {key!r} for type {cls.type!r} (expected one of {known})", key
                )
            types, _ = cls.config_keys[key]
            if value is not None and not isinstance(value, types):
                expected = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
                raise SourceConfigError(
                    f"source {config['id']!r}: {key} must be {expected}, not {type(value).__name__} {value!r}", key
                )
        for key, (_, required) in cls.config_keys.items():
            if required and config.get(key) is None:
                raise SourceConfigError(f"source {config['id']!r}: missing required key {key!r}", key)

    @abstractmethod
    def load_all(self, report: ExtractReport) -> Iterator[Document]:
        """Every document the source holds now; per-item problems go to `report`."""

    @property
    def uses_watermarks(self) -> bool:
        """True when `read` wants the watermarks stored in the index (live API sources)."""
        return False

    def lists_everything(self, full_listing: bool) -> bool:
        """Whether this run's listing holds every id the source has (so missing ones may be pruned)."""
        return self.lists_all_ids

    def read(self, report: ExtractReport, watermarks: dict[str, dict], full_listing: bool = False) -> Iterator[Document]:
        """The documents of this run: everything, or for an API source what changed since its
        watermarks (everything when `full_listing`)."""
        return self.load_all(report)

    def list_ids(self, report: ExtractReport) -> Iterator[str]:
        """The ids-only listing: the `doc_id` of every document the source holds now, without
        reading their content (a source implements it when that is much cheaper than `read`).
        Per-item problems go to `report` as in `load_all`: `report.fail(item, reason)` without a
        doc_id makes this listing incomplete, so it prunes nothing."""
        raise NotImplementedError(f"{type(self).__name__} has no ids-only listing")

    @property
    def offers_id_listing(self) -> bool:
        """True when the source implements `list_ids` (the extract step then uses it to prune on
        runs whose own listing is incomplete)."""
        return type(self).list_ids is not Source.list_ids


class ApiSource(Source):
    """A source read either from a live API through an Airflow connection (`connection:`) or from
    an export on disk (`export:`), exactly one of them. Live, it reads incrementally from its
    watermarks and lists everything only on a full-listing run; an export is read whole."""

    export_kind: ClassVar[str]  # what `export:` names, for the config error

    def __init__(self, config: dict[str, Any], project_root: Path):
        super().__init__(config, project_root)
        self.live = config.get("connection") is not None

    @classmethod
    def check_config(cls, config: dict[str, Any], project_root: Path) -> None:
        super().check_config(config, project_root)
        where = f"source {config['id']!r}"
        has_connection, has_export = config.get("connection") is not None, config.get("export") is not None
        if has_connection == has_export:
            raise SourceConfigError(
                f"{where}: needs exactly one of 'connection' (an Airflow connection id, for the live API) or "
                f"'export' ({cls.export_kind})",
                "export" if has_export else "connection",
            )
        if has_connection and not str(config["connection"]).strip():
            raise SourceConfigError(f"{where}: connection must be an Airflow connection id, not empty", "connection")
        if has_export:
            target = cls.resolve_export(config, project_root)
            if not target.exists():
                raise SourceConfigError(f"{where}: export {target} does not exist", "export")

    @staticmethod
    def resolve_export(config: dict[str, Any], project_root: Path) -> Path:
        return (project_root / Path(config["export"]).expanduser()).resolve()

    @property
    def export_path(self) -> Path:
        return self.resolve_export(self.config, self.project_root)

    @property
    def uses_watermarks(self) -> bool:
        return self.live

    def lists_everything(self, full_listing: bool) -> bool:
        return full_listing or not self.live

    def load_all(self, report: ExtractReport) -> Iterator[Document]:
        return self.read(report, {}, full_listing=True)

    @abstractmethod
    def read(self, report: ExtractReport, watermarks: dict[str, dict], full_listing: bool = False) -> Iterator[Document]:
        """Live: what changed since `watermarks` (everything when `full_listing`); export: everything."""


def check_whole_number(config: dict[str, Any], key: str, least: int) -> None:
    value = config.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
        raise SourceConfigError(f"source {config['id']!r}: {key} must be a whole number ≥ {least}, not {value!r}", key)


def check_string_list(config: dict[str, Any], key: str, allowed: tuple[str, ...] | None = None) -> None:
    values = config.get(key)
    if values is None:
        return
    if not all(isinstance(v, str) and v.strip() for v in values):
        raise SourceConfigError(f"source {config['id']!r}: {key} must be a list of non-empty strings, not {values!r}", key)
    for value in values:
        if allowed and value not in allowed:
            raise SourceConfigError(f"source {config['id']!r}: {key} has {value!r} (expected any of {', '.join(allowed)})", key)


def record_failure_reason(err: BaseException) -> str:
    """Why one record (a file, a thread, an issue) could not be turned into a document, when it
    broke something other than the source's own checks: its record is named by the caller, so
    this says what went wrong, without a traceback. A crafted record (a body that is an object,
    front matter nested thousands deep) fails alone: the rest of the source is still read."""
    if isinstance(err, RecursionError):
        return "nested too deeply to read"
    text = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
    return f"cannot be read: {type(err).__name__}" + (f": {text}" if text else "")
