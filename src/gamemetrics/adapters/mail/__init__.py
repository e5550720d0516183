"""Adapters of the Mail port: the outbox table (the embedded default), SMTP for email (with an
optional second server that takes over), a Twilio-compatible API for SMS, FCM and APNs for push,
and Web Push, joined per channel."""

from __future__ import annotations

from collections.abc import Mapping

from psycopg_pool import AsyncConnectionPool

from gamemetrics.adapters.mail.outbox import OutboxMail
from gamemetrics.ports.mail import Channel, Mail, OutgoingMessage, UnsupportedChannel
from gamemetrics.settings import MailSettings


class ChannelMail:
    """One Mail that hands each message to the adapter of its channel."""

    def __init__(self, by_channel: Mapping[Channel, Mail]) -> None:
        self._by_channel = dict(by_channel)

    @property
    def channels(self) -> frozenset[Channel]:
        return frozenset(self._by_channel)

    def carrier(self, channel: Channel) -> Mail | None:
        """The adapter of `channel`, so a batch of one channel can go to it in one exchange."""
        return self._by_channel.get(channel)

    async def send(self, message: OutgoingMessage) -> None:
        adapter = self._by_channel.get(message.channel)
        if adapter is None:
            raise UnsupportedChannel(f"no provider carries {message.channel} (message {message.message_id})")
        await adapter.send(message)


class PushMail:
    """Push to Apple devices through APNs (addresses `apns:<token>`), to the others through FCM."""

    def __init__(self, fcm: Mail, apns: Mail) -> None:
        from gamemetrics.adapters.mail.apns import APNS_PREFIX

        self._fcm, self._apns, self._apns_prefix = fcm, apns, APNS_PREFIX

    @property
    def channels(self) -> frozenset[Channel]:
        return frozenset({"push"})

    async def send(self, message: OutgoingMessage) -> None:
        await (self._apns if message.recipient.startswith(self._apns_prefix) else self._fcm).send(message)


def make_mail(settings: MailSettings, pool: AsyncConnectionPool) -> Mail:
    """Email by SMTP when GAMEMETRICS_SMTP_HOST is set, SMS by the Twilio-compatible API when
    GAMEMETRICS_TWILIO_ACCOUNT_SID is, push by FCM when GAMEMETRICS_FCM_PROJECT_ID is (and to Apple devices by APNs when
    GAMEMETRICS_APNS_KEY_FILE is), Web Push when
    GAMEMETRICS_VAPID_PRIVATE_KEY is; every other channel (and those, unset) into the outbox table.

    Each provider's module is imported only when it is configured: every process makes its Mail
    port, and most never send (the clients of HTTP/2 and Web Push cost memory and start-up time)."""
    outbox = OutboxMail(pool)
    by_channel: dict[Channel, Mail] = dict.fromkeys(outbox.channels, outbox)
    if settings.smtp_host:
        from gamemetrics.adapters.mail.smtp import SmtpMail

        by_channel["email"] = SmtpMail(settings)
    if settings.twilio_account_sid:
        from gamemetrics.adapters.mail.twilio import TwilioSms

        by_channel["sms"] = TwilioSms(settings)
    if settings.fcm_project_id or settings.apns_key_file:
        from gamemetrics.adapters.mail.apns import ApnsPush
        from gamemetrics.adapters.mail.fcm import FcmPush

        fcm = FcmPush(settings) if settings.fcm_project_id else outbox
        by_channel["push"] = PushMail(fcm, ApnsPush(settings)) if settings.apns_key_file else fcm
    if settings.vapid_private_key:
        from gamemetrics.adapters.mail.webpush import WebPush

        by_channel["web_push"] = WebPush(settings)
    return ChannelMail(by_channel)


def make_fallback_mail(settings: MailSettings) -> Mail | None:
    """The second SMTP server of GAMEMETRICS_SMTP_FALLBACK_HOST, or None."""
    if not settings.smtp_fallback_host:
        return None
    from gamemetrics.adapters.mail.smtp import SmtpMail

    return SmtpMail(settings, host=settings.smtp_fallback_host, port=settings.smtp_fallback_port)
