"""GitHub issues source: one Document per issue, from the live REST API or a JSON export.

Live (`connection:`, an Airflow GitHub connection read by the provider's GithubHook: token in
the password, GitHub Enterprise's API URL in the host): the issues of `repo` updated since the
repository's watermark minus an overlap (`GET /repos/{repo}/issues?state=all&sort=updated&since=`,
followed page by page), each with its comments. Rate limits: PyGithub's GithubRetry waits out
Retry-After and secondary limits, and a primary limit's reset, up to a bound; a longer wait
fails the repository and the next run retries. The watermark proposed is the newest
`updated_at` seen (GitHub's clock), only when the whole listing was read without a failure.

Export (`export:`, a JSON list of issues in the REST shape, each with a `comments` list): read
whole every run. A malformed record is reported by file, index and number; the rest is indexed.

A document: the title prefixed with the state, said plainly ("[Closed as completed on
2025-03-02] ..."), so that every chunk of a closed bug says it is closed; then who opened it and
when, labels and assignees, the body, and each comment as a section with its author and date.
Bot comments and issue-template boilerplate (HTML comments, empty template headings, "_No
response_") are left out. The config's filters (states, labels_exclude, min_comments,
closed_within_days, include_pull_requests) apply; an issue they leave out is skipped, and an
incremental run removes its older indexed version. doc_id `<source id>:<repo>#<number>`, URL the
issue's html_url.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, UTC
from pathlib import Path
from typing import Any, ClassVar
from collections.abc import Iterator

from ragloop.documents import Document
from ragloop.sources.base import (
    ApiSource,
    ExtractReport,
    SourceConfigError,
    SourceError,
    check_string_list,
    check_whole_number,
    record_failure_reason,
)

log = logging.getLogger(__name__)

STATES = ("open", "closed")
# Issues updated while the last run was reading may carry an updated_at just before its newest one.
OVERLAP = timedelta(minutes=10)
PER_PAGE = 100
MAX_PAGES = 10_000  # a next link that never ends is a server bug, not a reason to loop forever
MAX_RATE_LIMIT_WAIT_SECONDS = 300  # a primary limit resetting later than this fails the run's repo
SECONDARY_RATE_WAIT_SECONDS = 60
RETRIES = 5
REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
NO_RESPONSE = re.compile(r"^\s*_No response_\s*$", re.M)
HEADING = re.compile(r"^ {0,3}#{1,6}\s")


def clean_body(text: str | None) -> str:
    """Issue-template boilerplate out: HTML comments (template instructions), "_No response_"
    answers of issue forms, and headings left with nothing under them."""
    text = HTML_COMMENT.sub("", (text or "").replace("\r\n", "\n"))
    text = NO_RESPONSE.sub("", text)
    lines = text.split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        if HEADING.match(line):
            rest = next((later for later in lines[index + 1 :] if later.strip()), None)
            if rest is None or (HEADING.match(rest) and _level(rest) <= _level(line)):
                continue  # an empty template section
        kept.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def _level(heading: str) -> int:
    return len(heading.strip()) - len(heading.strip().lstrip("#"))


def _date(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def label_names(issue: dict) -> list[str]:
    """The issue's labels by name (the REST shape has objects; some exports plain strings)."""
    return [str(label.get("name") if isinstance(label, dict) else label) for label in issue.get("labels") or []]


def is_bot(user: dict | None) -> bool:
    user = user or {}
    return user.get("type") == "Bot" or str(user.get("login", "")).endswith("[bot]")


def state_line(issue: dict) -> str:
    """The state as a reader needs it first: "Open", "Closed as completed on 2025-03-02"."""
    closed = _date(issue.get("closed_at"))
    day = f" on {closed:%Y-%m-%d}" if closed else ""
    merged = _date((issue.get("pull_request") or {}).get("merged_at"))
    if merged:
        return f"Merged on {merged:%Y-%m-%d}"
    if issue.get("state") != "closed":
        return "Open"
    reason = issue.get("state_reason")
    if reason in ("completed", "not_planned", "duplicate"):
        return f"Closed as {reason.replace('_', ' ')}{day}"
    return f"Closed{day}"


class _BadRecord(Exception):
    pass


class GithubIssuesSource(ApiSource):
    type = "github_issues"
    kind = "github"
    export_kind = "a JSON file of issues in the GitHub REST shape"
    config_keys: ClassVar[dict[str, tuple[Any, bool]]] = {
        "repo": (str, True),
        "connection": (str, False),
        "export": (str, False),
        "include_pull_requests": (bool, False),
        "states": (list, False),
        "labels_exclude": (list, False),
        "min_comments": (int, False),
        "closed_within_days": (int, False),
        "chunking": (dict, False),
    }

    def __init__(self, config: dict[str, Any], project_root: Path):
        super().__init__(config, project_root)
        self.repo: str = config["repo"]
        self.include_pull_requests = bool(config.get("include_pull_requests"))
        self.states = set(config.get("states") or STATES)
        self.labels_exclude = {label.lower() for label in config.get("labels_exclude") or []}
        self.min_comments = config.get("min_comments") or 0
        self.closed_within_days = config.get("closed_within_days")

    @classmethod
    def check_config(cls, config: dict[str, Any], project_root: Path) -> None:
        super().check_config(config, project_root)
        if not REPO_NAME.match(config["repo"]):
            raise SourceConfigError(f"source {config['id']!r}: repo must be owner/name, not {config['repo']!r}", "repo")
        check_string_list(config, "states", STATES)
        if config.get("states") == []:
            raise SourceConfigError(f"source {config['id']!r}: states is empty, so nothing would be indexed", "states")
        check_string_list(config, "labels_exclude")
        check_whole_number(config, "min_comments", 0)
        check_whole_number(config, "closed_within_days", 1)

    def read(self, report: ExtractReport, watermarks: dict[str, dict], full_listing: bool = False) -> Iterator[Document]:
        if self.live:
            yield from self._read_live(report, {} if full_listing else watermarks.get(self.repo) or {})
        else:
            yield from self._read_export(report)

    def doc_id(self, number: Any) -> str:
        return f"{self.id}:{self.repo}#{number}"

    # --- filters and documents ----------------------------------------------------------------

    def excluded(self, issue: dict, comment_count: int) -> str | None:
        """Why the config leaves this issue out, or None."""
        if issue.get("pull_request") and not self.include_pull_requests:
            return "a pull request (include_pull_requests is false)"
        if issue.get("state") not in self.states:
            return f"state {issue.get('state')} is not in states"
        labels = {label.lower() for label in label_names(issue)}
        if labels & self.labels_exclude:
            return f"label {sorted(labels & self.labels_exclude)[0]} is in labels_exclude"
        if comment_count < self.min_comments:
            return f"{comment_count} comments, fewer than min_comments={self.min_comments}"
        closed = _date(issue.get("closed_at"))
        if (
            self.closed_within_days
            and issue.get("state") == "closed"
            and closed
            and closed < datetime.now(UTC) - timedelta(days=self.closed_within_days)
        ):
            return f"closed on {closed:%Y-%m-%d}, more than closed_within_days={self.closed_within_days} ago"
        return None

    def issue_document(self, issue: dict, comments: list[dict]) -> Document:
        number = issue["number"]
        author = (issue.get("user") or {}).get("login") or "ghost"
        created = _date(issue.get("created_at"))
        labels = label_names(issue)
        assignees = [str(a["login"]) for a in issue.get("assignees") or [] if isinstance(a, dict) and a.get("login")]
        state = state_line(issue)
        kind_word = "Pull request" if issue.get("pull_request") else "Issue"
        facts = [
            f"{state}. {kind_word} #{number} in {self.repo}, opened by @{author}"
            + (f" on {created:%Y-%m-%d}" if created else "")
            + "."
        ]
        if labels:
            facts.append(f"Labels: {', '.join(labels)}.")
        if assignees:
            facts.append(f"Assignees: {', '.join('@' + a for a in assignees)}.")
        parts = [" ".join(facts), clean_body(issue.get("body")) or "(no description)"]
        updated = [_date(issue.get("updated_at"))]
        for comment in comments:
            if is_bot(comment.get("user")):
                continue
            body = clean_body(comment.get("body"))
            if not body:
                continue
            when = _date(comment.get("created_at"))
            updated.append(_date(comment.get("updated_at")) or when)
            who = (comment.get("user") or {}).get("login") or "ghost"
            parts.append(f"## Comment by @{who}" + (f" on {when:%Y-%m-%d}" if when else "") + f"\n\n{body}")
        reactions = issue.get("reactions") or {}
        metadata = {
            "repo": self.repo,
            "number": number,
            "state": issue.get("state"),
            "state_reason": issue.get("state_reason"),
            "labels": labels,
            "assignees": assignees,
            "author": author,
            "created_at": created.isoformat() if created else None,
            "closed_at": closed.isoformat() if (closed := _date(issue.get("closed_at"))) else None,
            "pull_request": bool(issue.get("pull_request")),
            "reactions": {k: v for k, v in reactions.items() if isinstance(v, int) and v} if isinstance(reactions, dict) else {},
        }
        return Document(
            doc_id=self.doc_id(number),
            source_id=self.id,
            kind=self.kind,
            title=f"[{state}] {issue.get('title') or '(untitled)'} (#{number})",
            content="\n\n".join(parts),
            url=issue.get("html_url") or f"https://github.com/{self.repo}/issues/{number}",
            updated_at=max((d for d in updated if d), default=None),
            metadata=metadata,
        )

    def _document_or_skip(self, issue: dict, comments: list[dict] | None, comment_count: int, report: ExtractReport):
        """The issue's document; None when the filters leave it out (skipped) or when it cannot
        be read (failed, named: a body that is an object, a label that is a number)."""
        report.seen += 1
        item = f"{self.repo}#{issue.get('number')}"
        try:
            reason = self.excluded(issue, comment_count)
            if reason:
                report.skip(item, reason, self.doc_id(issue["number"]))
                return None
            return self.issue_document(issue, comments or [])
        except Exception as err:  # noqa: BLE001 - one crafted issue fails alone; the rest is read
            report.fail(item, record_failure_reason(err), self.doc_id(issue.get("number")))
            return None

    # --- export -------------------------------------------------------------------------------

    def _read_export(self, report: ExtractReport) -> Iterator[Document]:
        path = self.export_path
        try:
            records = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError) as err:
            raise SourceError(f"source {self.id!r}: cannot read the GitHub export {path}: {err}") from None
        if not isinstance(records, list):
            raise SourceError(f"source {self.id!r}: {path} must hold a JSON list of issues, not {type(records).__name__}")
        name = self.config["export"]
        for index, record in enumerate(records):
            number = record.get("number") if isinstance(record, dict) else None
            item = f"{name} record {index}" + (f" (#{number})" if number is not None else "")
            try:
                issue, comments = _export_record(record)
            except _BadRecord as err:
                report.fail(item, str(err), self.doc_id(number) if isinstance(number, int) else None)
                continue
            document = self._document_or_skip(issue, comments, len([c for c in comments if not is_bot(c.get("user"))]), report)
            if document:
                yield document

    # --- live ---------------------------------------------------------------------------------

    def _read_live(self, report: ExtractReport, state: dict) -> Iterator[Document]:
        from github import GithubException

        requester = github_client(self.config["connection"], self.id).requester
        watermark = _date(state.get("watermark"))
        since = watermark - OVERLAP if watermark else None
        newest = watermark
        failed = False
        parameters = {"state": "all", "sort": "updated", "direction": "asc", "per_page": PER_PAGE}
        if since:
            parameters["since"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            for raw in _pages(requester, f"/repos/{self.repo}/issues", parameters):
                updated = _date(raw.get("updated_at"))
                newest = max(newest, updated) if newest and updated else (updated or newest)
                comments: list[dict] = []
                try:
                    # Comments are fetched only for issues the filters keep (and that have some).
                    if raw.get("comments") and self.excluded(raw, raw.get("comments") or 0) is None:
                        comments = list(
                            _pages(requester, f"/repos/{self.repo}/issues/{raw['number']}/comments", {"per_page": PER_PAGE})
                        )
                except GithubException as err:
                    failed = True
                    report.fail(
                        f"{self.repo}#{raw.get('number')}",
                        f"cannot read its comments: {_github_reason(err)}",
                        self.doc_id(raw.get("number")),
                    )
                    continue
                document = self._document_or_skip(raw, comments, raw.get("comments") or 0, report)
                if document:
                    yield document
        except GithubException as err:
            report.fail(self.repo, f"cannot list issues: {_github_reason(err)}")
            return
        except SourceError as err:
            report.fail(self.repo, f"cannot list issues: {err}")
            return
        except Exception as err:  # noqa: BLE001 - network errors after retries: name the repository
            cause = getattr(getattr(err, "args", [None])[0], "reason", None)  # urllib3's "too many 500 error responses"
            report.fail(self.repo, f"cannot list issues: {type(err).__name__}: {cause or err}")
            return
        if not failed:
            report.watermarks[self.repo] = {"watermark": newest.isoformat() if newest else None}


def _pages(requester, url: str, parameters: dict | None) -> Iterator[dict]:
    """Every item of a paginated REST listing, following its Link: rel="next" headers.

    PyGithub's Requester is used directly (auth, base URL, retries) rather than its object model:
    objects read from a listing are incomplete, and reading a field the listing left out (an
    issue's `pull_request`, absent on plain issues) would fetch each issue again.
    """
    for _ in range(MAX_PAGES):
        headers, data = requester.requestJsonAndCheck("GET", url, parameters=parameters)
        if not isinstance(data, list):
            raise SourceError(f"GET {url} did not return a list")
        yield from data
        links = {k.lower(): v for k, v in (headers or {}).items()}.get("link") or ""
        following = re.search(r'<([^>]+)>;\s*rel="next"', links)
        if not following:
            return
        url, parameters = following[1], None
    raise SourceError(f"GET {url}: more than {MAX_PAGES} pages")


def _export_record(record: Any) -> tuple[dict, list[dict]]:
    """(issue, comments) of one export record; _BadRecord says what is wrong with it."""
    if not isinstance(record, dict):
        raise _BadRecord(f"not an issue object but {type(record).__name__}")
    for key in ("number", "title"):
        if key not in record:
            raise _BadRecord(f"missing {key!r}")
    if not isinstance(record["number"], int) or isinstance(record["number"], bool):
        raise _BadRecord(f"number must be an integer, not {record['number']!r}")
    if record.get("state") not in (None, *STATES):
        raise _BadRecord(f"state must be open or closed, not {record.get('state')!r}")
    for key in ("created_at", "updated_at", "closed_at"):
        try:
            _date(record.get(key))
        except ValueError:
            raise _BadRecord(f"{key} is not a date: {record.get(key)!r}") from None
    comments = record.get("comments")
    if isinstance(comments, int) or comments is None:
        comments = []  # the REST shape's count, without the comments themselves
    if not isinstance(comments, list) or not all(isinstance(c, dict) for c in comments):
        raise _BadRecord("comments must be a list of comment objects")
    issue = {**record, "state": record.get("state") or "open"}
    return issue, comments


def _github_reason(err: Exception) -> str:
    status = getattr(err, "status", None)
    data = getattr(err, "data", None)
    message = data.get("message") if isinstance(data, dict) else data
    return f"HTTP {status}: {message}" if status else str(err)


def github_client(conn_id: str, source_id: str = ""):
    """A PyGithub client from the Airflow connection through the GitHub provider's hook, re-made
    with bounded rate-limit waits (the hook's client would wait for any reset, up to an hour)."""
    from airflow.providers.github.hooks.github import GithubHook
    from github import Github, GithubRetry

    try:
        hooked = GithubHook(github_conn_id=conn_id).get_conn()
    except Exception as err:
        raise SourceError(f"source {source_id!r}: cannot use Airflow connection {conn_id!r}: {err}") from err
    retry = GithubRetry(
        total=RETRIES,
        secondary_rate_wait=SECONDARY_RATE_WAIT_SECONDS,
        max_rate_limit_wait=MAX_RATE_LIMIT_WAIT_SECONDS,
        status_forcelist=[429, 500, 502, 503, 504],
    )
    return Github(**{**hooked.requester.kwargs, "retry": retry, "per_page": PER_PAGE})
