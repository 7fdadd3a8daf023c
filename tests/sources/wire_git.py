"""A git server over smart HTTP on loopback, for the docs source's `repo:` with credentials: git's
own `git http-backend` (CGI) behind HTTP Basic auth, so the real git client fetches through it
exactly as it fetches from a hosted forge. Every Authorization header it receives is recorded."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from urllib.parse import urlparse

from wire_servers import LoopbackServer, QuietHandler


class GitHttpServer:
    def __init__(self, repos_root: Path, login: str, token: str):
        self.repos_root = repos_root
        self.expected = "Basic " + base64.b64encode(f"{login}:{token}".encode()).decode()
        self.authorizations: list[str | None] = []
        server = self

        class Handler(QuietHandler):
            def do_GET(self):
                self._backend(b"")

            def do_POST(self):
                self._backend(self.rfile.read(int(self.headers.get("content-length") or 0)))

            def _backend(self, body: bytes) -> None:
                given = self.headers.get("authorization")
                server.authorizations.append(given)
                if given != server.expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                url = urlparse(self.path)
                env = {
                    "PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(server.repos_root), "GIT_HTTP_EXPORT_ALL": "1",
                    "PATH_INFO": url.path, "QUERY_STRING": url.query, "REQUEST_METHOD": self.command,
                    "CONTENT_TYPE": self.headers.get("content-type", ""), "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_USER": "tests", "REMOTE_ADDR": "127.0.0.1",
                }
                if self.headers.get("git-protocol"):
                    env["GIT_PROTOCOL"] = self.headers["git-protocol"]
                result = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60)
                head, _, payload = result.stdout.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = LoopbackServer(Handler)

    def url(self, repo: str) -> str:
        return f"{self._server.url}/{repo}"

    def __enter__(self) -> GitHttpServer:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()
