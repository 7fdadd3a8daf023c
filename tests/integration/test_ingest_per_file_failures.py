"""Issue 22: a docs source's failures are per file. A real git repository holding a file whose
name is not valid UTF-8 (git stores any bytes) is read as one failed record named by its escaped
bytes, the rest of the source is indexed, and a file deleted from the repository is pruned even
while another file fails: a failed file keeps only its own document. Real Weaviate, the hash
embedder (the vectors' meaning does not matter here)."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from conftest import indexed_chunks

pytestmark = pytest.mark.integration

BAD_NAME = b"caf\xe9.md"  # Latin-1 bytes: not UTF-8
ESCAPED = "caf\\xe9.md"


def git(repo, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def ingest(config, run_id):
    from ragloop.ingest import ingest as run

    return run(run_id, str(config))


@pytest.fixture
def repository(tmp_path, collection_name):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "-b", "main")
    for name in ("keep", "delete-me", "breaks-later"):
        (repo / f"{name}.md").write_text(f"# {name}\n\nThe {name} page says something about {name}.\n")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "pages")
    config = tmp_path / "sources.yaml"
    config.write_text(yaml.safe_dump({
        "collection": collection_name, "embedder": "hash", "staging": f"file://{tmp_path / 'staging'}",
        "sources": [{"id": "repo-docs", "type": "docs", "repo": str(repo), "ref": "main"}]}))
    return repo, config


def test_a_file_name_that_is_not_utf8_fails_alone_named_by_its_bytes(
        repository, weaviate_server, weaviate_client, collection_name, drill):
    repo, config = repository
    with open(os.path.join(os.fsencode(repo), BAD_NAME), "wb") as handle:
        handle.write(b"# Cafe\n\nA page whose name git stores as Latin-1 bytes.\n")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "a Latin-1 file name")

    report = ingest(config, "bad-name")
    source = report["sources"]["repo-docs"]
    failed = {f["item"]: f["reason"] for f in source.get("failures", [])}
    drill("ingest: a git file name that is not UTF-8", f"1 failed record ({ESCAPED}), 3 indexed",
          f"{len(failed)} failed record ({', '.join(failed) or source.get('error')}), {source['documents'].get('new', 0)} indexed")
    assert "error" not in source, source.get("error")
    assert failed.keys() == {ESCAPED} and "not valid UTF-8" in failed[ESCAPED]
    assert source["documents"]["failed"] == 1
    indexed = indexed_chunks(weaviate_client, collection_name)
    assert set(indexed) == {"repo-docs:keep.md", "repo-docs:delete-me.md", "repo-docs:breaks-later.md"}


def test_a_failed_file_keeps_only_its_own_document_and_a_deleted_file_is_pruned(
        repository, weaviate_server, weaviate_client, collection_name, drill):
    repo, config = repository
    first = ingest(config, "all-good")
    assert first["sources"]["repo-docs"]["documents"]["new"] == 3

    # One file becomes unreadable (binary), another is deleted, in the same commit.
    (repo / "breaks-later.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    (repo / "delete-me.md").unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "one file breaks, one goes")

    second = ingest(config, "one-fails-one-gone")
    source = second["sources"]["repo-docs"]
    indexed = set(indexed_chunks(weaviate_client, collection_name))
    drill("ingest: one file fails while another is deleted", "deleted file pruned, failed file kept",
          f"deleted file {'kept' if 'repo-docs:delete-me.md' in indexed else 'pruned'}, "
          f"failed file {'kept' if 'repo-docs:breaks-later.md' in indexed else 'pruned'}")
    assert [f["item"] for f in source["failures"]] == ["breaks-later.md"]
    assert source["documents"]["deleted"] == 1
    assert indexed == {"repo-docs:keep.md", "repo-docs:breaks-later.md"}
