"""SMS through a Twilio-compatible HTTP API: `POST /2010-04-01/Accounts/{sid}/Messages.json`, form
fields To, From and Body, HTTP basic auth with the account SID and auth token; the message id
travels as Twilio's idempotency token, so a retried send is one SMS."""

from __future__ import annotations

import httpx

from gamemetrics.ports.mail import Channel, MailError, OutgoingMessage, Rejected, UnsupportedChannel
from gamemetrics.settings import MailSettings

_SMS: frozenset[Channel] = frozenset({"sms"})


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the delta form), if the provider sent one."""
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class TwilioSms:
    """One HTTP client for the process's sends; a provider that hangs is cut off by the timeout."""

    def __init__(self, settings: MailSettings) -> None:
        if not (settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from):
            raise ValueError("SMS needs GAMEMETRICS_TWILIO_ACCOUNT_SID, _AUTH_TOKEN and _FROM")
        self._sid = settings.twilio_account_sid
        self._from = settings.twilio_from
        self._client = httpx.AsyncClient(
            base_url=settings.twilio_base_url.rstrip("/"), timeout=settings.smtp_timeout_seconds,
            auth=(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value()))

    @property
    def channels(self) -> frozenset[Channel]:
        return _SMS

    async def send(self, message: OutgoingMessage) -> None:
        if message.channel != "sms":
            raise UnsupportedChannel(f"the SMS API carries sms, not {message.channel} (message {message.message_id})")
        try:
            response = await self._client.post(
                f"/2010-04-01/Accounts/{self._sid}/Messages.json",
                data={"To": message.recipient, "From": self._from, "Body": message.body},
                headers={"I-Twilio-Idempotency-Token": str(message.message_id)})
        except httpx.HTTPError as exc:
            raise MailError(f"the SMS API did not answer for message {message.message_id}: {exc!r}") from exc
        if response.status_code in (200, 201):
            return
        detail = response.text[:300]
        error = f"the SMS API answered {response.status_code} for message {message.message_id}: {detail}"
        if response.status_code == 429 or response.status_code >= 500:
            raise MailError(error, retry_after=retry_after(response))
        raise Rejected(error)  # 4xx: an invalid number, a blocked recipient, bad credentials

    async def close(self) -> None:
        await self._client.aclose()
