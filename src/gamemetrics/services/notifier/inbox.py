"""What the game client calls with its player's token: the in-app inbox
(`GET /v1/games/{game_id}/players/{player_id}/inbox`, marking a message read) and registering the
device's push token or Web Push subscription (`.../devices`, which the game's server may also call
with its own token); and `POST .../inbox/token`, with which the game's server issues that player
token to the player it signed in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.services.notifier import store
from gamemetrics.services.notifier.player_tokens import BadPlayerToken, PlayerClaim, PlayerTokens
from gamemetrics.services.notifier.signing import b64decode
from gamemetrics.web.challenge import bearer_challenge
from gamemetrics.web.errors import ApiError
from gamemetrics.web.principal import Guard
from gamemetrics.web.requests import json_body, path_player, path_uuid
from gamemetrics.web.responses import json_response

INBOX = "/v1/games/{game_id}/players/{player_id}/inbox"
DEVICES = "/v1/games/{game_id}/players/{player_id}/devices"
MAX_ADDRESS = 4096
SEND = "notifications:send"


class InboxRoutes:
    def __init__(self, pool: AsyncConnectionPool, guard: Guard, tokens: PlayerTokens, *, page_max: int = 100) -> None:
        self._pool = pool
        self._guard = guard
        self._tokens = tokens
        self._page_max = page_max

    async def issue(self, request: Request) -> Response:
        """A token for the path's player, for the game's server to hand to that player's client."""
        principal, game_id = await self._guard.tenant_game(request, SEND)
        player_id = path_player(request)
        async with store.tenant_transaction(self._pool, principal.tenant_id) as conn:
            if await store.player_traits(conn, principal.tenant_id, game_id, player_id) is None:
                raise ApiError(404, f"no player {player_id!r} in this game")
        claim = self._tokens.issue(principal.tenant_id, game_id, player_id)
        return json_response({"token": self._tokens.encode(claim), "token_type": "Bearer",
                              "expires_at": datetime.fromtimestamp(claim.expires_at, UTC)}, 201)

    def _player(self, request: Request) -> PlayerClaim:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise BadPlayerToken("a player token is required (Authorization: Bearer gmp_...)")
            claim = self._tokens.check(token.strip())
        except BadPlayerToken as exc:
            challenge = bearer_challenge("invalid_token", description=str(exc))
            raise ApiError(401, str(exc), headers={"WWW-Authenticate": challenge}) from None
        if claim.game_id != path_uuid(request, "game_id") or claim.player_id != path_player(request):
            raise ApiError(403, "this token is another player's: a player reads only their own inbox")
        return claim

    async def inbox(self, request: Request) -> Response:
        claim = self._player(request)
        try:
            limit = min(max(int(request.query_params.get("limit", "50")), 1), self._page_max)
        except ValueError:
            raise ApiError(400, "limit is an integer") from None
        unread_only = request.query_params.get("unread") in ("1", "true")
        async with store.tenant_transaction(self._pool, claim.tenant_id) as conn:
            cur = await conn.execute(
                "SELECT d.notification_id, n.template, n.category, d.subject, d.body, d.sent_at, d.read_at"
                " FROM notification_deliveries d JOIN notifications n USING (tenant_id, notification_id)"
                " WHERE d.tenant_id = %s AND d.channel = 'in_app' AND d.state = 'sent' AND d.recipient = %s"
                " AND n.game_id = %s AND (NOT %s OR d.read_at IS NULL) ORDER BY d.sent_at DESC LIMIT %s",
                (claim.tenant_id, claim.player_id, claim.game_id, unread_only, limit))
            messages: list[dict[str, Any]] = [
                {"id": row[0], "template": row[1], "category": row[2], "title": row[3], "body": row[4],
                 "sent_at": row[5], "read_at": row[6]} for row in await cur.fetchall()]
            cur = await conn.execute(
                "SELECT count(*) FROM notification_deliveries d JOIN notifications n USING (tenant_id, notification_id)"
                " WHERE d.tenant_id = %s AND d.channel = 'in_app' AND d.state = 'sent' AND d.recipient = %s"
                " AND n.game_id = %s AND d.read_at IS NULL", (claim.tenant_id, claim.player_id, claim.game_id))
            unread = await cur.fetchone()
        return json_response({"messages": messages, "unread": unread[0] if unread else 0})

    async def mark_read(self, request: Request) -> Response:
        claim = self._player(request)
        notification_id = path_uuid(request, "notification_id")
        async with store.tenant_transaction(self._pool, claim.tenant_id) as conn:
            cur = await conn.execute(
                "UPDATE notification_deliveries d SET read_at = coalesce(d.read_at, now()) FROM notifications n"
                " WHERE (n.tenant_id, n.notification_id) = (d.tenant_id, d.notification_id) AND n.game_id = %s"
                " AND d.tenant_id = %s AND d.notification_id = %s AND d.channel = 'in_app' AND d.state = 'sent'"
                " AND d.recipient = %s", (claim.game_id, claim.tenant_id, notification_id, claim.player_id))
        if cur.rowcount == 0:
            raise ApiError(404, f"no message {notification_id} in this inbox")
        return Response(status_code=204)

    async def _owner(self, request: Request) -> tuple[uuid.UUID, uuid.UUID, str]:
        """The path's tenant, game and player, for the player's own token or the game's server."""
        if request.headers.get("authorization", "").partition(" ")[2].strip().startswith("gmp_"):
            claim = self._player(request)
            return claim.tenant_id, claim.game_id, claim.player_id
        principal, game_id = await self._guard.tenant_game(request, SEND)
        return principal.tenant_id, game_id, path_player(request)

    async def register(self, request: Request) -> Response:
        tenant, game, player = await self._owner(request)
        kind, address = device_address(await json_body(request))
        async with store.tenant_transaction(self._pool, tenant) as conn:
            created = await store.register_device(conn, tenant, game, player, kind, address)
        return json_response({"kind": kind, "registered": True}, 201 if created else 200)

    async def unregister(self, request: Request) -> Response:
        tenant, game, player = await self._owner(request)
        kind, address = device_address(await json_body(request))
        async with store.tenant_transaction(self._pool, tenant) as conn:
            removed = await store.forget_device(conn, tenant, game, kind, address, player)
        if not removed:
            raise ApiError(404, f"no such {kind} registration for this player")
        return Response(status_code=204)

    def routes(self) -> list[Route]:
        return [
            Route(DEVICES, self.register, methods=["POST"]),
            Route(DEVICES, self.unregister, methods=["DELETE"]),
            Route(INBOX + "/token", self.issue, methods=["POST"]),
            Route(INBOX, self.inbox, methods=["GET"]),
            Route(INBOX + "/{notification_id}/read", self.mark_read, methods=["POST"]),
        ]


def _b64_length(value: Any, size: int) -> bool:
    try:
        return isinstance(value, str) and len(b64decode(value)) == size
    except ValueError:
        return False


def device_address(body: Any) -> tuple[str, str]:
    """`{"kind": "push", "token": ...}` or `{"kind": "web_push", "subscription": {"endpoint", "keys"}}`,
    checked: the kind and the address to keep."""
    if not isinstance(body, dict) or body.get("kind") not in ("push", "web_push"):
        raise ApiError(400, 'send {"kind": "push", "token": ..., "platform": "android|ios"} or {"kind": "web_push",'
                            ' "subscription": {"endpoint": ..., "keys": {"p256dh": ..., "auth": ...}}}')
    if body["kind"] == "push":
        token, platform = body.get("token"), body.get("platform", "android")
        if not isinstance(token, str) or not 1 <= len(token) <= MAX_ADDRESS or not token.isprintable():
            raise ApiError(400, f"token is the device's FCM or APNs token (1-{MAX_ADDRESS} characters)")
        if platform not in ("android", "ios", "web"):
            raise ApiError(400, 'platform is "android" or "web" (FCM) or "ios" (APNs)')
        if platform == "ios":
            if not all(c in "0123456789abcdefABCDEF" for c in token):
                raise ApiError(400, "an APNs device token is hexadecimal")
            return "push", "apns:" + token.lower()
        return "push", token
    subscription = body.get("subscription")
    keys = subscription.get("keys") if isinstance(subscription, dict) else None
    endpoint = subscription.get("endpoint") if isinstance(subscription, dict) else None
    parsed = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if parsed is None or parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise ApiError(400, "subscription.endpoint is the push service's URL from PushManager.subscribe()")
    if not isinstance(keys, dict) or not _b64_length(keys.get("p256dh"), 65) or not _b64_length(keys.get("auth"), 16):
        raise ApiError(400, "subscription.keys holds p256dh (a P-256 public key) and auth (16 bytes), base64url")
    address = msgspec.json.encode({"endpoint": endpoint, "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]}})
    if len(address) > MAX_ADDRESS:
        raise ApiError(400, f"the subscription is longer than {MAX_ADDRESS} bytes")
    return "web_push", address.decode()
