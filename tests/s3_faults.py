"""A loopback HTTP proxy in front of the test S3 server that injects faults: answers 500 or 503
without passing the request on, drops the connection before passing it on or after the server
has acted on it (the answer lost), and slows answers down.

Requests go to the server unchanged (their Host header too, so their signatures still verify), one
connection to it per request. Which request meets which fault is the test's `plan`: a function of
the request's method, path and number (per method, from 1), so a test says exactly what happens.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    """`status` (answer `status` without passing the request on), `drop` (close before passing it on),
    `lost` (pass it on, then close without answering) or `slow` (pass it on, answer after `delay`)."""
    status: int = 503
    delay: float = 0.0


Plan = Callable[[str, str, int], Fault | None]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}


@dataclass
class FaultProxy:
    endpoint: str
    plan: Plan = lambda method, path, n: None
    seen: Counter[str] = field(default_factory=Counter)
    """Requests by method."""
    injected: Counter[str] = field(default_factory=Counter)
    """Faults injected by kind."""


def _handler(proxy: FaultProxy, upstream: tuple[str, int], lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Relay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                parts = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(parts)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _drop(self) -> None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def _relay(self) -> None:
            body = self._body()
            with lock:
                proxy.seen[self.command] += 1
                fault = proxy.plan(self.command, self.path, proxy.seen[self.command])
                if fault:
                    proxy.injected[fault.kind] += 1
            if fault and fault.kind == "status":
                error = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>'
                         + (b"SlowDown" if fault.status == 503 else b"InternalError")
                         + b"</Code><Message>injected fault</Message></Error>")
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                self.wfile.write(error if self.command != "HEAD" else b"")
                return
            if fault and fault.kind == "drop":
                self._drop()
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            server = http.client.HTTPConnection(*upstream, timeout=60)
            try:
                server.request(self.command, self.path, body=body, headers=headers)
                answer = server.getresponse()
                data = answer.read()
            finally:
                server.close()
            if fault and fault.kind == "lost":
                self._drop()
                return
            if fault and fault.kind == "slow":
                time.sleep(fault.delay)
            self.send_response(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in _HOP_BY_HOP and (name.lower() != "content-length" or self.command == "HEAD"):
                    self.send_header(name, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

    return Relay


@contextmanager
def fault_proxy(upstream_endpoint: str) -> Iterator[FaultProxy]:
    """A proxy on a free loopback port in front of `upstream_endpoint` (http://host:port)."""
    parts = urlsplit(upstream_endpoint)
    assert parts.hostname and parts.port
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    proxy = FaultProxy(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(proxy, (parts.hostname, parts.port), threading.Lock())
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
