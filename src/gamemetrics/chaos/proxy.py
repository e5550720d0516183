"""A TCP proxy on loopback for the network faults: round-robin over backends (a load balancer
that passes over a backend it cannot reach), added latency, a cut of every connection, and a
blackhole in which nothing flows either way until it is lifted."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Sequence


class Proxy:
    """Listens on a loopback port in a thread of its own until `close()`."""

    def __init__(self, backends: Sequence[tuple[str, int]] = (), *, seed: int = 0) -> None:
        self.backends = list(backends)  # may be given later, before the first client comes
        self.latency_ms = 0.0
        self.jitter_ms = 0.0
        self.cut = False
        self.connections = 0
        self.forwarded_bytes = 0
        self.port = 0
        self._random = random.Random(seed)
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._open: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._flowing: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="chaos-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_latency(self, mean_ms: float, jitter_ms: float = 0.0) -> None:
        self.latency_ms, self.jitter_ms = mean_ms, jitter_ms

    def set_cut(self, cut: bool) -> None:
        """While cut, every open connection is closed and new ones are closed at once."""
        self.cut = cut
        if cut:
            self._loop.call_soon_threadsafe(self._close_all)

    def reset(self) -> None:
        """Reset every open connection once; new ones pass as before (their clients connect anew)."""
        self._loop.call_soon_threadsafe(self._close_all)

    def set_blackhole(self, blackhole: bool) -> None:
        """While blackholed, connections are accepted and kept, but no byte passes either way (as in a
        partition where packets vanish and TCP waits); what was held flows once it is lifted."""
        self._loop.call_soon_threadsafe(self._flowing_set, not blackhole)

    @property
    def blackholed(self) -> bool:
        return self._flowing is not None and not self._flowing.is_set()

    def _flowing_set(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._flowing = asyncio.Event()
        self._flowing.set()
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._close_all()
            self._loop.run_until_complete(asyncio.sleep(0.1))
            self._loop.close()

    def _close_all(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()  # a reset, as a partition's timeout ends a connection
        self._open.clear()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The next backend that accepts, starting after the last one used."""
        failure: OSError | None = None
        assert self._flowing is not None
        await self._flowing.wait()  # a blackholed connection reaches no backend until lifted
        for _ in range(100):  # backends given after start: a client that comes first waits for them
            if self.backends:
                break
            await asyncio.sleep(0.1)
        for _ in range(len(self.backends)):
            host, port = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                return await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
            except (OSError, TimeoutError) as exc:
                failure = OSError(str(exc))
        raise failure or OSError("no backend")

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.cut:
            client_writer.transport.abort()
            return
        self._open.add(client_writer)
        try:
            try:
                backend_reader, backend_writer = await self._connect()
            except OSError:
                client_writer.transport.abort()
                return
            if self.cut:  # cut while this connection waited in a blackhole
                backend_writer.transport.abort()
                client_writer.transport.abort()
                return
            self.connections += 1
            self._open.add(backend_writer)
            try:
                await asyncio.gather(self._pipe(client_reader, backend_writer),
                                     self._pipe(backend_reader, client_writer))
            finally:
                self._open.discard(backend_writer)
                backend_writer.close()
        finally:
            self._open.discard(client_writer)
            client_writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward one direction through a delay line: each chunk leaves its latency after it came, in
        order, so added latency delays the stream without narrowing it."""
        line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.create_task(self._send(line, writer))
        try:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while chunk := await reader.read(65536):
                    delay = 0.0
                    if self.latency_ms:
                        delay = max(0.0, self._random.gauss(self.latency_ms, self.jitter_ms / 2) / 1000)
                    line.put_nowait((self._loop.time() + delay, chunk))
            line.put_nowait((0.0, b""))  # the end of the stream, after what is still in the line
            await sender
        finally:
            sender.cancel()

    async def _send(self, line: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        with contextlib.suppress(OSError):
            while True:
                due, chunk = await line.get()
                if not chunk:
                    break
                await asyncio.sleep(max(0.0, due - self._loop.time()))
                await self._flowing.wait()  # a blackhole holds what came until it is lifted
                if self.cut:
                    return
                writer.write(chunk)
                self.forwarded_bytes += len(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
