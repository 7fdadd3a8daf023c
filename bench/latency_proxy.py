"""A TCP proxy on 127.0.0.1 that holds every chunk of bytes for a fixed time, both ways: a remote
Weaviate simulated on one machine (put it in front of Weaviate's HTTP and gRPC ports).

Each chunk read from one side is written to the other `delay` seconds after it was read. Chunks
keep their order and do not wait for one another (a queue per direction, each chunk stamped with
its due time), so the proxy adds latency, not a bandwidth limit. The proxy lives for a bounded
time (`lifetime`), binds loopback only, and closes every connection when it stops.

As a library (what bench/query_latency.py does):

    from latency_proxy import LatencyProxy
    with LatencyProxy(("127.0.0.1", 8080), delay=0.002) as http, LatencyProxy(("127.0.0.1", 50051), delay=0.002) as grpc:
        ...  # connect to 127.0.0.1:http.port (HTTP) and 127.0.0.1:grpc.port (gRPC)

From a shell (one listener per --map; stops after --lifetime seconds or on Ctrl-C):

    python bench/latency_proxy.py --delay-ms 2 --lifetime 600 --map 18080=127.0.0.1:8080 --map 15051=127.0.0.1:50051
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
import time

READ_SIZE = 65536


class LatencyProxy:
    """One listening port forwarding to `target`, every chunk delayed by `delay` seconds each way.
    Runs its own event loop in a daemon thread; `start()`/`stop()` or use it as a context manager."""

    def __init__(self, target: tuple[str, int], delay: float, listen_port: int = 0, lifetime: float = 3600.0):
        if delay < 0:
            raise ValueError(f"delay must be at least 0 seconds, not {delay}")
        if lifetime <= 0:
            raise ValueError(f"lifetime must be positive, not {lifetime}")
        self.target, self.delay, self.lifetime = target, delay, lifetime
        self.port = listen_port
        self.connections = 0
        self.bytes_forwarded = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --- life cycle --------------------------------------------------------------------------------

    def start(self) -> LatencyProxy:
        self._thread = threading.Thread(target=self._run, name=f"latency-proxy-{self.target[1]}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"latency proxy to {self.target[0]}:{self.target[1]} did not start: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended on its own (lifetime over)
                self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as err:  # noqa: BLE001 - reported to start(), which raises it
            self._error = err
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        tasks: set[asyncio.Task] = set()

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self._forward(reader, writer)
            finally:
                tasks.discard(task)

        server = await asyncio.start_server(accepted, "127.0.0.1", self.port)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.lifetime)
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- forwarding --------------------------------------------------------------------------------

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self.connections += 1
        pumps = [
            asyncio.create_task(self._pump(client_reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, client_writer)),
        ]
        try:
            await asyncio.gather(*pumps)
        finally:
            for pump in pumps:
                pump.cancel()
            for writer in (client_writer, upstream_writer):
                writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read chunks as they come; a second task writes each one when its time is due."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
                self.bytes_forwarded += len(data)

        delivering = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(READ_SIZE)
                queue.put_nowait((time.monotonic() + self.delay, data))
                if not data:
                    break
            await delivering
        except (ConnectionError, OSError):
            pass
        finally:
            delivering.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=2.0, help="delay per chunk, each way (default 2)")
    parser.add_argument("--lifetime", type=float, default=600.0, help="seconds before the proxy stops (default 600)")
    parser.add_argument("--map", action="append", required=True, metavar="LISTEN=HOST:PORT",
                        help="listen on 127.0.0.1:LISTEN (0: any free port), forward to HOST:PORT; repeatable")
    args = parser.parse_args(argv)
    proxies = []
    for mapping in args.map:
        listen, _, target = mapping.partition("=")
        host, _, port = target.rpartition(":")
        if not listen.isdigit() or not host or not port.isdigit():
            parser.error(f"--map {mapping!r}: expected LISTEN=HOST:PORT, e.g. 18080=127.0.0.1:8080")
        proxies.append(LatencyProxy((host, int(port)), args.delay_ms / 1000, int(listen), args.lifetime).start())
        print(f"127.0.0.1:{proxies[-1].port} -> {host}:{port}, {args.delay_ms} ms each way", flush=True)
    try:
        deadline = time.monotonic() + args.lifetime
        while time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for proxy in proxies:
            proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
