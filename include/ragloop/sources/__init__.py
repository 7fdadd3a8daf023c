"""Sources: what ragloop ingests. One module per kind; `base` holds the protocol and the registry."""

from ragloop.sources.base import ExtractReport, Failure, Source, SourceConfigError, make_source, source_class

__all__ = ["ExtractReport", "Failure", "Source", "SourceConfigError", "make_source", "source_class"]
