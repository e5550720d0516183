"""Mobile push through FCM HTTP v1: `POST /v1/projects/{project}/messages:send` with an OAuth 2.0
bearer token, which a service account's signed JWT is exchanged for at its token endpoint
(RFC 7523) and kept until shortly before it expires."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt

from gamemetrics.adapters.mail.twilio import retry_after
from gamemetrics.ports.mail import Channel, MailError, OutgoingMessage, Rejected, UnsupportedChannel
from gamemetrics.settings import MailSettings

_PUSH: frozenset[Channel] = frozenset({"push"})
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GONE = ("UNREGISTERED", "INVALID_ARGUMENT", "SENDER_ID_MISMATCH")


class FcmPush:
    """Sends with one HTTP client; the access token is fetched once and shared by concurrent sends."""

    def __init__(self, settings: MailSettings) -> None:
        if not (settings.fcm_project_id and settings.fcm_credentials_file):
            raise ValueError("push needs GAMEMETRICS_FCM_PROJECT_ID and GAMEMETRICS_FCM_CREDENTIALS_FILE")
        account = json.loads(Path(settings.fcm_credentials_file).read_text())
        self._email: str = account["client_email"]
        self._key: str = account["private_key"]
        self._token_uri: str = account.get("token_uri", "https://oauth2.googleapis.com/token")
        self._url = f"{settings.fcm_base_url.rstrip('/')}/v1/projects/{settings.fcm_project_id}/messages:send"
        self._client = httpx.AsyncClient(timeout=settings.smtp_timeout_seconds)
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    @property
    def channels(self) -> frozenset[Channel]:
        return _PUSH

    async def _access_token(self, *, renew: bool = False) -> str:
        async with self._lock:
            if self._token is not None and not renew and self._token[1] > time.time() + 60:
                return self._token[0]
            now = int(time.time())
            assertion = jwt.encode({"iss": self._email, "scope": SCOPE, "aud": self._token_uri, "iat": now,
                                    "exp": now + 3600}, self._key, algorithm="RS256")
            try:
                response = await self._client.post(self._token_uri, data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion})
                body: dict[str, Any] = response.json() if response.status_code == 200 else {}
            except (httpx.HTTPError, ValueError) as exc:
                raise MailError(f"the FCM token endpoint did not answer: {exc!r}") from exc
            if "access_token" not in body:
                raise MailError(f"the FCM token endpoint answered {response.status_code}: {response.text[:300]}")
            self._token = (str(body["access_token"]), now + float(body.get("expires_in", 3600)))
            return self._token[0]

    async def send(self, message: OutgoingMessage) -> None:
        if message.channel != "push":
            raise UnsupportedChannel(f"FCM carries push, not {message.channel} (message {message.message_id})")
        payload = {"message": {"token": message.recipient,
                               "notification": {"title": message.subject, "body": message.body},
                               "data": {"message_id": str(message.message_id)}}}
        response = await self._post(payload, await self._access_token())
        if response.status_code == 401:  # the token was revoked or expired early: one fresh try
            response = await self._post(payload, await self._access_token(renew=True))
        if response.status_code == 200:
            return
        error = f"FCM answered {response.status_code} for message {message.message_id}: {response.text[:300]}"
        if response.status_code == 429 or response.status_code >= 500 or response.status_code == 401:
            raise MailError(error, retry_after=retry_after(response))
        raise Rejected(error, recipient_gone=response.status_code == 404 or any(c in response.text for c in GONE))

    async def _post(self, payload: dict[str, Any], token: str) -> httpx.Response:
        try:
            return await self._client.post(self._url, json=payload, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise MailError(f"FCM did not answer: {exc!r}") from exc
