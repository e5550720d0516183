"""Loopback HTTP servers that speak a provider's request shape and check its authentication, for
the providers the tests cannot reach: a Twilio-compatible SMS API (HTTP basic auth with the
account SID and auth token). Each runs in a thread of its own and keeps what it accepted."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from pydantic import SecretStr

from gamemetrics.settings import MailSettings

ACCOUNT = "AC" + "0" * 32


@dataclass
class TwilioServer:
    port: int
    token: str = "twilio-auth-token"
    received: list[dict[str, Any]] = field(default_factory=list)
    replies: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    """Answers to the next well-authenticated requests, in order, instead of accepting them."""
    refused: int = 0

    def settings(self, **overrides: Any) -> MailSettings:
        return MailSettings(**{"twilio_account_sid": ACCOUNT, "twilio_auth_token": SecretStr(self.token),
                               "twilio_from": "+15005550006", "twilio_base_url": f"http://127.0.0.1:{self.port}",
                               "smtp_timeout_seconds": 5.0, **overrides})


def _handler(server: TwilioServer) -> type[BaseHTTPRequestHandler]:
    class Twilio(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (quiet in tests)
            return

        def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{server.token}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
                return
            if self.path != f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json" or \
                    self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
                self._answer(404, {"code": 20404, "message": "not found", "status": 404})
                return
            if not {"To", "From", "Body"} <= set(form):
                self._answer(400, {"code": 21604, "message": "A 'To', 'From' and 'Body' are required", "status": 400})
                return
            if server.replies:
                server.refused += 1
                status, headers, body = server.replies.pop(0)
                self._answer(status, body, headers)
                return
            server.received.append({**form, "idempotency": self.headers.get("I-Twilio-Idempotency-Token")})
            self._answer(201, {"sid": f"SM{len(server.received):032d}", "status": "queued", "to": form["To"]})

    return Twilio


@pytest.fixture
def twilio_server() -> Iterator[TwilioServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server = TwilioServer(httpd.server_address[1])
    httpd.RequestHandlerClass = _handler(server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
