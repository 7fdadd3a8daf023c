"""A project outside ragloop, written into a temp folder by the tests: the package `acme_kb` with
a source of its own (`acme_kb.notes:NotesSource`, team notes kept as JSON lines), and optionally
an installed distribution that registers it in the `ragloop.sources` entry-point group.

Written only against the public contract (`ragloop.sources.Source`, `ExtractReport`, `Document`)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

NOTES_SOURCE = textwrap.dedent(
    '''
    """Team notes, one JSON object a line: {"id", "title", "body", "url"}."""

    import json
    from pathlib import Path

    from ragloop.documents import Document
    from ragloop.sources import ExtractReport, Source, SourceConfigError


    class NotesSource(Source):
        type = "acme_notes"
        kind = "docs"
        lists_all_ids = True  # the file holds every note: a note gone from it is pruned
        config_keys = {"path": (str, True)}

        @classmethod
        def check_config(cls, config, project_root):
            super().check_config(config, project_root)
            if not (project_root / config["path"]).is_file():
                raise SourceConfigError(f"source {config['id']!r}: notes file {config['path']} does not exist", "path")

        def load_all(self, report: ExtractReport):
            for number, line in enumerate((self.project_root / self.config["path"]).read_text().splitlines(), 1):
                if not line.strip():
                    continue
                report.seen += 1
                try:
                    note = json.loads(line)
                    yield Document(
                        doc_id=f"{self.id}:{note['id']}",
                        source_id=self.id,
                        kind=self.kind,
                        title=note["title"],
                        content=note["body"],
                        url=note.get("url", ""),
                    )
                except (ValueError, KeyError) as err:
                    report.fail(f"line {number}", f"not a note: {err}")


    class PolledNotesSource(NotesSource):
        """The same notes read incrementally, as an API would be polled: only notes whose
        `updated` (an ISO date) is after the watermark; it lists everything only on a
        full-listing run, so an incremental run alone never prunes a deleted note."""

        type = "acme_polled_notes"
        lists_all_ids = False

        @property
        def uses_watermarks(self):
            return True

        def lists_everything(self, full_listing):
            return full_listing

        def read(self, report, watermarks, full_listing=False):
            since = "" if full_listing else (watermarks.get("notes") or {}).get("watermark") or ""
            newest = since
            for document in self.load_all(report):
                updated = self.updated[document.doc_id]
                newest = max(newest, updated)
                if full_listing or updated > since:
                    yield document
            if not report.failed:
                report.watermarks["notes"] = {"watermark": newest}

        @property
        def updated(self):
            lines = (self.project_root / self.config["path"]).read_text().splitlines()
            notes = [json.loads(line) for line in lines if line.strip()]
            return {f"{self.id}:{note['id']}": note.get("updated", "") for note in notes}


    class SlimNotesSource(PolledNotesSource):
        """Polled notes that also offer the ids-only listing: the ids come from the notes'
        index file (`index.txt` beside the notes, one id a line), without reading any note."""

        type = "acme_slim_notes"

        def list_ids(self, report):
            index = (self.project_root / self.config["path"]).with_name("index.txt")
            if not index.is_file():
                report.fail(index.name, "the notes index cannot be read")  # names no note: prunes nothing
                return
            for line in index.read_text().splitlines():
                if line.strip():
                    yield f"{self.id}:{line.strip()}"
    '''
)

NOTES = [
    {"id": "deploy-freeze", "title": "Deploy freeze", "url": "https://notes.acme.example/deploy-freeze",
     "body": "# Deploy freeze\n\nThe Acme deploy freeze starts every Friday at 15:00 UTC and ends on Monday at 08:00 UTC. "
             "Only on-call engineers may ship during a freeze, with a second approver."},
    {"id": "pager-rota", "title": "Pager rota", "url": "https://notes.acme.example/pager-rota",
     "body": "# Pager rota\n\nThe pager rota changes hands on Tuesdays at 10:00. Hand-over notes go to the #oncall channel."},
]


def write_project(folder: Path, entry_point: str | None = None) -> Path:
    """The project's importable folder (put it on sys.path / PYTHONPATH); the notes at
    `folder/notes.jsonl`. With `entry_point`, a distribution `acme-kb` whose metadata registers
    the source under that name in the `ragloop.sources` group."""
    package = folder / "acme_kb"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "notes.py").write_text(NOTES_SOURCE)
    (folder / "notes.jsonl").write_text("".join(json.dumps(note) + "\n" for note in NOTES))
    if entry_point:
        dist = folder / "acme_kb-1.0.dist-info"
        dist.mkdir(exist_ok=True)
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-kb\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(f"[ragloop.sources]\n{entry_point} = acme_kb.notes:NotesSource\n")
    return folder
