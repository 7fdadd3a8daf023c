"""Issue 22: a docs folder's failures are per file. A file name that is not UTF-8 is one failed
record named by its escaped bytes; a failed file keeps only its own document from pruning; a
folder that cannot be listed (a failure naming no document) makes the listing incomplete."""

from __future__ import annotations

import os
from pathlib import Path

from ragloop.ingest.planning import plan_source
from ragloop.sources.base import ExtractReport
from ragloop.sources.docs import DocsSource


class Indexed:
    def __init__(self, source_id: str):
        self.source_id = source_id
        self.complete_hash = "old"


def read_folder(folder: Path) -> tuple[list, ExtractReport]:
    source = DocsSource({"id": "d", "type": "docs", "path": str(folder)}, folder)
    report = ExtractReport("d")
    return list(source.load_all(report)), report


def test_a_name_that_is_not_utf8_fails_alone_named_by_its_escaped_bytes(tmp_path):
    (tmp_path / "good.md").write_text("# Good\n\nText.\n")
    with open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.md"), "wb") as handle:
        handle.write(b"# Cafe\n\nText.\n")
    documents, report = read_folder(tmp_path)
    assert [d.doc_id for d in documents] == ["d:good.md"]
    assert [(f.item, f.reason) for f in report.failed] == [("caf\\xe9.md", "file name is not valid UTF-8; rename the file")]
    assert report.failed_doc_ids == ["d:caf\\xe9.md"] and not report.listing_gaps
    for value in [report.failed[0].item, *report.failed_doc_ids]:
        value.encode("utf-8")  # no lone surrogate left to break JSON or HTTP


def listing(failed_doc_ids: list[str], gaps: list[dict]) -> dict:
    return {"documents": {"d:a.md": ["h", 0, 0, 10]}, "shards": ["s0"], "failed_doc_ids": failed_doc_ids,
            "failures": [{"item": "x", "reason": "y"}], "listing_gaps": gaps, "skipped": [], "seen": 3,
            "seconds": 0.1, "complete": not gaps, "mode": "full"}


def test_a_failed_file_protects_its_own_document_only():
    report = ExtractReport("d")
    report.fail("broken.md", "binary file", "d:broken.md")
    assert not report.listing_gaps  # so stage_documents calls the listing complete
    indexed = {"d:a.md": Indexed("d"), "d:broken.md": Indexed("d"), "d:deleted.md": Indexed("d")}
    entry = plan_source(listing(report.failed_doc_ids, []), indexed, False, "sig", source_id="d",
                        max_tokens=256, overlap_tokens=32)["entry"]
    assert entry["prune"] == ["d:deleted.md"]


def test_a_failure_naming_no_document_prunes_nothing():
    report = ExtractReport("d")
    report.fail("sub/", "cannot list folder: Permission denied")
    assert [f.item for f in report.listing_gaps] == ["sub/"]
    indexed = {"d:a.md": Indexed("d"), "d:sub/hidden.md": Indexed("d")}
    entry = plan_source(listing([], [f.to_json() for f in report.listing_gaps]), indexed, False, "sig",
                        source_id="d", max_tokens=256, overlap_tokens=32)["entry"]
    assert entry["prune"] is None and "1 folders or channels failed to read" in entry["prune_skipped"]
