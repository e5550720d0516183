"""Adapters of the Mail port: the outbox table (the embedded default) and SMTP (with an optional
second server that takes over)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from gamemetrics.adapters.mail.outbox import OutboxMail
from gamemetrics.adapters.mail.smtp import SmtpMail
from gamemetrics.ports.mail import Mail
from gamemetrics.settings import MailSettings


def make_mail(settings: MailSettings, pool: AsyncConnectionPool) -> Mail:
    """SMTP when GAMEMETRICS_SMTP_HOST is set, else the outbox table of the platform's database."""
    return SmtpMail(settings) if settings.smtp_host else OutboxMail(pool)


def make_fallback_mail(settings: MailSettings) -> Mail | None:
    """The second SMTP server of GAMEMETRICS_SMTP_FALLBACK_HOST, or None."""
    if not settings.smtp_fallback_host:
        return None
    return SmtpMail(settings, host=settings.smtp_fallback_host, port=settings.smtp_fallback_port)
