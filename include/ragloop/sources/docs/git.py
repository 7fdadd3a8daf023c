"""Docs from a git repository: a per-user cached clone checked out at a ref, credentials from an
Airflow connection through the environment (never the URL, a log or a file we write)."""

from __future__ import annotations

import base64
import fcntl
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterator


from ragloop.errors import ConnectionProblem
from ragloop.sources.base import (
    SourceError,
)

log = logging.getLogger(__name__)

GIT_TIMEOUT_SECONDS = 300
SHA_LIKE = re.compile(r"[0-9a-fA-F]{7,40}")


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
    from ragloop.airflow.connections import get_connection  # through Airflow's secrets backends

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
