"""A local HTTP server that speaks the GitHub REST endpoints the issues source calls, for the real
PyGithub client (through the provider's GithubHook, the connection's host pointing here).

It binds 127.0.0.1 on a free port, serves from daemon threads, and stops when the `with` block
ends. `GET /repos/{owner}/{repo}/issues` (state, since, sort=updated, direction) and
`GET /repos/{owner}/{repo}/issues/{n}/comments`, paginated with Link headers in pages of
`page_size`; `fail(...)` scripts an error (a 429 with Retry-After, a 500) for the Nth request of
a path kind. Every request is recorded as (kind, path, query) for counting.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, UTC
from urllib.parse import parse_qsl, urlencode, urlparse

from wire_servers import FailureScript, LoopbackServer, QuietHandler, ScriptedReply, send_json

TOKEN = "ghp_test_token"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))



class GithubWireServer:
    def __init__(self, repo: str = "fernwood/fernwood", page_size: int = 100):
        self.repo = repo
        self.page_size = page_size
        self.issues: dict[int, dict] = {}
        self.comments: dict[int, list[dict]] = {}
        self.failures = FailureScript()
        self.requests: list[tuple[str, str, dict]] = []
        self._lock = threading.Lock()
        self._server: LoopbackServer | None = None

    # --- data -----------------------------------------------------------------------------

    def user(self, login: str) -> dict:
        bot = login.endswith("[bot]")
        return {"login": login, "id": abs(hash(login)) % 100000, "type": "Bot" if bot else "User",
                "url": f"{self.base_url}/users/{login}", "html_url": f"https://github.com/{login}"}

    def add_issue(self, number: int, title: str, body: str, updated: datetime, state: str = "open",
                  state_reason: str | None = None, closed: datetime | None = None, labels=(), author: str = "priya-n",
                  pull_request: bool = False) -> dict:
        issue = {
            "url": f"{self.base_url}/repos/{self.repo}/issues/{number}",
            "html_url": f"https://github.com/{self.repo}/issues/{number}",
            "number": number, "title": title, "body": body, "state": state, "state_reason": state_reason,
            "user": self.user(author), "labels": [{"name": label} for label in labels], "assignees": [],
            "comments": 0, "created_at": iso(updated), "updated_at": iso(updated),
            "closed_at": iso(closed) if closed else None, "reactions": {"total_count": 0, "+1": 0},
        }
        if pull_request:
            issue["pull_request"] = {"url": f"{self.base_url}/repos/{self.repo}/pulls/{number}", "merged_at": None}
        with self._lock:
            self.issues[number] = issue
            self.comments.setdefault(number, [])
        return issue

    def add_comment(self, number: int, login: str, body: str, when: datetime) -> None:
        with self._lock:
            self.comments[number].append({"id": len(self.comments[number]) + 1, "user": self.user(login), "body": body,
                                          "created_at": iso(when), "updated_at": iso(when)})
            issue = self.issues[number]
            issue["comments"] = len(self.comments[number])
            issue["updated_at"] = iso(max(parse_iso(issue["updated_at"]), when))

    def edit_issue(self, number: int, when: datetime, **fields) -> None:
        with self._lock:
            self.issues[number].update(fields, updated_at=iso(when))

    def fail(self, kind: str, status: int, message: str = "Server Error", after: int = 0, headers: dict | None = None) -> None:
        self.failures.add(kind, ScriptedReply(status, {"message": message}, headers or {}), after)

    def calls(self, kind: str) -> list[dict]:
        return [query for name, _, query in self.requests if name == kind]

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.failures.reset_counts()

    # --- API ------------------------------------------------------------------------------

    def handle(self, path: str, query: dict) -> tuple[int, object, dict]:
        issues_path = f"/repos/{self.repo}/issues"
        comments = re.fullmatch(re.escape(issues_path) + r"/(\d+)/comments", path)
        kind = "issues" if path == issues_path else "comments" if comments else "other"
        with self._lock:
            self.requests.append((kind, path, query))
            failure = self.failures.next(kind)
            if failure is not None:
                return failure.status, failure.body, failure.headers
            if kind == "issues":
                items = sorted(self.issues.values(), key=lambda i: (i["updated_at"], i["number"]),
                               reverse=query.get("direction") == "desc")
                state = query.get("state", "open")
                if state != "all":
                    items = [i for i in items if i["state"] == state]
                if query.get("since"):
                    since = parse_iso(query["since"])
                    items = [i for i in items if parse_iso(i["updated_at"]) >= since]
                return self._page(path, items, query)
            if comments:
                return self._page(path, list(self.comments.get(int(comments[1]), [])), query)
            if path == f"/repos/{self.repo}":
                owner, name = self.repo.split("/")
                return 200, {"id": 1, "name": name, "full_name": self.repo, "owner": self.user(owner), "private": False}, {}
        return 404, {"message": "Not Found"}, {}

    def _page(self, path: str, items: list, query: dict) -> tuple[int, object, dict]:
        size = min(int(query.get("per_page") or 30), self.page_size)
        page = int(query.get("page") or 1)
        chunk = items[(page - 1) * size: page * size]
        headers = {}
        if page * size < len(items):
            following = {**query, "page": str(page + 1)}
            headers["Link"] = f'<{self.base_url}{path}?{urlencode(following)}>; rel="next"'
        return 200, chunk, headers

    @property
    def server(self) -> LoopbackServer:
        if self._server is None:
            raise RuntimeError("the wire server is used outside its `with` block")
        return self._server

    # --- server ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.server.url

    def connection_json(self) -> str:
        return json.dumps({"conn_type": "github", "host": self.base_url, "password": TOKEN})

    def __enter__(self) -> GithubWireServer:
        server = self

        class Handler(QuietHandler):
            def do_GET(self):
                url = urlparse(self.path)
                if self.headers.get("authorization") not in (f"token {TOKEN}", f"Bearer {TOKEN}"):
                    status, body, headers = 401, {"message": "Bad credentials"}, {}
                else:
                    status, body, headers = server.handle(url.path, dict(parse_qsl(url.query)))
                send_json(self, status, body, headers)

        self._server = LoopbackServer(Handler).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()
