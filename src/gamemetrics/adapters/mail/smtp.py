"""Email through an SMTP server with `aiosmtplib`: STARTTLS or TLS from the start, and
authentication, as configured. Only the email channel.

Sessions are pooled: up to GAMEMETRICS_SMTP_CONNECTIONS are open at once, each sends many
messages (a fresh session per message pays TCP, greeting, EHLO, STARTTLS and AUTH every time). A
session that met any error is closed rather than reused, one idle too long or that has carried its
share of messages is replaced, and a reused session the server had dropped is retried once on a
fresh one."""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from email.header import Header
from email.utils import formatdate, parseaddr

import aiosmtplib

from gamemetrics.ports.mail import Channel, MailError, OutgoingMessage, Rejected, UnsupportedChannel
from gamemetrics.settings import MailSettings

_EMAIL: frozenset[Channel] = frozenset({"email"})


def email_of(message: OutgoingMessage, sender: str, domain: str) -> bytes:
    """The message as an RFC 5322 email, text/plain in UTF-8 (base64), its Message-ID made from the
    message's id.

    Written out directly: the email package's classes and generator cost more than the rest of a
    pooled send. A line break in a header value (a subject rendered from a request's data) becomes
    a space, so no data can add a header; a value that is not ASCII is an RFC 2047 encoded word."""
    headers = [("From", sender), ("To", message.recipient), ("Subject", message.subject),
               ("Date", formatdate(usegmt=True)), ("Message-ID", f"<{message.message_id}@{domain}>"),
               *message.headers.items()]
    head = "".join(f"{name}: {_header_value(value)}\r\n" for name, value in headers)
    body = base64.encodebytes(message.body.encode()).replace(b"\n", b"\r\n")
    return (f"{head}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode() + body


def _header_value(value: str) -> str:
    line = " ".join(value.splitlines()) if "\n" in value or "\r" in value else value
    return line if line.isascii() else Header(line, "utf-8").encode(maxlinelen=0)


_IDLE_SECONDS = 30.0
"""A pooled session idle longer is closed: servers drop idle clients after a while (RFC 5321 allows 5 minutes)."""
_MESSAGES_PER_SESSION = 100
"""Then a new session: some servers cap the messages one session may carry."""


class _Session:
    """One open SMTP session and what it has carried."""

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client
        self.sent = 0
        self.idle_since = time.monotonic()

    def reusable(self) -> bool:
        return (self.client.is_connected and self.sent < _MESSAGES_PER_SESSION
                and time.monotonic() - self.idle_since < _IDLE_SECONDS)


class SmtpMail:
    """A pool of SMTP sessions to one server, each carrying many messages."""

    def __init__(self, settings: MailSettings, *, host: str | None = None, port: int | None = None) -> None:
        if not (host or settings.smtp_host):
            raise ValueError("SMTP needs GAMEMETRICS_SMTP_HOST")
        self._settings = settings
        self._host = host or settings.smtp_host or ""
        self._port = port or settings.smtp_port
        self._tls = ssl.create_default_context(cafile=settings.smtp_ca_file) if settings.smtp_ca_file else None
        self._domain = settings.mail_from.rpartition("@")[2].rstrip(">") or "localhost"
        self._sender = parseaddr(settings.mail_from)[1]
        self._slots = asyncio.Semaphore(max(1, settings.smtp_connections))
        self._idle: list[_Session] = []

    @property
    def channels(self) -> frozenset[Channel]:
        return _EMAIL

    async def send(self, message: OutgoingMessage) -> None:
        if message.channel != "email":
            raise UnsupportedChannel(f"SMTP carries email, not {message.channel} (message {message.message_id})")
        email = email_of(message, self._settings.mail_from, self._domain)
        try:
            async with self._slots:
                session = self._reused()
                if session is not None:
                    try:
                        await self._carry(session, email, message.recipient)
                        return
                    except aiosmtplib.SMTPServerDisconnected:
                        pass  # the server closed it while it sat idle: once more on a fresh session
                await self._carry(await self._open(), email, message.recipient)
        except (aiosmtplib.SMTPException, OSError) as exc:
            error = Rejected if _permanent(exc) else MailError
            raise error(f"{self._host}:{self._port} did not take message {message.message_id}"
                        f" for tenant {message.tenant_id}: {exc}") from exc

    def _reused(self) -> _Session | None:
        while self._idle:
            session = self._idle.pop()
            if session.reusable():
                return session
            session.client.close()
        return None

    async def _open(self) -> _Session:
        settings = self._settings
        client = aiosmtplib.SMTP(
            hostname=self._host, port=self._port, use_tls=settings.smtp_tls,
            start_tls=settings.smtp_starttls and not settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            tls_context=self._tls, timeout=settings.smtp_timeout_seconds,
        )
        await client.connect()
        return _Session(client)

    async def _carry(self, session: _Session, email: bytes, recipient: str) -> None:
        """Send on `session`; back into the pool when it went well, closed when anything went wrong."""
        try:
            await session.client.sendmail(self._sender, [recipient], email)
        except BaseException:
            session.client.close()
            raise
        session.sent += 1
        session.idle_since = time.monotonic()
        self._idle.append(session)


def _permanent(exc: BaseException) -> bool:
    """An SMTP 5xx reply (for the message or every recipient): RFC 5321's permanent failure."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(refused.code >= 500 for refused in exc.recipients)
    return isinstance(exc, aiosmtplib.SMTPResponseException) and 500 <= exc.code < 600
