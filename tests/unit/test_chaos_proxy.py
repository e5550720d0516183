"""The chaos TCP proxy on loopback: round-robin that passes over a dead backend, added latency, a cut."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from gamemetrics.chaos.proxy import Proxy


class TaggedServer(socketserver.ThreadingTCPServer):
    """Echoes what it gets with its tag in front, so a test sees which backend answered."""

    daemon_threads = True

    def __init__(self, tag: bytes) -> None:
        super().__init__(("127.0.0.1", 0), Echo)
        self.tag = tag


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        assert isinstance(self.server, TaggedServer)
        while data := self.request.recv(4096):
            self.request.sendall(self.server.tag + data)


@pytest.fixture
def echoes() -> Iterator[list[int]]:
    servers = []
    for tag in (b"a:", b"b:"):
        server = TaggedServer(tag)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield [int(s.server_address[1]) for s in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


def ask(proxy: Proxy, payload: bytes = b"ping", timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout) as conn:
        conn.sendall(payload)
        return conn.recv(4096)


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again: nothing listens there


def test_round_robin_over_the_backends_passing_over_a_dead_one(echoes: list[int]) -> None:
    proxy = Proxy([("127.0.0.1", echoes[0]), ("127.0.0.1", echoes[1])])
    try:
        assert sorted(ask(proxy) for _ in range(4)) == [b"a:ping", b"a:ping", b"b:ping", b"b:ping"]
    finally:
        proxy.close()
    proxy = Proxy([("127.0.0.1", dead_port()), ("127.0.0.1", echoes[1])])
    try:
        assert [ask(proxy) for _ in range(3)] == [b"b:ping"] * 3
    finally:
        proxy.close()


def test_latency_delays_each_direction(echoes: list[int]) -> None:
    proxy = Proxy([("127.0.0.1", echoes[0])], seed=1)
    try:
        began = time.monotonic()
        ask(proxy)
        quick = time.monotonic() - began
        proxy.set_latency(300, 50)
        began = time.monotonic()
        assert ask(proxy) == b"a:ping"
        slow = time.monotonic() - began
        assert slow >= 0.4 > quick, (quick, slow)  # about 300 ms on the way there and as much back
    finally:
        proxy.close()


def test_a_cut_resets_open_connections_and_refuses_new_ones_until_lifted(echoes: list[int]) -> None:
    proxy = Proxy([("127.0.0.1", echoes[0])])
    try:
        conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        conn.sendall(b"one")
        assert conn.recv(4096) == b"a:one"
        proxy.set_cut(True)
        time.sleep(0.2)
        with pytest.raises(OSError):
            conn.sendall(b"two")
            if not conn.recv(4096):
                raise ConnectionResetError("closed")
        conn.close()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as late:
            late.sendall(b"three")
            with pytest.raises(OSError):
                if not late.recv(4096):
                    raise ConnectionResetError("closed")
        proxy.set_cut(False)
        assert ask(proxy, b"four") == b"a:four"
    finally:
        proxy.close()


def test_a_blackhole_holds_every_byte_until_lifted_then_delivers_it(echoes: list[int]) -> None:
    proxy = Proxy([("127.0.0.1", echoes[0])])
    try:
        conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        conn.sendall(b"one")
        assert conn.recv(4096) == b"a:one"
        proxy.set_blackhole(True)
        time.sleep(0.1)
        assert proxy.blackholed
        conn.sendall(b"two")
        conn.settimeout(0.5)
        with pytest.raises(TimeoutError):  # nothing comes back: no reset, no answer
            conn.recv(4096)
        late = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)  # accepted, but reaches nothing
        late.sendall(b"three")
        late.settimeout(0.5)
        with pytest.raises(TimeoutError):
            late.recv(4096)
        proxy.set_blackhole(False)
        conn.settimeout(5)
        late.settimeout(5)
        assert conn.recv(4096) == b"a:two"
        assert late.recv(4096) == b"a:three"
        conn.close()
        late.close()
    finally:
        proxy.close()


def test_latency_delays_the_stream_without_narrowing_it(echoes: list[int]) -> None:
    proxy = Proxy([("127.0.0.1", echoes[0])], seed=2)
    proxy.set_latency(200)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as conn:
            began = time.monotonic()
            for n in range(10):  # ten chunks sent at once arrive about one latency later, not ten
                conn.sendall(b"%d;" % n)
                time.sleep(0.01)
            got = b""
            while got.count(b";") < 10:
                got += conn.recv(4096)
            took = time.monotonic() - began
        assert got.replace(b"a:", b"") == b"".join(b"%d;" % n for n in range(10))
        assert 0.4 <= took < 1.2, took  # there and back: twice the latency, once
    finally:
        proxy.close()
