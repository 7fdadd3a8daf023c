"""Docs source: real files and real git repositories in tmp_path; no network."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC
from pathlib import Path

import pytest
import yaml

from ragloop.sources.base import ExtractReport, SourceConfigError, SourceError
from ragloop.sources.registry import source_class
from ragloop.sources.docs import DocsSource, compile_glob

REPO = Path(__file__).resolve().parents[2]


def make_source(root: Path, **config) -> DocsSource:
    config = {"id": "t", "type": "docs", **config}
    DocsSource.check_config(config, root)
    return DocsSource(config, root)


def load(source: DocsSource) -> tuple[dict, ExtractReport]:
    report = ExtractReport(source.id)
    return {doc.doc_id: doc for doc in source.load_all(report)}, report


def write(folder: Path, rel: str, content: str | bytes) -> Path:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def reasons(failures) -> dict[str, str]:
    return {failure.item: failure.reason for failure in failures}


# --- bundled samples -------------------------------------------------------------------------

def test_bundled_samples_load():
    config = yaml.safe_load((REPO / "include" / "sources.yaml").read_text())["sources"][0]
    assert source_class("docs") is DocsSource
    DocsSource.check_config(config, REPO)
    docs, report = load(DocsSource(config, REPO))
    assert len(docs) == 35 and report.seen == 35 and not report.failed and not report.skipped
    assert "samples-docs:changelog.md" not in docs
    assert list(docs) == sorted(docs)  # deterministic order: by relative path
    tokens = docs["samples-docs:api/authentication-tokens.md"]
    assert tokens.title == "Authentication and tokens"  # from front matter
    assert tokens.kind == "docs" and tokens.source_id == "samples-docs"
    assert tokens.url == "https://docs.fernwood.example/api/authentication-tokens.md"
    assert tokens.metadata["path"] == "api/authentication-tokens.md" and tokens.metadata["format"] == "markdown"
    assert tokens.metadata["description"].startswith("The three kinds of credentials")
    assert not tokens.content.startswith("---") and tokens.content.startswith("# Authentication and tokens")
    assert tokens.updated_at.tzinfo == UTC
    assert docs["samples-docs:sdk/go.md"].title == "Go SDK (fernwood-go)"  # from the first heading
    assert docs["samples-docs:troubleshooting/server-wont-start.md"].title == "fernd won't start"
    logging_doc = docs["samples-docs:configuration/logging.rst"]
    assert logging_doc.title == "Logging" and logging_doc.metadata["format"] == "rst"


# --- globs and listing -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("**/*.md", "a.md", True),
        ("**/*.md", "x/y/a.md", True),
        ("**/*.md", "a.mdx", False),
        ("**/changelog*", "changelog.md", True),
        ("**/changelog*", "x/changelog.rst", True),
        ("*.md", "a.md", True),
        ("*.md", "x/a.md", False),  # * stays within one folder
        ("guides/**/*.md", "guides/a.md", True),
        ("guides/**/*.md", "guides/x/y/a.md", True),
        ("guides/**/*.md", "other/guides/a.md", False),
        ("drafts/**", "drafts/x/y.md", True),
        ("?.md", "ab.md", False),
        ("[!_]*.md", "_draft.md", False),
        ("[a-c]*.md", "beta.md", True),
        ("[a-c]*.md", "delta.md", False),
        ("a+b(1).md", "a+b(1).md", True),  # regex characters are literal
    ],
)
def test_glob(pattern, path, matches):
    assert bool(compile_glob(pattern).fullmatch(path)) is matches


def test_include_exclude_and_hidden_folders(tmp_path):
    for rel in ("a.md", "x/b.mdx", "x/y/c.rst", "notes.txt", "drafts/d.md", "x/CHANGELOG.md", ".git/e.md", "x/.hidden/f.md"):
        write(tmp_path, rel, f"# {rel}\n")
    docs, report = load(make_source(tmp_path, path=".", exclude=["drafts/**", "**/CHANGELOG*"]))
    assert list(docs) == ["t:a.md", "t:x/b.mdx", "t:x/y/c.rst"] and report.seen == 3
    docs, _ = load(make_source(tmp_path, path=str(tmp_path), include=["**/*.txt"]))
    assert list(docs) == ["t:notes.txt"]


# --- per-file problems -----------------------------------------------------------------------

def test_problem_files_are_reported_and_the_rest_loads(tmp_path):
    write(tmp_path, "good.md", "# Good\n\nFine.\n")
    write(tmp_path, "bad-bytes.md", b"# Bad\n\n\x81\x8d\x8f\x90\x9d\n")  # invalid in UTF-8 and in cp1252
    write(tmp_path, "windows.md", "# Caf\xe9\n\nSaved by an old editor \u2013 in cp1252.\n".encode("cp1252"))
    write(tmp_path, "bom.md", "\ufeff# With BOM\n\ntext\n")
    write(tmp_path, "empty.md", "")
    write(tmp_path, "blank.md", "  \n\n")
    write(tmp_path, "only-front-matter.md", "---\ntitle: Nothing\n---\n\n")
    write(tmp_path, "image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write(tmp_path, "huge.md", "# Huge\n" + "word " * 1_000_000)  # 5 MB
    write(tmp_path, "bad-yaml.md", "---\ntitle: [unclosed\n---\n# Body\n")
    write(tmp_path, "list-yaml.md", "---\n- a\n- b\n---\n# Body\n")
    write(tmp_path, "unclosed.md", "---\ntitle: x\n# Body\n")
    (tmp_path / "escape.md").symlink_to(write(tmp_path.parent / f"{tmp_path.name}-outside", "secret.md", "# Secret\n"))
    (tmp_path / "inside.md").symlink_to(tmp_path / "good.md")

    docs, report = load(make_source(tmp_path, path="."))
    assert sorted(docs) == ["t:bom.md", "t:good.md", "t:inside.md", "t:windows.md"]
    assert docs["t:bom.md"].title == "With BOM" and not docs["t:bom.md"].content.startswith("\ufeff")
    assert docs["t:windows.md"].title == "Café" and "editor – in" in docs["t:windows.md"].content
    failed = reasons(report.failed)
    assert failed["bad-bytes.md"] == "not UTF-8 (and not cp1252): invalid byte 0x81 at offset 7"
    assert failed["image.md"] == "binary file"
    assert failed["huge.md"] == f"{(tmp_path / 'huge.md').stat().st_size} bytes, more than max_file_bytes=1000000"
    assert failed["bad-yaml.md"].startswith("malformed front matter:") and "(line 3)" in failed["bad-yaml.md"]
    assert failed["list-yaml.md"] == "malformed front matter: a list, not a mapping of fields"
    assert failed["unclosed.md"] == "malformed front matter: no closing '---' line"
    assert failed["escape.md"].endswith("outside the folder")
    assert len(failed) == 7
    assert sorted(report.failed_doc_ids) == sorted(f"t:{item}" for item in failed)
    assert reasons(report.skipped) == {
        "empty.md": "empty file", "blank.md": "empty file", "only-front-matter.md": "no content after the front matter",
    }
    assert report.seen == 4 + 7 + 3


def test_max_file_bytes_is_configurable(tmp_path):
    write(tmp_path, "a.md", "# A\n" + "x" * 100)
    _, report = load(make_source(tmp_path, path=".", max_file_bytes=50))
    assert reasons(report.failed) == {"a.md": "104 bytes, more than max_file_bytes=50"}


def test_titles_metadata_and_urls(tmp_path):
    write(tmp_path, "guides/server-wont-start.md", "No heading here.\n")
    write(tmp_path, "fenced.md", "```md\n# Not a title\n```\n\n# Real title ##\n")
    write(tmp_path, "high-memory.md", "## Diagnose\n\nA section heading is not the page's title.\n")
    write(tmp_path, "numeric-title.md", "---\ntitle: 2024\n---\n# Heading wins\n")
    write(tmp_path, "meta.md", "---\ntitle: ' Meta '\ntags: [a, b]\ndate: 2024-05-01\nlayout: {x: 1}\n---\nbody\n")
    write(tmp_path, "over.rst", "=====\nTitle\n=====\n\nbody\n")
    write(tmp_path, "plain.rst", "Intro text.\n\nSection Two\n~~~~~~~~~~~\n\nbody\n")
    write(tmp_path, "a file.md", "# Spaced\n")
    source = make_source(tmp_path, path=".", url_template="https://x.example/{source_id}/{path_no_suffix}.html?src={path}")
    docs, _ = load(source)
    assert docs["t:guides/server-wont-start.md"].title == "Server wont start"
    assert docs["t:fenced.md"].title == "Real title"
    assert docs["t:high-memory.md"].title == "High memory"
    assert docs["t:numeric-title.md"].title == "Heading wins"
    meta = docs["t:meta.md"]
    assert meta.title == "Meta"
    assert meta.metadata == {"path": "meta.md", "format": "markdown", "tags": ["a", "b"], "date": "2024-05-01"}
    assert docs["t:over.rst"].title == "Title" and docs["t:plain.rst"].title == "Section Two"
    wont_start = "https://x.example/t/guides/server-wont-start.html?src=guides/server-wont-start.md"
    assert docs["t:guides/server-wont-start.md"].url == wont_start
    assert docs["t:a file.md"].url == "https://x.example/t/a%20file.html?src=a%20file.md"
    docs, _ = load(make_source(tmp_path, path="."))
    assert docs["t:meta.md"].url == ""


# --- configuration ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("config", "key", "message"),
    [
        ({"path": ".", "pth": "x"}, "pth", "unknown key 'pth'"),
        ({"path": "no/such/dir"}, "path", "no/such/dir does not exist"),
        ({"path": "file.md"}, "path", "file.md is not a folder"),
        ({}, "path", "exactly one of 'path'"),
        ({"path": ".", "repo": "https://example.com/x.git"}, "repo", "exactly one of 'path'"),
        ({"path": ".", "subdir": "docs"}, "subdir", "only applies to a 'repo'"),
        ({"path": ".", "ref": "main"}, "ref", "only applies to a 'repo'"),
        ({"repo": "x", "subdir": "../up"}, "subdir", "relative path inside"),
        ({"repo": "--upload-pack=evil"}, "repo", "must not start with '-'"),
        ({"path": ".", "url_template": "https://x/{slug}"}, "url_template", "unknown placeholder {slug}"),
        ({"path": ".", "url_template": "https://x/{path"}, "url_template", "not a valid template"),
        ({"path": ".", "include": "**/*.md"}, "include", "include must be list, not str"),
        ({"path": ".", "include": [1]}, "include", "list of non-empty glob strings"),
        ({"path": ".", "include": []}, "include", "include is empty"),
        ({"path": ".", "max_file_bytes": 0}, "max_file_bytes", "≥ 1"),
        ({"path": ".", "max_file_bytes": True}, "max_file_bytes", "≥ 1"),
        ({"path": ".", "chunking": {"max_token": 10}}, "chunking", "unknown chunking key 'max_token'"),
        ({"path": ".", "chunking": {"overlap_tokens": -1}}, "chunking", "overlap_tokens must be a whole number"),
    ],
)
def test_config_errors(tmp_path, config, key, message):
    write(tmp_path, "file.md", "# x\n")
    with pytest.raises(SourceConfigError, match=message.replace("(", r"\(").replace("{", r"\{").replace("?", r"\?")) as err:
        DocsSource.check_config({"id": "t", "type": "docs", **config}, tmp_path)
    assert err.value.key == key
    if key == "path" and "no/such" in message:
        assert str(tmp_path / "no/such/dir") in str(err.value)  # the resolved path


def test_valid_config(tmp_path):
    make_source(tmp_path, path=str(tmp_path), include=["**/*.md"], exclude=[], max_file_bytes=10,
                url_template="https://x/{path}", chunking={"max_tokens": 100, "overlap_tokens": 0})
    make_source(tmp_path, repo="git@example.com:org/docs.git", ref="v1.0", subdir="docs")


def test_folder_gone_at_load_time(tmp_path):
    (tmp_path / "docs").mkdir()
    source = make_source(tmp_path, path="docs")
    (tmp_path / "docs").rmdir()
    with pytest.raises(SourceError, match="does not exist"):
        load(source)


# --- git repositories ------------------------------------------------------------------------

def git(cwd: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "ragloop" / "git"


@pytest.fixture
def upstream(tmp_path) -> Path:
    repo = tmp_path / "upstream"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    write(repo, "README.md", "# Readme\n")
    write(repo, "docs/intro.md", "# Intro\n\nVersion one.\n")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "first")
    return repo


def test_repo_branch_update_sha_and_subdir(upstream, cache, tmp_path):
    first = git(upstream, "rev-parse", "HEAD")
    source = make_source(tmp_path, repo=str(upstream), ref="main")
    docs, report = load(source)
    assert sorted(docs) == ["t:README.md", "t:docs/intro.md"] and not report.failed
    assert docs["t:docs/intro.md"].metadata == {"path": "docs/intro.md", "format": "markdown", "commit": first}
    assert len(list(cache.iterdir())) == 2  # the clone and its lock file

    write(upstream, "docs/intro.md", "# Intro\n\nVersion two.\n")
    write(upstream, "docs/new.md", "# New\n")
    git(upstream, "add", ".")
    git(upstream, "commit", "--quiet", "-m", "second")
    second = git(upstream, "rev-parse", "HEAD")
    docs, _ = load(source)
    assert "Version two." in docs["t:docs/intro.md"].content and docs["t:docs/new.md"].metadata["commit"] == second

    # An older commit by full and by abbreviated sha: the newer file is gone from the checkout.
    for ref in (first, first[:10]):
        docs, _ = load(make_source(tmp_path, repo=str(upstream), ref=ref))
        assert sorted(docs) == ["t:README.md", "t:docs/intro.md"]
        assert "Version one." in docs["t:docs/intro.md"].content and docs["t:README.md"].metadata["commit"] == first

    # Default branch, a file:// URL and a subdir (paths are relative to it).
    docs, _ = load(make_source(tmp_path, repo=upstream.as_uri(), subdir="docs", url_template="https://d/{path}"))
    assert sorted(docs) == ["t:intro.md", "t:new.md"]
    assert docs["t:intro.md"].url == "https://d/intro.md" and docs["t:intro.md"].metadata["commit"] == second


def test_repo_relative_path_tag_and_missing_subdir(upstream, cache, tmp_path):
    git(upstream, "tag", "v1")
    docs, _ = load(make_source(tmp_path, repo="upstream", ref="v1"))  # relative to the project root
    assert "t:docs/intro.md" in docs
    with pytest.raises(SourceError, match="'nope' is not a folder"):
        load(make_source(tmp_path, repo="upstream", subdir="nope"))


def test_repo_errors_name_the_url(cache, tmp_path):
    missing = tmp_path / "no-such-repo"
    with pytest.raises(SourceError, match=f"git fetch HEAD failed for {missing}: .*fatal"):
        load(make_source(tmp_path, repo=str(missing)))


def test_repo_unknown_ref(upstream, cache, tmp_path):
    with pytest.raises(SourceError, match=f"{upstream}"):
        load(make_source(tmp_path, repo=str(upstream), ref="no-such-branch"))
    with pytest.raises(SourceError, match=f"'deadbeef' is not a branch, tag or commit of {upstream}"):
        load(make_source(tmp_path, repo=str(upstream), ref="deadbeef"))


def test_repo_symlink_leaving_checkout_is_not_read(upstream, cache, tmp_path):
    os.symlink("/etc/passwd", upstream / "docs" / "passwd.md")
    git(upstream, "add", ".")
    git(upstream, "commit", "--quiet", "-m", "link")
    docs, report = load(make_source(tmp_path, repo=str(upstream)))
    assert "t:docs/passwd.md" not in docs and reasons(report.failed)["docs/passwd.md"].endswith("outside the folder")


def test_one_load_per_clone_at_a_time(upstream, cache, tmp_path):
    # Two loads of one clone interleaved in one thread would check out under each other's feet.
    source = make_source(tmp_path, repo=str(upstream))
    first = source.load_all(ExtractReport("t"))
    next(first)
    with pytest.raises(SourceError, match="already being read"):
        next(source.load_all(ExtractReport("t")))
    assert len(list(first)) == 1
    docs, _ = load(source)  # the lock is released once a load is done
    assert len(docs) == 2
