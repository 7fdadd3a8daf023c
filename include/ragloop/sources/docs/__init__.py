"""Docs source: markdown and reStructuredText files from a local folder or a git repository.

Every file matched by `include` and not by `exclude` becomes one Document with doc_id
"<source id>:<path relative to the folder>". A file that cannot be read (too large, binary, not
text, malformed front matter, a symlink leaving the folder, anything else that breaks on one file)
is recorded with `report.fail` and the others still load; an empty file, and a symlink to a file
that `exclude` or a hidden folder (.git) keeps out, is recorded with `report.skip`. A repository is
fetched into a per-user cache and checked out at `ref`, with credentials (for https) from the
Airflow connection named by `connection:` and never from the URL; failing to reach it raises
SourceError for the source.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import string
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar
from collections.abc import Iterator
from urllib.parse import quote

from ragloop.documents import Document
from ragloop.paths import cache_dir
from ragloop.sources.base import (
    ExtractReport,
    Source,
    SourceConfigError,
    SourceError,
    check_whole_number,
    record_failure_reason,
)
from ragloop.sources.docs.files import (
    Unreadable,
    decode_text,
    json_safe_value,
    markdown_title,
    rst_title,
    split_front_matter,
    title_from_name,
)
from ragloop.sources.docs.git import exclusive, git_credentials_env, redact_url, repo_url, sync_checkout, url_credentials
from ragloop.sources.docs.globs import compile_glob

log = logging.getLogger(__name__)

__all__ = ["DocsSource", "compile_glob", "printable_name"]

DEFAULT_INCLUDE = ["**/*.md", "**/*.mdx", "**/*.rst"]
DEFAULT_MAX_FILE_BYTES = 1_000_000
URL_PLACEHOLDERS = ("path", "path_no_suffix", "source_id")
CHUNKING_KEYS = ("max_tokens", "overlap_tokens")
# Front matter fields worth storing with every chunk; anything else (layouts, ids, nested data) is noise.
FRONT_MATTER_METADATA = (
    "description",
    "summary",
    "tags",
    "categories",
    "keywords",
    "author",
    "authors",
    "date",
    "lastmod",
    "version",
)


def printable_name(rel_path: str) -> str:
    """`rel_path` itself when it is valid UTF-8; otherwise its bytes with the undecodable ones
    escaped (os.walk hands those over as lone surrogates, which no JSON or HTTP can carry)."""
    try:
        rel_path.encode("utf-8")
        return rel_path
    except UnicodeEncodeError:
        return os.fsencode(rel_path).decode("utf-8", errors="backslashreplace")


class _NothingToIndex(Exception):
    """A file was read fine but holds no text; the message is the reason given to `report.skip`."""


class DocsSource(Source):
    type = "docs"
    kind = "docs"
    lists_all_ids = True
    config_keys: ClassVar[dict[str, tuple[Any, bool]]] = {
        "path": (str, False),
        "repo": (str, False),
        "ref": (str, False),
        "subdir": (str, False),
        "include": (list, False),
        "exclude": (list, False),
        "url_template": (str, False),
        "max_file_bytes": (int, False),
        "chunking": (dict, False),
        # An Airflow connection with the credentials for an https `repo`: login (default
        # x-access-token, what GitHub and GitLab take with a token) and password (the token).
        "connection": (str, False),
    }

    def __init__(self, config: dict[str, Any], project_root: Path):
        super().__init__(config, project_root)
        self.include = [compile_glob(p) for p in config.get("include") or DEFAULT_INCLUDE]
        self.exclude = [compile_glob(p) for p in config.get("exclude") or []]
        self.max_file_bytes: int = config.get("max_file_bytes") or DEFAULT_MAX_FILE_BYTES
        self.url_template: str = config.get("url_template") or ""

    @classmethod
    def check_config(cls, config: dict[str, Any], project_root: Path) -> None:
        super().check_config(config, project_root)
        where = f"source {config['id']!r}"

        def fail(message: str, key: str) -> None:
            raise SourceConfigError(f"{where}: {message}", key)

        has_path, has_repo = config.get("path") is not None, config.get("repo") is not None
        if has_path == has_repo:
            fail("needs exactly one of 'path' (a folder) or 'repo' (a git URL or path)", "repo" if has_repo else "path")
        if has_path:
            folder = (project_root / Path(config["path"]).expanduser()).resolve()
            if not folder.is_dir():
                fail(f"path {folder} {'is not a folder' if folder.exists() else 'does not exist'}", "path")
        for key in ("ref", "subdir"):
            if config.get(key) is not None and not has_repo:
                fail(f"{key!r} only applies to a 'repo' source", key)
        for key in ("repo", "ref"):
            if str(config.get(key) or "").startswith("-"):
                fail(f"{key} must not start with '-'", key)  # git would read it as an option
        if has_repo and url_credentials(config["repo"]):
            # Said without the URL: its credentials would reach the log that shows this error.
            fail(
                f"repo {redact_url(config['repo'])} holds credentials: put them in an Airflow connection "
                "(login and password, the token as the password) and name it with `connection:`",
                "repo",
            )
        if config.get("connection") is not None:
            if not has_repo or not re.match(r"https?://", str(config.get("repo"))):
                fail("'connection' gives the credentials for an https:// `repo` URL", "connection")
            if not str(config["connection"]).strip():
                fail("connection must be an Airflow connection id, not empty", "connection")
        subdir = config.get("subdir")
        if subdir is not None and (PurePosixPath(subdir).is_absolute() or ".." in PurePosixPath(subdir).parts):
            fail(f"subdir {subdir!r} must be a relative path inside the repository", "subdir")
        for key in ("include", "exclude"):
            patterns = config.get(key)
            if patterns is not None and not all(isinstance(p, str) and p.strip("/") for p in patterns):
                fail(f"{key} must be a list of non-empty glob strings, not {patterns!r}", key)
        if config.get("include") == []:
            fail("include is empty, so nothing would be indexed", "include")
        template = config.get("url_template")
        if template is not None:
            try:
                fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
            except ValueError as err:
                fail(f"url_template {template!r} is not a valid template: {err}", "url_template")
            unknown = [name for name in fields if name not in URL_PLACEHOLDERS]
            if unknown:
                known = ", ".join("{" + name + "}" for name in URL_PLACEHOLDERS)
                fail(f"url_template has unknown placeholder {{{unknown[0]}}} (expected {known})", "url_template")
        check_whole_number(config, "max_file_bytes", 1)
        for key, value in (config.get("chunking") or {}).items():
            if key not in CHUNKING_KEYS:
                fail(f"unknown chunking key {key!r} (expected {', '.join(CHUNKING_KEYS)})", "chunking")
            least = 1 if key == "max_tokens" else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                fail(f"chunking.{key} must be a whole number ≥ {least}, not {value!r}", "chunking")

    def load_all(self, report: ExtractReport) -> Iterator[Document]:
        if self.config.get("repo") is None:
            folder = (self.project_root / Path(self.config["path"]).expanduser()).resolve()
            if not folder.is_dir():
                raise SourceError(f"source {self.id!r}: folder {folder} does not exist or is not a folder")
            yield from self._load_folder(folder, report, {})
            return
        url = repo_url(self.config["repo"], self.project_root)
        clone = cache_dir() / "git" / hashlib.sha256(url.encode()).hexdigest()[:16]
        with exclusive(clone.with_name(clone.name + ".lock"), url):
            credentials = git_credentials_env(self.config["connection"], url) if self.config.get("connection") else None
            commit = sync_checkout(clone, url, self.config.get("ref"), credentials)
            log.info("%s: %s checked out at %s in %s", self.id, url, commit, clone)
            folder = (clone / (self.config.get("subdir") or ".")).resolve()
            if not folder.is_relative_to(clone.resolve()) or not folder.is_dir():
                raise SourceError(f"source {self.id!r}: {self.config.get('subdir')!r} is not a folder in {url} at {commit}")
            yield from self._load_folder(folder, report, {"commit": commit})

    def matches(self, rel_path: str) -> bool:
        return any(p.fullmatch(rel_path) for p in self.include) and not any(p.fullmatch(rel_path) for p in self.exclude)

    def _load_folder(self, folder: Path, report: ExtractReport, extra: dict[str, str]) -> Iterator[Document]:
        for rel_path in self._listing(folder, report):
            report.seen += 1
            doc_id = f"{self.id}:{rel_path}"
            shown = printable_name(rel_path)
            if shown != rel_path:
                # A name that is not UTF-8 (git allows any bytes) cannot be a doc_id, a URL or a
                # JSON string: this file fails alone, named by its bytes; the others still load.
                report.fail(shown, "file name is not valid UTF-8; rename the file", f"{self.id}:{shown}")
                continue
            try:
                document = self._read(folder, rel_path, doc_id, extra)
            except Unreadable as err:
                report.fail(rel_path, str(err), doc_id)
                continue
            except _NothingToIndex as err:
                report.skip(rel_path, str(err))
                continue
            except Exception as err:  # noqa: BLE001 - one crafted file fails alone, named
                report.fail(rel_path, record_failure_reason(err), doc_id)
                continue
            yield document

    def _listing(self, folder: Path, report: ExtractReport) -> list[str]:
        def unlistable(err: OSError) -> None:
            # An unreadable subfolder hides files: the listing is incomplete, so nothing is pruned.
            rel = Path(err.filename).relative_to(folder).as_posix() if err.filename else "."
            report.fail(printable_name(rel) + "/", f"cannot list folder: {err.strerror or err}")

        found = []
        top = str(folder)
        # os.walk does not descend into symlinked folders, so links cannot loop or leave the folder.
        for dirpath, dirnames, filenames in os.walk(top, onerror=unlistable):
            dirnames[:] = [name for name in dirnames if not name.startswith(".")]  # .git, .github, ...
            # Paths as strings, not pathlib: a listing of 26k files spent most of its time in Path.
            prefix = "" if dirpath == top else os.path.relpath(dirpath, top).replace(os.sep, "/") + "/"
            found += [prefix + name for name in filenames]
        return sorted(rel for rel in found if self.matches(rel))

    def _read(self, folder: Path, rel_path: str, doc_id: str, extra: dict[str, str]) -> Document:
        """The file as a Document; raises Unreadable or _NothingToIndex with the reason."""
        path = folder / rel_path
        try:
            # One lstat: for a file that is not a link it is also the stat read below.
            info = os.lstat(path)
        except OSError as err:
            raise Unreadable(f"cannot read: {err.strerror or err}") from None
        is_link = stat.S_ISLNK(info.st_mode)
        if is_link:
            target = Path(os.path.realpath(path))
            if not target.is_relative_to(folder):
                raise Unreadable(f"symlink to {target}, outside the folder")
            # A link is read only where its target would be: not in .git/ or another hidden
            # folder, and not past `exclude` (a link named notes.md to an excluded file).
            rel_target = target.relative_to(folder).as_posix()
            if any(part.startswith(".") for part in PurePosixPath(rel_target).parts):
                raise _NothingToIndex(f"symlink to {rel_target}, in a hidden folder")
            if not self.matches(rel_target):
                raise _NothingToIndex(f"symlink to {rel_target}, which include/exclude leave out")
        try:
            if is_link:
                info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                raise Unreadable("not a regular file")
            if info.st_size > self.max_file_bytes:
                raise Unreadable(f"{info.st_size} bytes, more than max_file_bytes={self.max_file_bytes}")
            data = path.read_bytes()
        except OSError as err:
            raise Unreadable(f"cannot read: {err.strerror or err}") from None
        text = decode_text(data).replace("\r\n", "\n")
        is_rst = path.suffix.lower() == ".rst"
        # reStructuredText has no front matter, and "---" may open an overlined section title.
        fields, content = ({}, text) if is_rst else split_front_matter(text)
        if not content.strip():
            raise _NothingToIndex("empty file" if not text.strip() else "no content after the front matter")
        title = fields.get("title")
        if not (isinstance(title, str) and title.strip()):
            title = (rst_title if is_rst else markdown_title)(content) or title_from_name(rel_path)
        metadata: dict[str, Any] = {"path": rel_path, "format": "rst" if is_rst else "markdown", **extra}
        for key in FRONT_MATTER_METADATA:
            value = json_safe_value(fields.get(key))
            if value is not None:
                metadata[key] = value
        return Document(
            doc_id=doc_id,
            source_id=self.id,
            kind=self.kind,
            title=title.strip(),
            content=content.lstrip("\n"),
            url=self.url_for(rel_path),
            updated_at=datetime.fromtimestamp(info.st_mtime, tz=UTC),
            metadata=metadata,
        )

    def url_for(self, rel_path: str) -> str:
        if not self.url_template:
            return ""
        suffix = PurePosixPath(rel_path).suffix
        no_suffix = rel_path[: len(rel_path) - len(suffix)] if suffix else rel_path
        return self.url_template.format(path=quote(rel_path), path_no_suffix=quote(no_suffix), source_id=self.id)
