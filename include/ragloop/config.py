"""The project configuration: `include/sources.yaml`, or the file named by `--config` / `RAGLOOP_CONFIG`.

Shape (extend it, never rename it; scripts and DAGs rely on it):

    collection: RagloopChunks
    embedder: local            # local | openai | {type: openai, model: ..., connection: ..., dimensions: ...}
    chunking: {max_tokens: 256, overlap_tokens: 32}
    sources:
      - {id: samples-docs, type: docs, ...}

Mistakes are reported with the file, the line and the key, before anything runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_ENV = "RAGLOOP_CONFIG"
TOP_LEVEL_KEYS = {"collection", "embedder", "chunking", "sources"}
CHUNKING_KEYS = {"max_tokens", "overlap_tokens"}
SOURCE_TYPES = {"docs", "slack", "github_issues"}
COLLECTION_NAME = re.compile(r"^[A-Z][_0-9A-Za-z]*$")


class ConfigError(ValueError):
    pass


@dataclass
class Config:
    path: Path
    collection: str = "RagloopChunks"
    embedder: Any = "local"
    chunking: dict = field(default_factory=lambda: {"max_tokens": 256, "overlap_tokens": 32})
    sources: list[dict] = field(default_factory=list)

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
    from ragloop.localenv import project_root

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
        chunking = data["chunking"] or {}
        if not isinstance(chunking, dict):
            raise ConfigError(f"{path}:{keys['chunking']}: chunking must be a mapping")
        for key in chunking:
            if key not in CHUNKING_KEYS:
                raise ConfigError(f"{path}:{keys['chunking']}: unknown chunking key {key!r}")
            if not isinstance(chunking[key], int) or chunking[key] < 0:
                raise ConfigError(f"{path}:{keys['chunking']}: chunking.{key} must be a whole number ≥ 0")
        config.chunking = {**config.chunking, **chunking}
    if "sources" in data:
        config.sources = _check_sources(path, root, data["sources"])
    return config


def _check_embedder(path: Path, line: int, spec: Any) -> None:
    if spec in ("local", "openai"):
        return
    if isinstance(spec, dict) and spec.get("type") in ("local", "openai"):
        return
    raise ConfigError(f"{path}:{line}: embedder must be 'local', 'openai' or a mapping with type: local|openai")


def _check_sources(path: Path, root: yaml.MappingNode, sources: Any) -> list[dict]:
    node = next(value for key, value in root.value if key.value == "sources")
    if sources is None:
        return []
    if not isinstance(sources, list):
        raise ConfigError(f"{path}:{_line(node)}: sources must be a list")
    seen: dict[str, int] = {}
    for item_node, source in zip(node.value, sources):
        line = _line(item_node)
        if not isinstance(source, dict):
            raise ConfigError(f"{path}:{line}: each source must be a mapping with id and type")
        for key in ("id", "type"):
            if not source.get(key):
                raise ConfigError(f"{path}:{line}: source is missing {key!r}")
        if source["type"] not in SOURCE_TYPES:
            raise ConfigError(
                f"{path}:{line}: source {source['id']!r} has unknown type {source['type']!r} "
                f"(expected one of {', '.join(sorted(SOURCE_TYPES))})"
            )
        if source["id"] in seen:
            raise ConfigError(f"{path}:{line}: duplicate source id {source['id']!r} (first at line {seen[source['id']]})")
        seen[source["id"]] = line
    return sources
