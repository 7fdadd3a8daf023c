"""Small local HTTP servers that speak external APIs' wire formats, for the real client libraries.

They bind 127.0.0.1 on a free port, serve from a daemon thread, and stop when the `with` block
ends. Scripted failures (status, headers, body) are served first, in order.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class ScriptedReply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class FailureScript:
    """Scripted failures per kind of request (an API method, a path kind). Each is served once,
    after `after` successful calls of its kind; the caller holds its own lock around `next`."""

    def __init__(self):
        self.pending: list[tuple[str, int, ScriptedReply]] = []  # (kind, after, reply)
        self.successes: dict[str, int] = {}

    def add(self, kind: str, reply: ScriptedReply, after: int = 0) -> None:
        self.pending.append((kind, after, reply))

    def next(self, kind: str) -> ScriptedReply | None:
        """The failure due now for a request of `kind`, or None (and the call counts as a success)."""
        done = self.successes.get(kind, 0)
        for entry in self.pending:
            if entry[0] == kind and entry[1] == done:
                self.pending.remove(entry)
                return entry[2]
        self.successes[kind] = done + 1
        return None

    def clear(self) -> None:
        self.pending.clear()

    def reset_counts(self) -> None:
        self.successes.clear()


def send_json(handler: BaseHTTPRequestHandler, status: int, body: Any, headers: dict | None = None) -> None:
    """Write one JSON reply (a str or bytes body is sent as it is: malformed replies on purpose)."""
    payload = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json; charset=utf-8")
    handler.send_header("content-length", str(len(payload)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(payload)


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


class LoopbackServer:
    """Serves `handler` on 127.0.0.1 on a free port from daemon threads until `stop()`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)


def fake_vector(text: str, dimension: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [((digest[i % len(digest)] + i) % 97) / 97.0 for i in range(dimension)]


class OpenAIWireServer:
    """Speaks the OpenAI embeddings API (`POST /v1/embeddings`) and chat completions
    (`POST /v1/chat/completions`). Chat replies come from `chat_responder(body) -> text`; a
    responder may return a ScriptedReply to answer with any status and body."""

    def __init__(self, api_key: str = "sk-test-key", dimension: int = 8, chat_responder=None, chat_usage: bool = True):
        self.api_key = api_key
        self.dimension = dimension
        self.chat_responder = chat_responder or (lambda body: "I do not know.")
        self.chat_usage = chat_usage
        self.requests: list[RecordedRequest] = []
        self.script: list[ScriptedReply] = []
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"null")
                except json.JSONDecodeError:
                    body = raw.decode(errors="replace")
                with server._lock:
                    server.requests.append(RecordedRequest("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    scripted = server.script.pop(0) if server.script else None
                if scripted is not None:
                    return self._reply(scripted.status, scripted.body, scripted.headers)
                if self.headers.get("authorization") != f"Bearer {server.api_key}":
                    return self._reply(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
                if self.path.rstrip("/").endswith("/embeddings"):
                    return self._reply(200, server.embeddings(body))
                if self.path.rstrip("/").endswith("/chat/completions"):
                    reply = server.chat(body)
                    if isinstance(reply, ScriptedReply):
                        return self._reply(reply.status, reply.body, reply.headers)
                    return self._reply(200, reply)
                return self._reply(404, {"error": {"message": f"no route {self.path}"}})

            def do_GET(self):
                with server._lock:
                    server.requests.append(RecordedRequest("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, None))
                if self.headers.get("authorization") != f"Bearer {server.api_key}":
                    return self._reply(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
                if self.path.rstrip("/").endswith("/models"):
                    return self._reply(200, {"object": "list", "data": [
                        {"id": model, "object": "model", "created": 0, "owned_by": "tests"}
                        for model in ("gpt-4o-mini", "text-embedding-3-small")]})
                return self._reply(404, {"error": {"message": f"no route {self.path}"}})

            def _reply(self, status: int, body: Any, headers: dict | None = None):
                send_json(self, status, body, headers)

        self._server = LoopbackServer(Handler)

    @property
    def base_url(self) -> str:
        return f"{self._server.url}/v1"

    def embeddings(self, body: dict) -> dict:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dimension = body.get("dimensions") or self.dimension
        data = [{"object": "embedding", "index": i, "embedding": fake_vector(t, dimension)} for i, t in enumerate(inputs)]
        data.reverse()  # the API does not promise order; clients must use `index`
        tokens = sum(len(t.split()) for t in inputs)
        return {"object": "list", "data": data, "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def chat(self, body: dict):
        text = self.chat_responder(body)
        if isinstance(text, ScriptedReply):
            return text
        reply = {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": 1767225600,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        }
        if self.chat_usage:
            prompt = sum(len(m["content"].split()) for m in body["messages"])
            reply["usage"] = {"prompt_tokens": prompt, "completion_tokens": len(text.split()),
                              "total_tokens": prompt + len(text.split())}
        return reply

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    def embedding_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/embeddings")]

    def __enter__(self) -> OpenAIWireServer:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()
