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

import base64
import codecs
import fcntl
import hashlib
import logging
import os
import re
import shutil
import stat
import string
import subprocess
import threading
import time
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Iterator
from urllib.parse import quote

import yaml

from ragloop.documents import Document
from ragloop.localenv import cache_dir
from ragloop.sources.base import (
    ExtractReport,
    Source,
    SourceConfigError,
    SourceError,
    check_whole_number,
    record_failure_reason,
)

log = logging.getLogger(__name__)

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
GIT_TIMEOUT_SECONDS = 300
BINARY_SNIFF_BYTES = 8192
SHA_LIKE = re.compile(r"[0-9a-fA-F]{7,40}")


class _Unreadable(Exception):
    """A file exists but cannot be read; the message is the reason given to `report.fail`."""


class _NothingToIndex(Exception):
    """A file was read fine but holds no text; the message is the reason given to `report.skip`."""


# --- globs -----------------------------------------------------------------------------------


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A glob over posix relative paths: `*`, `?` and `[...]` stay within one path segment, and a
    `**` segment matches any number of directories, including none ("**/*.md" matches "a.md")."""
    segments = pattern.strip("/").split("/")
    regex = ""
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if segment == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _segment_regex(segment) + ("" if last else "/")
    return re.compile(regex)


def _segment_regex(segment: str) -> str:
    out, i = [], 0
    while i < len(segment):
        char = segment[i]
        i += 1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := _class_end(segment, i)) != -1:
            body, i = segment[i:end], end + 1
            negate = body.startswith("!")
            out.append(("[^/" if negate else "[") + _class_body(body[1:] if negate else body) + "]")
        else:
            out.append(re.escape(char))
    return "".join(out)


def _class_end(segment: str, start: int) -> int:
    """Index of the "]" closing a class opened just before `start`; a "]" first in it is literal."""
    start += segment[start : start + 1] == "!"
    start += segment[start : start + 1] == "]"
    return segment.find("]", start)


def _class_body(body: str) -> str:
    # Escape every member so that regex-only syntax ("^", "[", "&&") stays literal; keep a-z ranges.
    out, i = [], 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            out.append(f"{re.escape(body[i])}-{re.escape(body[i + 2])}")
            i += 3
        else:
            out.append(re.escape(body[i]))
            i += 1
    return "".join(out)


# --- reading one file ------------------------------------------------------------------------


def decode_text(data: bytes) -> str:
    """UTF-8 (without a BOM), else cp1252 for files saved by old Windows editors."""
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        raise _Unreadable("binary file")
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            offset = bom + utf8_error.start
            raise _Unreadable(f"not UTF-8 (and not cp1252): invalid byte 0x{data[offset]:02x} at offset {offset}") from None


# libyaml's parser with the safe constructor: the same values and errors as yaml.safe_load, and it
# was most of the time of a no-change re-run (4.4 of 11.6 s on 4,000 files with front matter).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_FLOW_DEPTH = 200
_FLOW = re.compile(r"[\[\]{}]")


def _flow_depth(text: str) -> int:
    """The deepest nesting of [ ] and { } in a YAML text (quotes ignored: an over-count only refuses)."""
    depth = deepest = 0
    for bracket in _FLOW.findall(text):
        depth = depth + 1 if bracket in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    return deepest


FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<yaml>.*?)^---[ \t]*(?:\n|\Z)", re.DOTALL | re.MULTILINE)


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """The leading `---` YAML block as a mapping, and the text after it."""
    if not re.match(r"---[ \t]*\n", text):
        return {}, text
    match = FRONT_MATTER.match(text)
    if not match:
        raise _Unreadable("malformed front matter: no closing '---' line")
    if _flow_depth(match["yaml"]) > _MAX_FLOW_DEPTH:
        # libyaml would parse it (the pure-Python parser recursed past its limit): refuse it alike.
        raise _Unreadable("malformed front matter: nested too deeply")
    try:
        data = yaml.load(match["yaml"], Loader=_YAML_LOADER)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        # +2: the mark counts from 0 inside the block, which starts after the opening line.
        where = f" (line {mark.line + 2})" if mark else ""
        raise _Unreadable(f"malformed front matter: {err.problem or err.context}{where}") from None
    except (yaml.YAMLError, ValueError) as err:  # ValueError: an impossible date such as 2024-13-45
        raise _Unreadable(f"malformed front matter: {str(err).splitlines()[0]}") from None
    except RecursionError:  # thousands of nested brackets: the parser recurses once per level
        raise _Unreadable("malformed front matter: nested too deeply") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _Unreadable(f"malformed front matter: a {type(data).__name__}, not a mapping of fields")
    return data, text[match.end() :]


def _json_value(value: Any) -> Any:
    """A front matter value as JSON (dates as ISO strings), or None when it is not simple."""
    if isinstance(value, date):  # datetime included
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, list) and all(isinstance(item, (str, int, float, bool, date)) for item in value):
        return [_json_value(item) for item in value]
    return None


MD_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1+[ \t]*$")  # one punctuation character, repeated


def markdown_title(text: str) -> str:
    """The first level-1 ATX heading outside fenced code blocks. A page that starts at `##`
    has no title heading: its first `##` names a section ("Diagnose"), and the file name
    ("High memory") says more."""
    fence = ""
    for line in text.split("\n"):
        opener = MD_FENCE.match(line)
        if fence:
            if opener and opener[1][0] == fence[0] and len(opener[1]) >= len(fence) and not line.strip().strip(fence[0]):
                fence = ""
        elif opener:
            fence = opener[1]
        elif (heading := MD_HEADING.match(line)) and line.lstrip().startswith("# "):
            return heading[1].strip()
    return ""


def rst_title(text: str) -> str:
    """The first section title: a text line underlined by a punctuation line at least as long."""
    lines = text.split("\n")
    for line, underline in zip(lines, lines[1:]):
        title = line.strip()
        underlined = RST_ADORNMENT.match(underline) and len(underline.rstrip()) >= len(title)
        if title and underlined and not RST_ADORNMENT.match(line):
            return title
    return ""


def title_from_name(rel_path: str) -> str:
    words = re.sub(r"[-_\s]+", " ", PurePosixPath(rel_path).stem).strip() or rel_path
    return words[:1].upper() + words[1:]


# --- git -------------------------------------------------------------------------------------


def repo_url(repo: str, project_root: Path) -> str:
    """URLs (scheme://, user@host:path) as given; local paths made absolute against the project."""
    if re.match(r"^[^/\\]*:", repo) and not re.match(r"^[A-Za-z]:[\\/]", repo):
        return repo
    return str((project_root / Path(repo).expanduser()).resolve())


URL_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@]*)@")


def url_credentials(url: str) -> bool:
    """Whether an http(s) URL carries a user or a password (a token passed as the user counts):
    those go in an Airflow connection, never in sources.yaml, logs or the clone's config. An ssh
    user (git@host) is not a secret."""
    match = URL_USERINFO.match(url)
    return bool(match and match["scheme"].lower().startswith("http"))


def redact_url(text: str) -> str:
    """`text` with the user and password of every URL in it replaced by ***."""
    return re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@", r"\1***@", text)


def git_credentials_env(conn_id: str, url: str) -> dict[str, str]:
    """Environment for git that sends the connection's credentials to `url` as an HTTP header.

    Through GIT_CONFIG_* variables (git 2.31+), so the token is in no command line, no URL, no
    file (the clone's .git/config keeps the bare URL), and in no error message git prints."""
    from ragloop.connections import ConnectionProblem, get_connection

    try:
        conn = get_connection(conn_id)
    except ConnectionProblem as err:
        raise SourceError(str(err)) from None
    if not conn.password:
        raise SourceError(f"Airflow connection {conn_id!r} has no password (the token for {redact_url(url)})")
    pair = f"{conn.login or 'x-access-token'}:{conn.password}".encode()
    origin = re.match(r"https?://[^/]+/", url.rstrip("/") + "/")[0]  # type: ignore[index]
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{origin}.extraHeader",
        "GIT_CONFIG_VALUE_0": "Authorization: Basic " + base64.b64encode(pair).decode(),
    }


def _git(args: list[str], cwd: Path, url: str, action: str, credentials: dict[str, str] | None = None) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(credentials or {})}
    url = redact_url(url)
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=GIT_TIMEOUT_SECONDS,
        )
    except FileNotFoundError:
        raise SourceError(f"cannot read {url}: git is not installed") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"git {action} timed out after {GIT_TIMEOUT_SECONDS} s for {url}") from None
    if result.returncode != 0:
        said = redact_url((result.stderr or result.stdout).strip()[-2000:])
        raise SourceError(f"git {action} failed for {url}: {said}")
    return result.stdout.strip()


def sync_checkout(clone: Path, url: str, ref: str | None, credentials: dict[str, str] | None = None) -> str:
    """Fetch `ref` (default: the remote's HEAD) into `clone`, check it out clean; return the sha.
    `credentials`: git_credentials_env() for a repository that needs them."""
    if not (clone / ".git").is_dir():
        shutil.rmtree(clone, ignore_errors=True)  # a clone interrupted before `git init` finished
        clone.mkdir(parents=True)
        _git(["init", "--quiet"], clone, url, "init")
    _git(["config", "remote.origin.url", url], clone, url, "config")
    known = (
        ref
        and re.fullmatch(r"[0-9a-fA-F]{40}", ref)
        and subprocess.run(["git", "cat-file", "-e", f"{ref}^{{commit}}"], cwd=clone, capture_output=True).returncode == 0
    )
    if known and ref:  # a commit never changes: nothing to fetch
        sha = ref.lower()
    else:
        try:
            target = ref or "HEAD"
            _git(["fetch", "--quiet", "--no-tags", "--depth", "1", "origin", target], clone, url, f"fetch {target}", credentials)
            sha = _git(["rev-parse", "--verify", "FETCH_HEAD^{commit}"], clone, url, "rev-parse")
        except SourceError:
            if not (ref and SHA_LIKE.fullmatch(ref)):
                raise
            # Servers may refuse a commit asked for by id (uploadpack.allowReachableSHA1InWant), and
            # an abbreviated sha cannot be asked for at all: fetch every branch and tag, look it up.
            shallow = _git(["rev-parse", "--is-shallow-repository"], clone, url, "rev-parse") == "true"
            everything = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]
            unshallow = ["--unshallow"] if shallow else []
            _git(
                ["fetch", "--quiet", *unshallow, "origin", *everything], clone, url, "fetch (all branches and tags)", credentials
            )
            try:
                sha = _git(["rev-parse", "--verify", f"{ref}^{{commit}}"], clone, url, "rev-parse")
            except SourceError:
                raise SourceError(f"{ref!r} is not a branch, tag or commit of {url}") from None
    _git(["checkout", "--quiet", "--force", "--detach", sha], clone, url, f"checkout {sha}")
    _git(["clean", "-ffdxq"], clone, url, "clean")  # leftovers of an older checkout are not docs
    return sha


_held_locks: set[tuple[int, str]] = set()


@contextmanager
def exclusive(lock_path: Path, what: str) -> Iterator[None]:
    """One load at a time per clone: another process checking out mid-read would make files vanish
    (and get pruned). A second load in the same thread would wait for itself, so it fails instead."""
    key = (threading.get_ident(), str(lock_path))
    if key in _held_locks:
        raise SourceError(f"{what} is already being read by this thread; finish one load before starting another")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        deadline = time.monotonic() + GIT_TIMEOUT_SECONDS
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SourceError(f"{what}: another load held {lock_path} for {GIT_TIMEOUT_SECONDS} s") from None
                time.sleep(0.5)
        _held_locks.add(key)
        try:
            yield
        finally:
            _held_locks.discard(key)


# --- the source ------------------------------------------------------------------------------


class DocsSource(Source):
    type = "docs"
    kind = "docs"
    lists_all_ids = True
    config_keys = {
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
            try:
                document = self._read(folder, rel_path, doc_id, extra)
            except _Unreadable as err:
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
            report.fail(rel + "/", f"cannot list folder: {err.strerror or err}")

        found = []
        # os.walk does not descend into symlinked folders, so links cannot loop or leave the folder.
        for dirpath, dirnames, filenames in os.walk(folder, onerror=unlistable):
            dirnames[:] = [name for name in dirnames if not name.startswith(".")]  # .git, .github, ...
            found += [(Path(dirpath) / name).relative_to(folder).as_posix() for name in filenames]
        return sorted(rel for rel in found if self.matches(rel))

    def _read(self, folder: Path, rel_path: str, doc_id: str, extra: dict[str, str]) -> Document:
        """The file as a Document; raises _Unreadable or _NothingToIndex with the reason."""
        path = folder / rel_path
        if path.is_symlink():
            target = Path(os.path.realpath(path))
            if not target.is_relative_to(folder):
                raise _Unreadable(f"symlink to {target}, outside the folder")
            # A link is read only where its target would be: not in .git/ or another hidden
            # folder, and not past `exclude` (a link named notes.md to an excluded file).
            rel_target = target.relative_to(folder).as_posix()
            if any(part.startswith(".") for part in PurePosixPath(rel_target).parts):
                raise _NothingToIndex(f"symlink to {rel_target}, in a hidden folder")
            if not self.matches(rel_target):
                raise _NothingToIndex(f"symlink to {rel_target}, which include/exclude leave out")
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                raise _Unreadable("not a regular file")
            if info.st_size > self.max_file_bytes:
                raise _Unreadable(f"{info.st_size} bytes, more than max_file_bytes={self.max_file_bytes}")
            data = path.read_bytes()
        except OSError as err:
            raise _Unreadable(f"cannot read: {err.strerror or err}") from None
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
            value = _json_value(fields.get(key))
            if value is not None:
                metadata[key] = value
        return Document(
            doc_id=doc_id,
            source_id=self.id,
            kind=self.kind,
            title=title.strip(),
            content=content.lstrip("\n"),
            url=self.url_for(rel_path),
            updated_at=datetime.fromtimestamp(info.st_mtime, tz=timezone.utc),
            metadata=metadata,
        )

    def url_for(self, rel_path: str) -> str:
        if not self.url_template:
            return ""
        suffix = PurePosixPath(rel_path).suffix
        no_suffix = rel_path[: len(rel_path) - len(suffix)] if suffix else rel_path
        return self.url_template.format(path=quote(rel_path), path_no_suffix=quote(no_suffix), source_id=self.id)
