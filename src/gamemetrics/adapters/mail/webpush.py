"""Web Push (RFC 8030) to a browser's push service: the payload encrypted for the subscription
(RFC 8291, aes128gcm, by `pywebpush`) and the request signed with the platform's VAPID key
(RFC 8292: a JWT for the push service's origin, and the public key)."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import httpx
from py_vapid import Vapid02
from pywebpush import WebPusher

from gamemetrics.adapters.mail.twilio import retry_after
from gamemetrics.ports.mail import Channel, MailError, OutgoingMessage, Rejected, UnsupportedChannel
from gamemetrics.settings import MailSettings

_WEB_PUSH: frozenset[Channel] = frozenset({"web_push"})
TTL_SECONDS = 24 * 3600


class WebPush:
    def __init__(self, settings: MailSettings) -> None:
        if not (settings.vapid_private_key and settings.vapid_subject):
            raise ValueError("Web Push needs GAMEMETRICS_VAPID_PRIVATE_KEY and GAMEMETRICS_VAPID_SUBJECT")
        self._vapid = Vapid02.from_string(settings.vapid_private_key.get_secret_value())
        self._subject = settings.vapid_subject
        self._client = httpx.AsyncClient(timeout=settings.smtp_timeout_seconds)

    @property
    def channels(self) -> frozenset[Channel]:
        return _WEB_PUSH

    async def send(self, message: OutgoingMessage) -> None:
        if message.channel != "web_push":
            raise UnsupportedChannel(f"Web Push carries web_push, not {message.channel} (message {message.message_id})")
        try:
            subscription = json.loads(message.recipient)
            endpoint = subscription["endpoint"]
            payload = json.dumps({"title": message.subject, "body": message.body,
                                  "message_id": str(message.message_id)}).encode()
            encrypted = WebPusher(subscription).encode(payload, "aes128gcm")
        except (ValueError, KeyError, TypeError) as exc:
            raise Rejected(f"not a usable subscription for message {message.message_id}: {exc}",
                           recipient_gone=True) from exc
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(endpoint))
        headers = {**self._vapid.sign({"aud": origin, "sub": self._subject, "exp": int(time.time()) + 12 * 3600}),
                   "TTL": str(TTL_SECONDS), "Content-Encoding": "aes128gcm",
                   "Content-Type": "application/octet-stream", "Urgency": "normal"}
        try:
            response = await self._client.post(endpoint, content=encrypted["body"], headers=headers)
        except httpx.HTTPError as exc:
            raise MailError(f"the push service did not answer for message {message.message_id}: {exc!r}") from exc
        if response.status_code in (200, 201, 202):
            return
        error = f"the push service answered {response.status_code} for message {message.message_id}:" \
                f" {response.text[:300]}"
        if response.status_code == 429 or response.status_code >= 500:
            raise MailError(error, retry_after=retry_after(response))
        raise Rejected(error, recipient_gone=response.status_code in (404, 410))
