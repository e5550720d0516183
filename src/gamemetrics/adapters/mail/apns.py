"""Mobile push to Apple devices through APNs: HTTP/2, token-based authentication (an ES256 JWT
from the team's signing key, renewed before its hour runs out), `POST /3/device/{token}` with the
app's bundle id as `apns-topic` and the message id as `apns-id`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import jwt

from gamemetrics.adapters.mail.twilio import retry_after
from gamemetrics.ports.mail import Channel, MailError, OutgoingMessage, Rejected, UnsupportedChannel
from gamemetrics.settings import MailSettings

APNS_PREFIX = "apns:"
"""How an Apple device token is kept among a player's push addresses (FCM tokens carry no prefix)."""
_PUSH: frozenset[Channel] = frozenset({"push"})
_RENEW_AFTER_S = 50 * 60  # APNs refuses a token older than an hour, and one renewed more often than every 20 min
GONE = ("BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered")


class ApnsPush:
    def __init__(self, settings: MailSettings) -> None:
        if not (settings.apns_key_file and settings.apns_key_id and settings.apns_team_id and settings.apns_topic):
            raise ValueError("APNs needs GAMEMETRICS_APNS_KEY_FILE, _KEY_ID, _TEAM_ID and _TOPIC")
        self._key = Path(settings.apns_key_file).read_text()
        self._key_id, self._team, self._topic = settings.apns_key_id, settings.apns_team_id, settings.apns_topic
        self._client = httpx.AsyncClient(base_url=settings.apns_base_url.rstrip("/"), http2=True,
                                         timeout=settings.smtp_timeout_seconds,
                                         verify=str(settings.apns_ca_file) if settings.apns_ca_file else True)
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    @property
    def channels(self) -> frozenset[Channel]:
        return _PUSH

    async def _bearer(self, *, renew: bool = False) -> str:
        async with self._lock:
            now = time.time()
            if self._token is None or renew or now - self._token[1] > _RENEW_AFTER_S:
                signed = jwt.encode({"iss": self._team, "iat": int(now)}, self._key, algorithm="ES256",
                                    headers={"kid": self._key_id})
                self._token = (signed, now)
            return self._token[0]

    async def send(self, message: OutgoingMessage) -> None:
        if message.channel != "push":
            raise UnsupportedChannel(f"APNs carries push, not {message.channel} (message {message.message_id})")
        device = message.recipient.removeprefix(APNS_PREFIX)
        payload = {"aps": {"alert": {"title": message.subject, "body": message.body}}}
        response = await self._post(device, payload, message, await self._bearer())
        if response.status_code == 403 and "ExpiredProviderToken" in response.text:
            response = await self._post(device, payload, message, await self._bearer(renew=True))
        if response.status_code == 200:
            return
        error = f"APNs answered {response.status_code} for message {message.message_id}: {response.text[:300]}"
        if response.status_code == 429 or response.status_code >= 500 or "ExpiredProviderToken" in response.text:
            raise MailError(error, retry_after=retry_after(response))
        raise Rejected(error, recipient_gone=response.status_code == 410 or any(r in response.text for r in GONE))

    async def _post(self, device: str, payload: object, message: OutgoingMessage, bearer: str) -> httpx.Response:
        try:
            return await self._client.post(f"/3/device/{device}", json=payload, headers={
                "authorization": f"bearer {bearer}", "apns-topic": self._topic, "apns-push-type": "alert",
                "apns-id": str(message.message_id), "apns-priority": "10"})
        except httpx.HTTPError as exc:
            raise MailError(f"APNs did not answer for message {message.message_id}: {exc!r}") from exc
