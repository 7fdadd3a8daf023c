"""Sources from outside the package: `type: package.module:Class`, or a name in the
`ragloop.sources` entry-point group; bad import paths are errors naming the source and the path."""

from __future__ import annotations

import sys

import pytest

from custom_source_project import NOTES, write_project
from ragloop.config import ConfigError, load_config
from ragloop.sources import ExtractReport, make_source, source_class


@pytest.fixture
def project(tmp_path, monkeypatch):
    folder = write_project(tmp_path / "acme", entry_point="acme_notes")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("RAGLOOP_PROJECT_DIR", str(folder))
    yield folder
    for name in [m for m in sys.modules if m == "acme_kb" or m.startswith("acme_kb.")]:
        del sys.modules[name]


def write_sources(folder, source_type: str, **keys) -> str:
    extra = "".join(f"    {key}: {value}\n" for key, value in keys.items())
    path = folder / "sources.yaml"
    path.write_text(f"collection: Acme\nsources:\n  - id: team-notes\n    type: {source_type}\n{extra}")
    return str(path)


@pytest.mark.parametrize("source_type", ["acme_kb.notes:NotesSource", "acme_notes"])
def test_a_source_of_ones_own_reads_its_documents(project, source_type):
    config = load_config(write_sources(project, source_type, path="notes.jsonl"))
    source = make_source(config.source("team-notes"), project)
    report = ExtractReport("team-notes")
    documents = list(source.read(report, {}, False))
    assert [d.doc_id for d in documents] == [f"team-notes:{n['id']}" for n in NOTES]
    assert source.lists_everything(False) and report.seen == 2 and not report.failed
    assert all(d.visibility == "public" for d in documents)  # stamped by the base class, as for built-ins


def test_its_own_config_checks_run_and_name_the_line(project):
    with pytest.raises(ConfigError, match=r"sources.yaml:5: source 'team-notes': notes file missing.jsonl does not exist"):
        load_config(write_sources(project, "acme_kb.notes:NotesSource", path="missing.jsonl"))
    with pytest.raises(ConfigError, match=r"sources.yaml:6: source 'team-notes': unknown key 'subfolder'"):
        load_config(write_sources(project, "acme_kb.notes:NotesSource", path="notes.jsonl", subfolder="x"))


@pytest.mark.parametrize(
    ("source_type", "message"),
    [
        ("acme_kb.nope:NotesSource", r"cannot import module 'acme_kb.nope'"),
        ("acme_kb.notes:Missing", r"module 'acme_kb.notes' has no 'Missing'"),
        ("acme_kb.notes:json", r"acme_kb.notes:json is not a subclass of ragloop.sources.Source"),
        ("acme_kb.notes:Notes-Source", r"is not an import path of the form package.module:Class"),
        ("no-such-name", r"unknown type 'no-such-name' \(expected one of acme_notes, docs, github_issues, slack\)"),
    ],
)
def test_a_bad_type_names_the_source_the_line_and_the_path(project, source_type, message):
    with pytest.raises(ConfigError, match=r"sources.yaml:4: source 'team-notes' has type .*" + message if ":" in source_type
                       else r"sources.yaml:4: source 'team-notes' has " + message):
        load_config(write_sources(project, source_type, path="notes.jsonl"))


def test_a_module_that_breaks_on_import_is_named(project):
    (project / "acme_kb" / "broken.py").write_text("raise RuntimeError('no API key configured')\n")
    with pytest.raises(ConfigError, match=r"importing module 'acme_kb.broken' failed: RuntimeError: no API key configured"):
        load_config(write_sources(project, "acme_kb.broken:Source", path="notes.jsonl"))


def test_built_in_types_stay_first():
    assert source_class("docs").__module__ == "ragloop.sources.docs"


def test_the_ids_only_listing_is_offered_by_implementing_list_ids(project):
    """`offers_id_listing` follows whether the class implements `list_ids` (the Source contract's
    slim listing); the extract step asks for it only then."""
    from ragloop.ingest.extract import list_source_ids

    (project / "index.txt").write_text("deploy-freeze\npager-rota\n")
    slim = make_source({"id": "team-notes", "type": "acme_kb.notes:SlimNotesSource", "path": "notes.jsonl"}, project)
    polled = make_source({"id": "team-notes", "type": "acme_kb.notes:PolledNotesSource", "path": "notes.jsonl"}, project)
    assert slim.offers_id_listing and not polled.offers_id_listing
    assert list_source_ids(slim) == {"ids": ["team-notes:deploy-freeze", "team-notes:pager-rota"], "complete": True, "gaps": []}
    (project / "index.txt").unlink()
    incomplete = list_source_ids(slim)
    assert not incomplete["complete"] and incomplete["gaps"] == [{"item": "index.txt", "reason": "the notes index cannot be read"}]
    with pytest.raises(NotImplementedError, match="PolledNotesSource has no ids-only listing"):
        list(polled.list_ids(ExtractReport("team-notes")))
