"""The registry of source types: the one place that knows which class reads which `type` of
sources.yaml. Classes are imported when first asked for, so `ragloop.sources` stays cheap to
import (a DAG file parses without loading a git or Slack client), and `base` knows no concrete
source.

A `type` is one of three things, looked up in this order:

1. a built-in type (`SOURCE_TYPES`: one line here per kind of source ragloop ships);
2. an import path `my_package.module:MySource`, the class of a source defined outside ragloop;
3. a name registered by an installed package in the `ragloop.sources` entry-point group
   (`[project.entry-points."ragloop.sources"] confluence = "my_package.module:ConfluenceSource"`).

Whatever the way, the class must subclass `ragloop.sources.Source` (the contract: see
`ragloop.sources.base`); anything else is a `SourceConfigError` naming the type and what is wrong,
which the configuration check reports with the source's id and line.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from ragloop.sources.base import Source, SourceConfigError

# type in sources.yaml -> "module:class"
SOURCE_TYPES: dict[str, str] = {
    "docs": "ragloop.sources.docs:DocsSource",
    "slack": "ragloop.sources.slack:SlackSource",
    "github_issues": "ragloop.sources.github:GithubIssuesSource",
}
ENTRY_POINT_GROUP = "ragloop.sources"


def _registered() -> dict[str, str]:
    """Entry-point name -> "module:class", from installed packages."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _import_class(source_type: str, target: str) -> type[Source]:
    """The class `target` ("module:Class") names, checked to be a Source."""
    module_name, _, class_name = target.partition(":")
    if (
        not module_name
        or not class_name
        or not all(part.isidentifier() for part in [*module_name.split("."), *class_name.split(".")])
    ):
        raise SourceConfigError(
            f"type {source_type!r}: {target!r} is not an import path of the form package.module:Class", "type"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise SourceConfigError(f"type {source_type!r}: cannot import module {module_name!r} ({err})", "type") from None
    except Exception as err:  # noqa: BLE001 - a broken module of someone else's: named, not a traceback
        raise SourceConfigError(
            f"type {source_type!r}: importing module {module_name!r} failed: {type(err).__name__}: {err}", "type"
        ) from None
    for attribute in class_name.split("."):
        if not hasattr(obj, attribute):
            raise SourceConfigError(f"type {source_type!r}: module {module_name!r} has no {class_name!r}", "type")
        obj = getattr(obj, attribute)
    if not (isinstance(obj, type) and issubclass(obj, Source)):
        raise SourceConfigError(
            f"type {source_type!r}: {target} is not a subclass of ragloop.sources.Source (see its contract in ragloop.sources.base)",
            "type",
        )
    return obj


def source_class(source_type: str) -> type[Source]:
    """The class for a source `type`; a clear error naming the known types otherwise."""
    if source_type in SOURCE_TYPES:
        cls = _import_class(source_type, SOURCE_TYPES[source_type])
        if cls.type != source_type:  # the table and the class disagree: a bug, caught by the unit test too
            raise TypeError(f"{SOURCE_TYPES[source_type]} declares type {cls.type!r}, registered as {source_type!r}")
        return cls
    if ":" in source_type:
        return _import_class(source_type, source_type)
    registered = _registered()
    if source_type in registered:
        return _import_class(source_type, registered[source_type])
    known = ", ".join(sorted([*SOURCE_TYPES, *registered]))
    raise SourceConfigError(
        f"unknown type {source_type!r} (expected one of {known}); a source class of your own is named as package.module:Class",
        "type",
    )


def make_source(config: dict[str, Any], project_root: Path | None = None) -> Source:
    """The source a validated sources.yaml entry describes; paths resolve against `project_root`
    (the project folder by default)."""
    if project_root is None:
        from ragloop.paths import project_root as default_root

        project_root = default_root()
    return source_class(config["type"])(config, project_root)
