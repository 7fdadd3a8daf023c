"""A local HTTP server that speaks the Slack Web API methods the Slack source calls, for the real
`slack_sdk.WebClient` (through the provider's SlackHook, `extra.base_url` pointing here).

It binds 127.0.0.1 on a free port, serves from daemon threads, and stops when the `with` block
ends. Cursor pagination in pages of `page_size`; `fail(...)` scripts an error for the Nth call of
a method (a 429 with Retry-After, a 500 mid-pagination); channels in `unreadable` answer
`not_in_channel`. Every request is recorded as (method, params) for counting.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import parse_qsl, urlparse

from wire_servers import FailureScript, LoopbackServer, QuietHandler, ScriptedReply, send_json

TOKEN = "xoxb-test-token"



def slack_ts(seconds: float) -> str:
    return f"{seconds:.6f}"


class SlackWireServer:
    def __init__(self, page_size: int = 100):
        self.page_size = page_size
        self.channels: dict[str, dict] = {}  # id -> {"name", "messages": [...]}
        self.users: dict[str, dict] = {}
        self.unreadable: set[str] = set()
        self.failures = FailureScript()
        self.requests: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self._server: LoopbackServer | None = None

    # --- data -----------------------------------------------------------------------------

    def add_channel(self, channel_id: str, name: str) -> None:
        self.channels[channel_id] = {"name": name, "messages": []}

    def add_user(self, user_id: str, display_name: str) -> None:
        self.users[user_id] = {"id": user_id, "name": display_name.lower(), "profile": {"display_name": display_name, "real_name": display_name}}

    def post(self, channel_id: str, user: str, text: str, ts: float, thread_ts: str | None = None, **extra) -> str:
        message = {"type": "message", "user": user, "text": text, "ts": slack_ts(ts), **extra}
        if thread_ts:
            message["thread_ts"] = thread_ts
        with self._lock:
            self.channels[channel_id]["messages"].append(message)
        return message["ts"]

    def fail(self, method: str, status: int = 200, error: str = "internal_error", after: int = 0,
             headers: dict | None = None) -> None:
        self.failures.add(method, ScriptedReply(status, {"ok": False, "error": error}, headers or {}), after)

    def calls(self, method: str) -> list[dict]:
        return [params for name, params in self.requests if name == method]

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.failures.reset_counts()

    # --- API ------------------------------------------------------------------------------

    def handle(self, method: str, params: dict) -> tuple[int, dict, dict]:
        with self._lock:
            self.requests.append((method, params))
            failure = self.failures.next(method)
            if failure is not None:
                return failure.status, failure.body, failure.headers
            handler = getattr(self, "api_" + method.replace(".", "_"), None)
            if handler is None:
                return 200, {"ok": False, "error": "unknown_method"}, {}
            return 200, handler(params), {}

    def _page(self, items: list, params: dict, key: str) -> dict:
        start = int(params.get("cursor") or 0)
        size = min(int(params.get("limit") or self.page_size), self.page_size)
        page = items[start:start + size]
        following = str(start + size) if start + size < len(items) else ""
        return {"ok": True, key: page, "has_more": bool(following), "response_metadata": {"next_cursor": following}}

    def api_auth_test(self, params):
        return {"ok": True, "url": "https://fernwood.slack.com/", "team": "Fernwood", "team_id": "T0FERN"}

    def api_users_info(self, params):
        user = self.users.get(params.get("user"))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def api_conversations_list(self, params):
        channels = [{"id": cid, "name": c["name"], "is_channel": True} for cid, c in sorted(self.channels.items())]
        return self._page(channels, params, "channels")

    def _channel(self, params) -> tuple[dict | None, dict | None]:
        """(the channel, None), or (None, Slack's error for a missing or unreadable channel)."""
        channel = self.channels.get(params.get("channel"))
        if channel is None:
            return None, {"ok": False, "error": "channel_not_found"}
        if params.get("channel") in self.unreadable:
            return None, {"ok": False, "error": "not_in_channel"}
        return channel, None

    def api_conversations_history(self, params):
        channel, error = self._channel(params)
        if error:
            return error
        oldest = float(params.get("oldest") or 0)
        messages = channel["messages"]
        parents = []
        for message in messages:
            if message.get("thread_ts") not in (None, message["ts"]):
                continue  # replies are not in history (broadcasts aside)
            replies = [m for m in messages if m.get("thread_ts") == message["ts"] and m["ts"] != message["ts"]]
            shown = dict(message)
            if replies:
                shown.update(thread_ts=message["ts"], reply_count=len(replies),
                             latest_reply=max(replies, key=lambda m: float(m["ts"]))["ts"])
            if float(message["ts"]) > oldest:
                parents.append(shown)
        parents.sort(key=lambda m: float(m["ts"]), reverse=True)  # newest first, as Slack does
        return self._page(parents, params, "messages")

    def api_conversations_replies(self, params):
        channel, error = self._channel(params)
        if error:
            return error
        ts = params.get("ts")
        thread = [m for m in channel["messages"] if m["ts"] == ts or m.get("thread_ts") == ts]
        if not any(m["ts"] == ts for m in thread):
            return {"ok": False, "error": "thread_not_found"}
        thread.sort(key=lambda m: float(m["ts"]))
        return self._page(thread, params, "messages")

    @property
    def server(self) -> LoopbackServer:
        if self._server is None:
            raise RuntimeError("the wire server is used outside its `with` block")
        return self._server

    # --- server ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/api/"

    def connection_json(self) -> str:
        return json.dumps({"conn_type": "slack", "password": TOKEN, "extra": {"base_url": self.base_url}})

    def __enter__(self) -> SlackWireServer:
        server = self

        class Handler(QuietHandler):
            def _serve(self):
                url = urlparse(self.path)
                params = dict(parse_qsl(url.query))
                length = int(self.headers.get("content-length") or 0)
                if length:
                    raw = self.rfile.read(length).decode()
                    if "json" in (self.headers.get("content-type") or ""):
                        params.update(json.loads(raw or "{}"))
                    else:
                        params.update(dict(parse_qsl(raw)))
                method = url.path.rsplit("/", 1)[-1]
                if self.headers.get("authorization") != f"Bearer {TOKEN}":
                    status, body, headers = 200, {"ok": False, "error": "invalid_auth"}, {}
                else:
                    status, body, headers = server.handle(method, params)
                send_json(self, status, body, headers)

            do_GET = _serve
            do_POST = _serve

        self._server = LoopbackServer(Handler).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()


def now() -> float:
    return time.time()
