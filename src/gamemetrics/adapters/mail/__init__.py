"""Adapters of the Mail port: the outbox table (the embedded default) and SMTP."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from gamemetrics.adapters.mail.outbox import OutboxMail
from gamemetrics.adapters.mail.smtp import SmtpMail
from gamemetrics.ports.mail import Mail
from gamemetrics.settings import MailSettings


def make_mail(settings: MailSettings, pool: AsyncConnectionPool) -> Mail:
    """SMTP when GAMEMETRICS_SMTP_HOST is set, else the outbox table of the platform's database."""
    return SmtpMail(settings) if settings.smtp_host else OutboxMail(pool)
