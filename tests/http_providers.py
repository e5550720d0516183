"""Loopback HTTP servers that speak a provider's request shape and check its authentication, for
the providers the tests cannot reach: a Twilio-compatible SMS API (HTTP basic auth with the
account SID and auth token), FCM HTTP v1 with its OAuth token endpoint (a service account's RS256
JWT exchanged for a bearer token), and a Web Push service (a VAPID ES256 JWT for its origin, the
payload decrypted with the subscription's keys), and APNs over HTTP/2 with TLS (an ES256 provider
token). Each runs in a thread of its own and keeps what
it accepted."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import h2.config
import h2.connection
import h2.events
import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
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


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread


class _Json(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))


@dataclass
class FcmServer:
    port: int
    credentials: Path
    public_key: Any
    project: str = "gm-test"
    tokens: set[str] = field(default_factory=set)
    received: list[dict[str, Any]] = field(default_factory=list)
    dead: set[str] = field(default_factory=lambda: {"dead-device"})

    def settings(self) -> MailSettings:
        return MailSettings(fcm_project_id=self.project, fcm_credentials_file=self.credentials,
                            fcm_base_url=f"http://127.0.0.1:{self.port}", smtp_timeout_seconds=5.0)


@pytest.fixture
def fcm_server(tmp_path: Path) -> Iterator[FcmServer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    credentials = tmp_path / "service-account.json"
    server = FcmServer(0, credentials, key.public_key())

    class Fcm(_Json):
        def do_POST(self) -> None:  # noqa: N802
            token_uri = f"http://127.0.0.1:{server.port}/token"
            if self.path == "/token":
                form = {k: v[0] for k, v in parse_qs(self.body().decode()).items()}
                try:
                    claims = jwt.decode(form.get("assertion", ""), server.public_key, algorithms=["RS256"],
                                        audience=token_uri)
                except jwt.PyJWTError as exc:
                    self.answer(400, {"error": "invalid_grant", "error_description": str(exc)})
                    return
                if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or \
                        claims.get("scope") != "https://www.googleapis.com/auth/firebase.messaging":
                    self.answer(400, {"error": "invalid_scope"})
                    return
                access = f"ya29.{secrets.token_hex(8)}"
                server.tokens.add(access)
                self.answer(200, {"access_token": access, "expires_in": 3599, "token_type": "Bearer"})
                return
            if self.path != f"/v1/projects/{server.project}/messages:send":
                self.answer(404, {"error": {"status": "NOT_FOUND"}})
                return
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if bearer not in server.tokens:
                self.answer(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
                return
            message = json.loads(self.body())["message"]
            if message["token"] in server.dead:
                self.answer(404, {"error": {"code": 404, "status": "NOT_FOUND",
                                            "details": [{"errorCode": "UNREGISTERED"}]}})
                return
            server.received.append(message)
            self.answer(200, {"name": f"projects/{server.project}/messages/{len(server.received)}"})

    httpd, _ = _serve(Fcm)
    server.port = httpd.server_address[1]
    credentials.write_text(json.dumps({"type": "service_account", "client_email": "notifier@gm-test.iam",
                                       "private_key": pem, "token_uri": f"http://127.0.0.1:{server.port}/token"}))
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class WebPushServer:
    port: int
    vapid_key: str
    received: list[dict[str, Any]] = field(default_factory=list)
    keys: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict)
    auth: dict[str, bytes] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)

    def subscription(self, name: str) -> dict[str, Any]:
        """A browser's subscription to this service, with keys the server keeps to decrypt what arrives."""
        key = ec.generate_private_key(ec.SECP256R1())
        self.keys[name], self.auth[name] = key, secrets.token_bytes(16)
        public = key.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": f"http://127.0.0.1:{self.port}/push/{name}",
                "keys": {"p256dh": _b64url(public), "auth": _b64url(self.auth[name])}}

    def settings(self) -> MailSettings:
        return MailSettings(vapid_private_key=SecretStr(self.vapid_key), vapid_subject="mailto:ops@studio.example",
                            smtp_timeout_seconds=5.0)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def web_push_server() -> Iterator[WebPushServer]:
    vapid = ec.generate_private_key(ec.SECP256R1())
    raw = vapid.private_numbers().private_value.to_bytes(32, "big")
    server = WebPushServer(0, _b64url(raw))

    class Push(_Json):
        def do_POST(self) -> None:  # noqa: N802
            name = self.path.removeprefix("/push/")
            if name not in server.keys:
                self.answer(404, {"error": "no such subscription"})
                return
            if name in server.gone:
                self.answer(410, {"error": "subscription expired"})
                return
            scheme, _, params = self.headers.get("Authorization", "").partition(" ")
            fields = dict(part.split("=", 1) for part in params.split(",") if "=" in part)
            try:
                public = ec.EllipticCurvePublicKey.from_encoded_point(
                    ec.SECP256R1(), base64.urlsafe_b64decode(fields["k"] + "=" * (-len(fields["k"]) % 4)))
                claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=f"http://127.0.0.1:{server.port}")
            except (KeyError, ValueError, jwt.PyJWTError) as exc:
                self.answer(401, {"error": f"bad VAPID: {exc}"})
                return
            if scheme != "vapid" or public.public_numbers() != vapid.public_key().public_numbers() or \
                    not str(claims.get("sub", "")).startswith("mailto:") or \
                    self.headers.get("Content-Encoding") != "aes128gcm" or not self.headers.get("TTL"):
                self.answer(403, {"error": "VAPID key, subject, encoding or TTL not as required"})
                return
            plain = http_ece.decrypt(self.body(), private_key=server.keys[name], auth_secret=server.auth[name],
                                     version="aes128gcm")
            server.received.append({"subscription": name, **json.loads(plain)})
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd, _ = _serve(Push)
    server.port = httpd.server_address[1]
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class ApnsServer:
    port: int
    ca_file: Path
    key_file: Path
    public_key: Any
    key_id: str = "ABC123DEFG"
    team_id: str = "TEAM456XYZ"
    topic: str = "com.studio.game"
    received: list[dict[str, Any]] = field(default_factory=list)
    gone: set[str] = field(default_factory=lambda: {"dead0dead"})

    def settings(self) -> MailSettings:
        return MailSettings(apns_key_file=self.key_file, apns_key_id=self.key_id, apns_team_id=self.team_id,
                            apns_topic=self.topic, apns_base_url=f"https://127.0.0.1:{self.port}",
                            apns_ca_file=self.ca_file, smtp_timeout_seconds=5.0)


@pytest.fixture
def apns_server(tmp_path: Path) -> Iterator[ApnsServer]:
    """APNs over HTTP/2 and TLS (ALPN h2) on loopback, checking the provider token's ES256
    signature, key id and team, and the topic."""
    from tests.smtp_server import _certificates

    (tmp_path / "apns").mkdir()
    ca, certificate, tls_key = _certificates(tmp_path / "apns")
    signing = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "AuthKey.p8"
    key_file.write_bytes(signing.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    server = ApnsServer(0, ca, key_file, signing.public_key())
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certificate, tls_key)
    tls.set_alpn_protocols(["h2"])

    def answer(headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any] | None]:
        token = headers.get("authorization", "").removeprefix("bearer ")
        try:
            claims = jwt.decode(token, server.public_key, algorithms=["ES256"])
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return 403, {"reason": "InvalidProviderToken"}
        if claims.get("iss") != server.team_id or kid != server.key_id:
            return 403, {"reason": "InvalidProviderToken"}
        if headers.get("apns-topic") != server.topic or headers.get(":method") != "POST":
            return 400, {"reason": "BadTopic"}
        device = headers.get(":path", "").removeprefix("/3/device/")
        if device in server.gone:
            return 410, {"reason": "Unregistered", "timestamp": 0}
        server.received.append({"device": device, "apns_id": headers.get("apns-id"), **json.loads(body)})
        return 200, None

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False,
                                                                            header_encoding="utf-8"))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        requests: dict[int, tuple[dict[str, str], bytearray]] = {}
        while data := await reader.read(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    requests[event.stream_id] = (dict(event.headers), bytearray())  # type: ignore[arg-type]
                elif isinstance(event, h2.events.DataReceived):
                    requests[event.stream_id][1].extend(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    headers, body = requests.pop(event.stream_id)
                    status, reply = answer(headers, bytes(body))
                    content = json.dumps(reply).encode() if reply else b""
                    conn.send_headers(event.stream_id, [(":status", str(status)), ("apns-id", headers.get(
                        "apns-id", "")), ("content-length", str(len(content)))], end_stream=not content)
                    if content:
                        conn.send_data(event.stream_id, content, end_stream=True)
            writer.write(conn.data_to_send())
            await writer.drain()
        writer.close()

    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        holder["server"] = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
        server.port = holder["server"].sockets[0].getsockname()[1]
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(main()), loop.run_forever()), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(holder["server"].close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
