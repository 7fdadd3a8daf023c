"""The project configuration: `include/sources.yaml`, or the file named by `--config` / `RAGLOOP_CONFIG`.

Shape (extend it, never rename it; scripts and DAGs rely on it):

    collection: RagloopChunks
    embedder: local            # local (ONNX) | local-torch | openai | hash | {type: openai, model: ..., connection: ..., dimensions: ...}
    chunking: {max_tokens: 256, overlap_tokens: 32}
    index_batch_chunks: 4000   # about how many chunks one mapped index task embeds
    staging: file:///...       # where extracted documents wait between tasks (default .ragloop/staging)
    staging_conn_id: aws_default
    replication: {factor: 3, consistency: QUORUM}   # Weaviate replicas of the collection (default 1) and
                               # the consistency level of writes and reads (default QUORUM when factor > 1, else ONE)
    llm: {connection: openai_default, model: gpt-4o-mini}   # answers (and the judge); omit: offline
    # llm.prices: {input: 0.15, output: 0.60}   # USD per million tokens, for the judge's cost estimate
    # llm.timeout: 120         # seconds per chat request (default 60); see docs/llm-servers.md
    product: Fernwood          # the product name the answer prompt speaks for
    review: {apps: [support-widget], sources: [slack-support]}   # answers held for approval in
                               # Airflow before write-back (or `review: all`); omit: none held
    sources:
      - {id: samples-docs, type: docs, ...}   # each type's keys: see ragloop.sources

Mistakes are reported with the file, the line and the key, before anything runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ragloop.errors import RagloopError
from ragloop.documents import QA_SOURCE_ID
from ragloop.feedback.settings import FeedbackRanking, parse_feedback_ranking

CONFIG_ENV = "RAGLOOP_CONFIG"
TOP_LEVEL_KEYS = {
    "collection",
    "embedder",
    "chunking",
    "sources",
    "index_batch_chunks",
    "staging",
    "staging_conn_id",
    "replication",
    "llm",
    "product",
    "written_back_share",
    "feedback_ranking",
    "review",
}
REVIEW_KEYS = {"apps", "sources"}
LLM_KEYS = {"connection", "model", "prices", "timeout"}
PRICE_KEYS = {"input", "output"}
CHUNKING_KEYS = {"max_tokens", "overlap_tokens"}
EMBEDDER_TYPES = ("local", "local-torch", "openai", "hash")
DEFAULT_INDEX_BATCH_CHUNKS = 4000
REPLICATION_KEYS = {"factor", "consistency"}
CONSISTENCY_LEVELS = ("ONE", "QUORUM", "ALL")
COLLECTION_NAME = re.compile(r"^[A-Z][_0-9A-Za-z]*$")


class ConfigError(RagloopError, ValueError):
    pass


@dataclass(frozen=True)
class KeyReference:
    """One key of sources.yaml as the configuration reference documents it
    (`tools/reference_pages.py` writes docs/configuration-reference.md from these)."""

    key: str  # dotted for nested keys: "chunking.max_tokens"
    accepts: str  # what the YAML value may be, as a person writes it
    meaning: str
    default: str = ""  # when it differs from the Config field's default (or the key has no field)


# Every key the loader accepts, with what it means. A unit test holds this to the sets the loader
# checks (TOP_LEVEL_KEYS, CHUNKING_KEYS, REPLICATION_KEYS, LLM_KEYS, PRICE_KEYS), and another to the
# generated page, so a key cannot be added without being documented.
CONFIG_REFERENCE: tuple[KeyReference, ...] = (
    KeyReference(
        "collection",
        "a Weaviate collection name (a capital letter, then letters, digits, _)",
        "The collection every source of this file is written to, and searched.",
    ),
    KeyReference(
        "embedder",
        "local | local-torch | openai | hash, or a mapping with type and its options",
        "What embeds chunks and questions: the local ONNX model (int8), the same model on torch, an "
        "OpenAI-compatible API through an Airflow connection, or `hash` (tests and benchmarks only: "
        "vectors without meaning). The collection records which one built it; another is refused.",
    ),
    KeyReference("chunking", "a mapping", "How documents are split (a source may override it with its own `chunking`)."),
    KeyReference("chunking.max_tokens", "a whole number ≥ 1", "The most tokens of the embedder's tokenizer in a chunk."),
    KeyReference(
        "chunking.overlap_tokens", "a whole number ≥ 0", "Tokens a chunk cut inside a long section repeats from the one before."
    ),
    KeyReference(
        "index_batch_chunks",
        "a whole number ≥ 1",
        "About how many chunks one mapped index task embeds (more batches when there would be over 64).",
    ),
    KeyReference(
        "staging",
        "a URL Airflow's ObjectStoragePath reads (file://, s3://)",
        "Where extracted documents wait between tasks; XCom carries only their paths.",
        "file://<project>/.ragloop/staging",
    ),
    KeyReference(
        "staging_conn_id",
        "an Airflow connection id",
        "The connection the staging store is reached with (e.g. aws_default for s3://).",
        "none",
    ),
    KeyReference(
        "replication",
        "a whole number (the factor) or a mapping",
        "How the collection is replicated across Weaviate nodes; fixed when the collection is created.",
    ),
    KeyReference("replication.factor", "a whole number ≥ 1", "How many Weaviate nodes hold each object."),
    KeyReference(
        "replication.consistency",
        "ONE | QUORUM | ALL",
        "How many replicas a write or a read waits for.",
        "QUORUM when factor > 1, else ONE",
    ),
    KeyReference(
        "llm",
        "none, a connection id, or a mapping",
        "The chat model for answers, query rewrites and the judge; leave it out for offline, extractive "
        "answers and the offline judge.",
        "none (offline)",
    ),
    KeyReference(
        "llm.connection",
        "an Airflow connection id",
        "The OpenAI-compatible API (any base URL in the connection's host).",
        "openai_default",
    ),
    KeyReference(
        "llm.model",
        "a model name",
        "The model answers and grades use (a prompt template may name its own).",
        "the prompt template's model",
    ),
    KeyReference(
        "llm.prices",
        "a mapping {input, output}",
        "USD per million tokens, for the judge's cost estimate.",
        "none (no cost estimate)",
    ),
    KeyReference(
        "llm.timeout",
        "a number of seconds > 0",
        "How long one chat call may take before it fails as a timeout (counted by the judge as such).",
    ),
    KeyReference("llm.prices.input", "a number ≥ 0", "USD per million prompt tokens."),
    KeyReference("llm.prices.output", "a number ≥ 0", "USD per million completion tokens."),
    KeyReference("product", "a non-empty string", "The product name the answer prompt speaks for."),
    KeyReference(
        "written_back_share",
        "a number from 0 to 1",
        "The most of a search's top k that written-back answers may take, rounded up (0.2: one of five); "
        "1 lifts the bound, 0 keeps them out of search.",
    ),
    KeyReference(
        "feedback_ranking",
        "a mapping",
        "Whether votes move retrieval and curated answers are served first (docs/feedback-ranking.md); "
        "hidden chunks are left out whatever it says.",
        "all off",
    ),
    KeyReference("feedback_ranking.boosts", "true | false", "Votes move the chunks they judged, within x0.5 to x2.", "false"),
    KeyReference(
        "feedback_ranking.curated_answers",
        "true | false",
        "A question close enough to a written-back answer's question is answered with it, without generating.",
        "false",
    ),
    KeyReference(
        "feedback_ranking.curated_threshold",
        "a number above 0, at most 1",
        "The cosine similarity of the two questions a curated answer needs (chosen out of sample: "
        "bench/results/curated-threshold.md).",
        "0.95",
    ),
    KeyReference(
        "feedback_ranking.half_life_days",
        "a mapping kind → days",
        "Votes on chunks of these kinds fade with this half-life.",
        "none (no decay)",
    ),
    KeyReference(
        "review",
        "all | none | a mapping {apps, sources}",
        "Which answers wait for a person's approval in Airflow before write-back (docs/review.md).",
        "none",
    ),
    KeyReference("review.apps", "a list of app names", "Answers recorded by these apps wait for review.", "none"),
    KeyReference("review.sources", "a list of source ids", "Answers citing a chunk of these sources wait for review.", "none"),
    KeyReference(
        "sources", "a list of mappings, each with id and type", "What is ingested; each type's own keys are listed below.", "none"
    ),
)


@dataclass(frozen=True)
class Replication:
    """How the collection is replicated across Weaviate nodes, and how many replicas a write or a
    read waits for. The factor is fixed when the collection is created; a deleted object is
    deleted on every replica (Weaviate's DeleteOnConflict strategy), so repair never brings a
    deleted chunk or a revoked answer back."""

    factor: int = 1
    consistency: str = "ONE"

    @classmethod
    def of(cls, factor: int = 1, consistency: str | None = None) -> Replication:
        return cls(factor, consistency or ("QUORUM" if factor > 1 else "ONE"))


@dataclass(frozen=True)
class Review:
    """Which answers wait for a person's approval in Airflow before they are written back (see
    docs/review.md): every one (`review: all`), or those recorded by one of `apps` or citing a
    chunk of one of `sources`. Empty: none wait (write-back as without review)."""

    everything: bool = False
    apps: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()

    @property
    def enabled(self) -> bool:
        return self.everything or bool(self.apps or self.sources)


@dataclass
class Config:
    path: Path
    collection: str = "RagloopChunks"
    embedder: Any = "local"
    chunking: dict = field(default_factory=lambda: {"max_tokens": 256, "overlap_tokens": 32})
    sources: list[dict] = field(default_factory=list)
    # Each mapped index task loads the embedder once (the local model: about 15 s in a new
    # process) and then embeds about 20 chunks/s; 4,000 chunks keep the load under a tenth.
    index_batch_chunks: int = DEFAULT_INDEX_BATCH_CHUNKS
    staging: str | None = None
    staging_conn_id: str | None = None
    replication: Replication = field(default_factory=Replication)
    # The chat model for answers, rewrites and the judge: {connection, model}; None = offline
    # (extractive answers, the offline judge).
    llm: dict | None = None
    product: str = "the product"
    # The most of a search's top k that written-back answers (kind qa) may take, as a share
    # (rounded up: 0.2 is one of five, one of three); 1 lifts the bound, 0 keeps them out.
    written_back_share: float = 0.2
    # Votes moving retrieval and curated answers served first (ragloop.feedback.settings): off by default.
    feedback_ranking: FeedbackRanking = field(default_factory=FeedbackRanking)
    review: Review = field(default_factory=Review)

    def chunking_for(self, source_id: str) -> dict:
        """The chunking settings of a source: the global ones with the source's overrides.
        Written-back answers (the `qa` source) use the global ones."""
        if source_id == QA_SOURCE_ID:
            return dict(self.chunking)
        return {**self.chunking, **(self.source(source_id).get("chunking") or {})}

    def quarantines_credentials(self, source_id: str) -> bool:
        """Whether chunks of this source's documents that hold a credential are kept out of public
        search (`quarantine_credentials: true`); written-back answers are checked before writing."""
        return source_id != QA_SOURCE_ID and bool(self.source(source_id).get(QUARANTINE_KEY, False))

    def source(self, source_id: str) -> dict:
        for source in self.sources:
            if source["id"] == source_id:
                return source
        raise ConfigError(f"{self.path}: no source with id {source_id!r} (known: {', '.join(self.source_ids())})")

    def source_ids(self) -> list[str]:
        return [s["id"] for s in self.sources]


def default_config_path() -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    from ragloop.paths import project_root

    return project_root() / "include" / "sources.yaml"


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _mapping_keys(node: yaml.MappingNode) -> dict[str, int]:
    return {key.value: _line(key) for key, _ in node.value}


def load_config(path: str | Path | None = None) -> Config:
    path = Path(path) if path else default_config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"Configuration file {path} does not exist") from None
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if root is None:
        return Config(path=path)
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path}:{_line(root)}: the configuration must be a mapping of keys")

    keys = _mapping_keys(root)
    for key, line in keys.items():
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"{path}:{line}: unknown key {key!r} (expected one of {', '.join(sorted(TOP_LEVEL_KEYS))})")
    config = Config(path=path)
    if "collection" in data:
        name = data["collection"]
        if not isinstance(name, str) or not COLLECTION_NAME.match(name):
            raise ConfigError(
                f"{path}:{keys['collection']}: collection {name!r} must start with a capital letter and hold "
                "only letters, digits and underscores (a Weaviate collection name)"
            )
        config.collection = name
    if "embedder" in data:
        config.embedder = data["embedder"]
        _check_embedder(path, keys["embedder"], config.embedder)
    if "chunking" in data:
        config.chunking = {**config.chunking, **_check_chunking(path, keys["chunking"], data["chunking"], "chunking")}
    if "index_batch_chunks" in data:
        value = data["index_batch_chunks"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{path}:{keys['index_batch_chunks']}: index_batch_chunks must be a whole number ≥ 1")
        config.index_batch_chunks = value
    for key in ("staging", "staging_conn_id"):
        if key in data:
            if not isinstance(data[key], str) or not data[key]:
                raise ConfigError(f"{path}:{keys[key]}: {key} must be a non-empty string")
            setattr(config, key, data[key])
    if "replication" in data:
        config.replication = _check_replication(path, keys["replication"], data["replication"])
    if data.get("llm") not in (None, "none", False):
        config.llm = _check_llm(path, keys["llm"], data["llm"])
    if "product" in data:
        if not isinstance(data["product"], str) or not data["product"].strip():
            raise ConfigError(f"{path}:{keys['product']}: product must be a non-empty string")
        config.product = data["product"].strip()
    if "written_back_share" in data:
        share = data["written_back_share"]
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ConfigError(
                f"{path}:{keys['written_back_share']}: written_back_share must be a number from 0 to 1 "
                f"(the most of a search's top k that written-back answers may take), not {share!r}"
            )
        config.written_back_share = float(share)
    if "feedback_ranking" in data:
        try:
            config.feedback_ranking = parse_feedback_ranking(data["feedback_ranking"])
        except ValueError as err:
            raise ConfigError(f"{path}:{keys['feedback_ranking']}: {err}") from None
    if "sources" in data:
        config.sources = _check_sources(path, root, data["sources"])
    if data.get("review") not in (None, "none", False):
        config.review = _check_review(path, keys["review"], data["review"], config.source_ids())
    return config


def _check_review(path: Path, line: int, spec: Any, source_ids: list[str]) -> Review:
    if spec in ("all", True):
        return Review(everything=True)
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}:{line}: review must be none, all, or a mapping {{apps: [...], sources: [...]}}")
    unknown = set(spec) - REVIEW_KEYS
    if unknown:
        raise ConfigError(f"{path}:{line}: unknown review key {sorted(unknown)[0]!r} (expected {', '.join(sorted(REVIEW_KEYS))})")
    lists = {}
    for key in sorted(REVIEW_KEYS):
        value = spec.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{path}:{line}: review.{key} must be a list of non-empty strings")
        lists[key] = frozenset(value)
    missing = sorted(lists["sources"] - set(source_ids))
    if missing:
        raise ConfigError(
            f"{path}:{line}: review.sources names {missing[0]!r}, not a source of this file (known: {', '.join(source_ids)})"
        )
    return Review(apps=lists["apps"], sources=lists["sources"])


def _check_chunking(path: Path, line: int, chunking: Any, where: str) -> dict:
    chunking = chunking or {}
    if not isinstance(chunking, dict):
        raise ConfigError(f"{path}:{line}: {where} must be a mapping")
    for key in chunking:
        if key not in CHUNKING_KEYS:
            raise ConfigError(f"{path}:{line}: unknown {where} key {key!r} (expected {', '.join(sorted(CHUNKING_KEYS))})")
        if not isinstance(chunking[key], int) or isinstance(chunking[key], bool) or chunking[key] < 0:
            raise ConfigError(f"{path}:{line}: {where}.{key} must be a whole number ≥ 0")
    if chunking.get("max_tokens") == 0:
        raise ConfigError(f"{path}:{line}: {where}.max_tokens must be at least 1")
    return chunking


def _check_replication(path: Path, line: int, spec: Any) -> Replication:
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = {"factor": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}:{line}: replication must be a mapping {{factor: N, consistency: ONE|QUORUM|ALL}}")
    unknown = set(spec) - REPLICATION_KEYS
    if unknown:
        raise ConfigError(
            f"{path}:{line}: unknown replication key {sorted(unknown)[0]!r} (expected {', '.join(sorted(REPLICATION_KEYS))})"
        )
    factor = spec.get("factor", 1)
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise ConfigError(
            f"{path}:{line}: replication.factor must be a whole number ≥ 1 (the Weaviate nodes holding each object)"
        )
    consistency = spec.get("consistency")
    if consistency is not None:
        if not isinstance(consistency, str) or consistency.upper() not in CONSISTENCY_LEVELS:
            raise ConfigError(f"{path}:{line}: replication.consistency must be one of {', '.join(CONSISTENCY_LEVELS)}")
        consistency = consistency.upper()
    return Replication.of(factor, consistency)


def _check_llm(path: Path, line: int, spec: Any) -> dict:
    if isinstance(spec, str):
        spec = {"connection": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}:{line}: llm must be none or a mapping with connection (and model)")
    unknown = set(spec) - LLM_KEYS
    if unknown:
        raise ConfigError(f"{path}:{line}: unknown llm key {sorted(unknown)[0]!r} (expected {', '.join(sorted(LLM_KEYS))})")
    for key in ("connection", "model"):
        if key in spec and (not isinstance(spec[key], str) or not spec[key]):
            raise ConfigError(f"{path}:{line}: llm.{key} must be a non-empty string")
    prices = spec.get("prices")
    if prices is not None:
        if (
            not isinstance(prices, dict)
            or set(prices) != PRICE_KEYS
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in prices.values())
        ):
            raise ConfigError(f"{path}:{line}: llm.prices must be {{input: N, output: N}}, USD per million tokens, each ≥ 0")
        prices = {k: float(v) for k, v in prices.items()}
    timeout = spec.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigError(f"{path}:{line}: llm.timeout must be a number of seconds > 0, not {timeout!r}")
    llm = {"connection": spec.get("connection", "openai_default"), "model": spec.get("model"), "prices": prices}
    if timeout is not None:
        llm["timeout"] = float(timeout)
    return llm


def _check_embedder(path: Path, line: int, spec: Any) -> None:
    if spec in EMBEDDER_TYPES:
        return
    if isinstance(spec, dict) and spec.get("type") in EMBEDDER_TYPES:
        return
    raise ConfigError(
        f"{path}:{line}: embedder must be one of {', '.join(EMBEDDER_TYPES)} or a mapping with type: {'|'.join(EMBEDDER_TYPES)}"
    )


def _check_sources(path: Path, root: yaml.MappingNode, sources: Any) -> list[dict]:
    node = next(value for key, value in root.value if key.value == "sources")
    if sources is None:
        return []
    if not isinstance(sources, list):
        raise ConfigError(f"{path}:{_line(node)}: sources must be a list")
    seen: dict[str, int] = {}
    for item_node, source in zip(node.value, sources, strict=False):
        line = _line(item_node)
        if not isinstance(source, dict):
            raise ConfigError(f"{path}:{line}: each source must be a mapping with id and type")
        for key in ("id", "type"):
            if not source.get(key):
                raise ConfigError(f"{path}:{line}: source is missing {key!r}")
        if not isinstance(source["id"], str) or not SOURCE_ID.match(source["id"]):
            raise ConfigError(
                f"{path}:{_mapping_keys(item_node).get('id', line)}: source id {source['id']!r} must be letters, digits, '-', '_' or '.' "
                "(it names staged files and is stored with every chunk)"
            )
        if source["id"] == QA_SOURCE_ID:
            raise ConfigError(
                f"{path}:{line}: source id {QA_SOURCE_ID!r} is reserved for written-back answers; choose another id"
            )
        if source["id"] in seen:
            raise ConfigError(f"{path}:{line}: duplicate source id {source['id']!r} (first at line {seen[source['id']]})")
        seen[source["id"]] = line
        _check_source(path, item_node, source)
    return sources


SOURCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
QUARANTINE_KEY = "quarantine_credentials"


def _check_source(path: Path, node: yaml.MappingNode, source: dict) -> None:
    """The source type's own checks (unknown keys, types, missing paths), reported at the line
    of the offending key."""
    from ragloop.paths import project_root
    from ragloop.sources.base import SourceConfigError
    from ragloop.sources.registry import source_class

    key_lines = _mapping_keys(node)
    try:
        cls = source_class(source["type"])
    except SourceConfigError as err:
        raise ConfigError(f"{path}:{key_lines['type']}: source {source['id']!r} has {err}") from None
    # Common to every source type, read by ingest (ingest.indexing): chunks holding a credential
    # are kept out of public search until the source is fixed.
    if QUARANTINE_KEY in source and not isinstance(source[QUARANTINE_KEY], bool):
        raise ConfigError(
            f"{path}:{key_lines[QUARANTINE_KEY]}: source {source['id']!r}: {QUARANTINE_KEY} must be true or false, "
            f"not {source[QUARANTINE_KEY]!r}"
        )
    try:
        cls.check_config({k: v for k, v in source.items() if k != QUARANTINE_KEY}, project_root())
    except SourceConfigError as err:
        line = key_lines.get(err.key or "", _line(node))
        raise ConfigError(f"{path}:{line}: {err}") from None
    if "chunking" in source:
        _check_chunking(path, key_lines["chunking"], source["chunking"], f"source {source['id']!r} chunking")
