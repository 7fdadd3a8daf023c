"""Sources: what ragloop ingests. One module per kind; `base` holds the protocol and the per-item
failure report, `registry` which class reads which type."""

from ragloop.sources.base import ExtractReport, Failure, Source, SourceConfigError
from ragloop.sources.registry import SOURCE_TYPES, make_source, source_class

__all__ = ["SOURCE_TYPES", "ExtractReport", "Failure", "Source", "SourceConfigError", "make_source", "source_class"]
