"""Sources never stop on one crafted record and are no way in: a GitHub issue whose body is an
object, a Slack message whose text is a number and front matter nested thousands deep each fail
alone, named; a Slack export zip bomb is refused before it inflates; credentials for a docs
repository come from an Airflow connection and reach no log, error or file; a symlink cannot
get past `exclude` or into `.git/`."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from source_helpers import SAMPLES
from wire_git import GitHttpServer

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "unit"))
from test_docs_source import git, load, make_source, reasons, write  # noqa: E402

TOKEN = "ghp_R4g1o0pT0k3nN3v3rL0gg3d0123456789ab"


def read(source_config: dict, root: Path):
    from ragloop.sources import ExtractReport, make_source as make

    source = make(source_config, root)
    report = ExtractReport(source_config["id"])
    return {d.doc_id: d for d in source.read(report, {})}, report


def github_export(tmp_path: Path, mutate) -> Path:
    records = json.loads((SAMPLES / "github" / "issues.json").read_text())
    mutate(records)
    path = tmp_path / "issues.json"
    path.write_text(json.dumps(records))
    return path


def test_a_github_issue_whose_body_is_an_object_fails_alone(tmp_path):
    def mutate(records):
        records[0]["body"] = {"html": "<p>an object, not text</p>"}
        records[1]["user"] = "a login where an object belongs"
    export = github_export(tmp_path, mutate)
    first, second = (r["number"] for r in json.loads(export.read_text())[:2])
    documents, report = read({"id": "gh", "type": "github_issues", "repo": "fernwood/fernwood", "export": str(export)}, tmp_path)
    failed = reasons(report.failed)
    assert failed[f"fernwood/fernwood#{first}"].startswith("cannot be read: AttributeError")
    assert f"fernwood/fernwood#{second}" in failed
    assert f"gh:fernwood/fernwood#{first}" in report.failed_doc_ids  # its indexed version is kept
    assert len(documents) >= 4 and f"gh:fernwood/fernwood#{first}" not in documents


def test_a_slack_message_whose_text_is_a_number_fails_its_thread_alone(tmp_path):
    export = tmp_path / "slack"
    shutil.copytree(SAMPLES / "slack", export)
    day = sorted((export / "help").glob("*.json"))[0]
    messages = json.loads(day.read_text())
    crafted = next(m for m in messages if not m.get("subtype") and not m.get("bot_id"))
    crafted["text"] = 12345
    day.write_text(json.dumps(messages))
    documents, report = read({"id": "sl", "type": "slack", "export": str(export)}, tmp_path)
    baseline, _ = read({"id": "sl", "type": "slack", "export": str(SAMPLES / "slack")}, tmp_path)
    thread = crafted.get("thread_ts") or crafted["ts"]
    failed = reasons(report.failed)
    assert list(failed) == [f"#help thread {thread}"]
    assert failed[f"#help thread {thread}"].startswith("cannot be read: ") and "'int'" in failed[f"#help thread {thread}"]
    assert set(documents) == set(baseline) - {f"sl:{report.failed_doc_ids[0].split(':', 1)[1]}"}
    assert len(documents) == len(baseline) - 1


def test_front_matter_nested_thousands_deep_fails_alone(tmp_path):
    docs = tmp_path / "docs"
    write(docs, "good.md", "# Good\n\nFine.\n")
    write(docs, "nested.md", "---\ntitle: " + "[" * 20_000 + "]" * 20_000 + "\n---\n# Nested\n")
    documents, report = load(make_source(tmp_path, path="docs"))
    assert set(documents) == {"t:good.md"}
    assert reasons(report.failed) == {"nested.md": "malformed front matter: nested too deeply"}


ZIP_BOMB_READER = """
import json, resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from ragloop.sources import ExtractReport, make_source
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
config = {"id": "sl", "type": "slack", "export": sys.argv[1]}
source = make_source(config, Path(sys.argv[1]).parent)
report = ExtractReport("sl")
documents = list(source.read(report, {}))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"documents": len(documents), "failed": [f.to_json() for f in report.failed],
                  "before_mb": before / 1024, "peak_mb": peak / 1024}))
"""


def test_a_slack_export_zip_bomb_is_refused_before_it_inflates(tmp_path):
    bomb = tmp_path / "export.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted((SAMPLES / "slack").rglob("*.json")):
            archive.write(path, path.relative_to(SAMPLES / "slack").as_posix())
        block = b"a" * (1 << 20)
        # One day file of 600 MB (past the size limit), one of 50 MB (under it, but inflating
        # about a thousand times): both are one message of repeated letters.
        for day, megabytes in (("help/2030-01-01.json", 600), ("help/2030-01-02.json", 50)):
            with archive.open(day, "w", force_zip64=True) as member:
                member.write(b'[{"type": "message", "ts": "1893456000.000100", "user": "U1", "text": "')
                for _ in range(megabytes):
                    member.write(block)
                member.write(b'"}]')
    assert bomb.stat().st_size < 2_000_000
    result = subprocess.run([sys.executable, "-c", ZIP_BOMB_READER, str(bomb), str(REPO_ROOT / "include")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    failed = {f["item"]: f["reason"] for f in outcome["failed"]}
    assert set(failed) == {"help/2030-01-01.json", "help/2030-01-02.json"}
    assert failed["help/2030-01-01.json"].endswith("expands to 629145674 bytes, more than 134217728")
    assert failed["help/2030-01-02.json"].endswith("more than 100 times: not read (a zip bomb?)")
    assert outcome["documents"] > 0  # the rest of the export is read
    print(f"zip bomb of {bomb.stat().st_size} bytes declaring 650 MB: peak RSS {outcome['peak_mb']:.0f} MB "
          f"(before reading {outcome['before_mb']:.0f} MB)")
    assert outcome["peak_mb"] - outcome["before_mb"] < 200  # nowhere near the 600 MB it declares


def test_repo_credentials_come_from_a_connection_and_are_written_nowhere(tmp_path, monkeypatch, caplog):
    from ragloop.sources.base import SourceConfigError, SourceError

    served = tmp_path / "served"
    upstream = served / "docs.git"
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "--quiet", "--initial-branch=main")
    write(work, "guide.md", "# Guide\n\nHow to do it.\n")
    git(work, "add", ".")
    git(work, "commit", "--quiet", "-m", "first")
    git(tmp_path, "clone", "--quiet", "--bare", str(work), str(upstream))
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    caplog.set_level(logging.DEBUG)

    with GitHttpServer(served, "x-access-token", TOKEN) as server:
        url = server.url("docs.git")
        # In the URL: refused before anything runs, and the error does not repeat the token.
        with pytest.raises(SourceConfigError) as in_url:
            make_source(tmp_path, repo=url.replace("http://", f"http://x-access-token:{TOKEN}@"))
        assert TOKEN not in str(in_url.value) and "put them in an Airflow connection" in str(in_url.value)
        with pytest.raises(SourceConfigError, match="holds credentials"):
            make_source(tmp_path, repo=url.replace("http://", f"http://{TOKEN}@"))

        # No credentials: git's refusal is an error naming the repository, the source goes no further.
        with pytest.raises(SourceError, match=r"git fetch HEAD failed for http://127\.0\.0\.1"):
            load(make_source(tmp_path, repo=url))

        monkeypatch.setenv("AIRFLOW_CONN_DOCS_GIT", json.dumps({"conn_type": "generic", "login": "x-access-token",
                                                                "password": TOKEN}))
        documents, report = load(make_source(tmp_path, repo=url, connection="docs_git"))
        assert set(documents) == {"t:guide.md"} and not report.failed
        assert server.authorizations[-1] == server.expected

    written = [p for p in cache.rglob("*") if p.is_file()]
    assert any(p.name == "config" and p.parent.name == ".git" for p in written)
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in caplog.text


def test_symlinks_cannot_pass_exclude_or_reach_git(tmp_path, monkeypatch):
    repo = tmp_path / "upstream"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    write(repo, "guide.md", "# Guide\n")
    write(repo, "changelog.md", "# Changelog\n\nInternal notes.\n")
    (repo / "notes.md").symlink_to("changelog.md")
    (repo / "gitconfig.md").symlink_to(".git/config")
    (repo / "alias.md").symlink_to("guide.md")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "first")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for source in (make_source(tmp_path, path="upstream", exclude=["changelog*"]),
                   make_source(tmp_path, repo=str(repo), exclude=["changelog*"])):
        documents, report = load(source)
        assert set(documents) == {"t:guide.md", "t:alias.md"}
        assert reasons(report.skipped) == {
            "notes.md": "symlink to changelog.md, which include/exclude leave out",
            "gitconfig.md": "symlink to .git/config, in a hidden folder",
        }
        assert not report.failed
