"""bench/latency_proxy.py: bytes pass intact and in order both ways, each chunk is held at least the
delay, several connections run at once, and the proxy stops (refusing connections) when told to or
when its lifetime ends."""

from __future__ import annotations

import socket
import socketserver
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from latency_proxy import LatencyProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture(scope="module")
def echo_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address
    server.shutdown()
    server.server_close()


def _round_trip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        received = bytearray()
        while chunk := conn.recv(65536):
            received += chunk
    return bytes(received)


def test_bytes_pass_intact_both_ways_and_are_held_at_least_the_delay(echo_server):
    payload = bytes(range(256)) * 8192  # 2 MiB: many chunks, so order matters
    with LatencyProxy(echo_server, delay=0.05, lifetime=60) as proxy:
        started = time.monotonic()
        assert _round_trip(proxy.port, b"ping") == b"ping"
        # A lower bound only (there and back, 50 ms each): a slow machine cannot make it fail.
        assert time.monotonic() - started >= 0.1
        assert _round_trip(proxy.port, payload) == payload
        results: list[bytes] = []
        threads = [threading.Thread(target=lambda n=n: results.append(_round_trip(proxy.port, bytes([n]) * 100_000)))
                   for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(results) == sorted(bytes([n]) * 100_000 for n in range(4))
        assert proxy.connections == 6
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5).close()


def test_the_proxy_stops_when_its_lifetime_ends(echo_server):
    proxy = LatencyProxy(echo_server, delay=0.0, lifetime=0.5).start()
    assert _round_trip(proxy.port, b"x") == b"x"
    proxy._thread.join(30)  # the loop ends by itself
    assert not proxy._thread.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5).close()
    with pytest.raises(ValueError, match="delay must be at least 0"):
        LatencyProxy(echo_server, delay=-1)
