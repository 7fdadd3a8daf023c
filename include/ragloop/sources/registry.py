"""The registry of source types: the one place that knows which class reads which `type` of
sources.yaml. Classes are imported when first asked for, so `ragloop.sources` stays cheap to
import (a DAG file parses without loading a git or Slack client), and `base` knows no concrete
source. A new kind of source is one line here."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ragloop.sources.base import Source, SourceConfigError

# type in sources.yaml -> "module:class"
SOURCE_TYPES: dict[str, str] = {
    "docs": "ragloop.sources.docs:DocsSource",
    "slack": "ragloop.sources.slack:SlackSource",
    "github_issues": "ragloop.sources.github:GithubIssuesSource",
}


def source_class(source_type: str) -> type[Source]:
    """The class for a source `type`; a clear error naming the known types otherwise."""
    if source_type not in SOURCE_TYPES:
        raise SourceConfigError(f"unknown type {source_type!r} (expected one of {', '.join(sorted(SOURCE_TYPES))})", "type")
    module_name, class_name = SOURCE_TYPES[source_type].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if cls.type != source_type:  # the table and the class disagree: a bug, caught by the unit test too
        raise TypeError(f"{SOURCE_TYPES[source_type]} declares type {cls.type!r}, registered as {source_type!r}")
    return cls


def make_source(config: dict[str, Any], project_root: Path | None = None) -> Source:
    """The source a validated sources.yaml entry describes; paths resolve against `project_root`
    (the project folder by default)."""
    if project_root is None:
        from ragloop.localenv import project_root as default_root  # localenv reads settings: only when needed

        project_root = default_root()
    return source_class(config["type"])(config, project_root)
