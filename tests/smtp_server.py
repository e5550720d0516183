"""The test SMTP server: a real `aiosmtpd` on a free loopback port, in a thread of its own, that
requires STARTTLS (with a certificate a throw-away CA signed for 127.0.0.1) and a login, and keeps
every message it accepts for the test to read. A test may script the next replies to DATA (`replies`,
e.g. a 451 then a 250) to play a provider that fails for a while, and restart it (`restart`: every
open session closed, as a server going down closes them, then listening again on the same port)."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from gamemetrics.settings import MailSettings
from tests.net import free_port

USER = "notifier"


@dataclass
class Received:
    """What the server accepted: the envelope's sender and recipients, and the parsed message."""

    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class SmtpServer:
    port: int
    password: str
    ca_file: Path
    received: list[Received] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    """Replies to the next DATA commands, in order, instead of accepting (e.g. "451 4.3.0 try later")."""
    refused: int = 0
    peers: set[tuple[str, int]] = field(default_factory=set)
    """The client ends of the sessions that carried a message (a pooled client reuses a few)."""
    restarts: list[Callable[[], None]] = field(default_factory=list)

    def restart(self) -> None:
        """Close every open session and listen again on the same port, keeping what was received."""
        self.restarts[0]()

    def settings(self, **overrides: Any) -> MailSettings:
        """Mail settings that reach this server with STARTTLS and the right login."""
        return MailSettings(**{
            "smtp_host": "127.0.0.1", "smtp_port": self.port, "smtp_starttls": True, "smtp_username": USER,
            "smtp_password": SecretStr(self.password), "smtp_ca_file": self.ca_file,
            "mail_from": "GameMetrics <noreply@gamemetrics.test>", "smtp_timeout_seconds": 5.0, **overrides,
        })


class _Keeper:
    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self._server.peers.add(tuple(session.peer))  # type: ignore[arg-type]
        if self._server.replies:
            self._server.refused += 1
            return self._server.replies.pop(0)
        # Lines end in CRLF on the wire; read back as text they end in a newline, as they were sent.
        content = (envelope.original_content or b"").replace(b"\r\n", b"\n")
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self._server.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
        return "250 OK"



def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signed for 127.0.0.1: (ca, certificate, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gamemetrics test mail CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@contextmanager
def running_smtp_server(directory: Path) -> Iterator[SmtpServer]:
    """A server on a free port, its certificates in `directory`, stopped on exit."""
    ca, certificate, key = _certificates(directory)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certificate, key)
    server = SmtpServer(free_port(), secrets.token_hex(8), ca)

    def authenticate(smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == USER.encode() \
            and data.password == server.password.encode()
        return AuthResult(success=ok)

    sessions: list[SMTP] = []

    class Sessions(Controller):
        """A controller that remembers its sessions, so a restart can close them."""

        def factory(self) -> SMTP:
            session = super().factory()
            sessions.append(session)
            return session

    def start() -> Controller:
        controller = Sessions(_Keeper(server), hostname="127.0.0.1", port=server.port, tls_context=tls,
                              require_starttls=True, authenticator=authenticate, auth_required=True,
                              auth_require_tls=True)
        controller.start()
        return controller

    running = [start()]

    def restart() -> None:
        controller = running.pop()
        for session in sessions:
            if session.transport is not None:
                controller.loop.call_soon_threadsafe(session.transport.close)
        sessions.clear()
        controller.stop()
        running.append(start())

    server.restarts.append(restart)
    try:
        yield server
    finally:
        running.pop().stop()


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """A server of the test's own, so what it received is the test's alone."""
    with running_smtp_server(tmp_path) as server:
        yield server
