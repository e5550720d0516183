"""Email through an SMTP server with `aiosmtplib`: STARTTLS or TLS from the start, and
authentication, as configured. Only the email channel."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from gamemetrics.ports.mail import Channel, MailError, OutgoingMessage, Rejected, UnsupportedChannel
from gamemetrics.settings import MailSettings

_EMAIL: frozenset[Channel] = frozenset({"email"})


def email_of(message: OutgoingMessage, sender: str, domain: str) -> EmailMessage:
    """The message as an RFC 5322 email; its Message-ID is made from the message's id."""
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["Date"] = formatdate(usegmt=True)
    email["Message-ID"] = f"<{message.message_id}@{domain}>"
    for name, value in message.headers.items():
        email[name] = value
    email.set_content(message.body)
    return email


class SmtpMail:
    """One SMTP connection per message: sends are rare next to events, and a pooled connection
    would need its own keep-alive and reconnect handling."""

    def __init__(self, settings: MailSettings, *, host: str | None = None, port: int | None = None) -> None:
        if not (host or settings.smtp_host):
            raise ValueError("SMTP needs GAMEMETRICS_SMTP_HOST")
        self._settings = settings
        self._host = host or settings.smtp_host or ""
        self._port = port or settings.smtp_port
        self._tls = ssl.create_default_context(cafile=settings.smtp_ca_file) if settings.smtp_ca_file else None
        self._domain = settings.mail_from.rpartition("@")[2].rstrip(">") or "localhost"

    @property
    def channels(self) -> frozenset[Channel]:
        return _EMAIL

    async def send(self, message: OutgoingMessage) -> None:
        if message.channel != "email":
            raise UnsupportedChannel(f"SMTP carries email, not {message.channel} (message {message.message_id})")
        settings = self._settings
        try:
            await aiosmtplib.send(
                email_of(message, settings.mail_from, self._domain),
                hostname=self._host, port=self._port,
                use_tls=settings.smtp_tls, start_tls=settings.smtp_starttls and not settings.smtp_tls,
                username=settings.smtp_username,
                password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                tls_context=self._tls, timeout=settings.smtp_timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            error = Rejected if _permanent(exc) else MailError
            raise error(f"{self._host}:{self._port} did not take message {message.message_id}"
                        f" for tenant {message.tenant_id}: {exc}") from exc


def _permanent(exc: BaseException) -> bool:
    """An SMTP 5xx reply (for the message or every recipient): RFC 5321's permanent failure."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(refused.code >= 500 for refused in exc.recipients)
    return isinstance(exc, aiosmtplib.SMTPResponseException) and 500 <= exc.code < 600
