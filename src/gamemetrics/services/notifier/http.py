"""The notifier's HTTP API: templates (with a preview), sending and reading notifications, the
players' preferences, and the one-click unsubscribe link of every email."""

from __future__ import annotations

from typing import Any

import msgspec
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gamemetrics.auth.tokens import Principal
from gamemetrics.events.notification_requests import NotificationRequest
from gamemetrics.services.notifier import store
from gamemetrics.services.notifier.accept import Acceptor, Refused
from gamemetrics.services.notifier.preferences import PreferencesInvalid, parse_preferences
from gamemetrics.services.notifier.templates import (
    TemplateInvalid,
    parse_template,
    render,
    sample_context,
    template_json,
)
from gamemetrics.services.notifier.unsubscribe import PATH as UNSUBSCRIBE
from gamemetrics.services.notifier.unsubscribe import BadLink, LinkSigner, Unsubscription
from gamemetrics.web.errors import ApiError
from gamemetrics.web.principal import Guard
from gamemetrics.web.requests import json_body, path_player, path_uuid
from gamemetrics.web.responses import json_response

SEND = "notifications:send"
TEMPLATES = "/v1/games/{game_id}/notification-templates"
PREFERENCES = "/v1/games/{game_id}/players/{player_id}/notification-preferences"
_REQUEST_FIELDS = {"game_id", "player_id", "template", "data", "channels", "send_at", "send_until"}
BULK_MAX = 100
"""Notifications in one bulk send, as many as Novu's bulk trigger takes."""
BULK_MAX_BYTES = 1024 * 1024


def _refusal(exc: Refused) -> ApiError:
    return ApiError(exc.status, exc.reason)


def _notification_request(body: Any, principal: Principal, key: str | None) -> NotificationRequest:
    """The request a send's body asks (the tenant from the token), or a 400 that says what is wrong."""
    if not isinstance(body, dict):
        raise ApiError(400, 'send {"game_id", "player_id", "template", "data", "channels"}')
    if "tenant_id" in body:
        raise ApiError(400, "the tenant comes from the token")
    unknown = set(body) - _REQUEST_FIELDS
    if unknown:
        raise ApiError(400, f"unknown fields {', '.join(sorted(unknown))}")
    try:
        return msgspec.convert({**body, "tenant_id": str(principal.tenant_id), "idempotency_key": key,
                                "requested_by": principal.subject}, NotificationRequest, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError(400, f"bad request: {exc}") from None


class NotifierRoutes:
    def __init__(self, pool: AsyncConnectionPool, guard: Guard, acceptor: Acceptor, links: LinkSigner) -> None:
        self._pool = pool
        self._guard = guard
        self._acceptor = acceptor
        self._links = links

    async def put_template(self, request: Request) -> Response:
        principal, game_id = await self._guard.tenant_game(request, SEND)
        name = request.path_params["name"]
        try:
            template = parse_template(name, await json_body(request, max_bytes=256 * 1024))
        except TemplateInvalid as exc:
            raise ApiError(422, str(exc)) from None
        async with store.tenant_transaction(self._pool, principal.tenant_id) as conn:
            created = await store.save_template(conn, principal.tenant_id, game_id, template)
        return json_response(template_json(template), 201 if created else 200)

    async def get_template(self, request: Request) -> Response:
        principal, game_id = await self._guard.tenant_game(request, SEND)
        async with store.tenant_transaction(self._pool, principal.tenant_id) as conn:
            template = await store.load_template(conn, principal.tenant_id, game_id, request.path_params["name"])
        if template is None:
            raise ApiError(404, f"no template {request.path_params['name']!r} in this game")
        return json_response(template_json(template))

    async def delete_template(self, request: Request) -> Response:
        principal, game_id = await self._guard.tenant_game(request, SEND)
        async with store.tenant_transaction(self._pool, principal.tenant_id) as conn:
            if not await store.delete_template(conn, principal.tenant_id, game_id, request.path_params["name"]):
                raise ApiError(404, f"no template {request.path_params['name']!r} in this game")
        return Response(status_code=204)

    async def preview(self, request: Request) -> Response:
        """Every channel of the saved template rendered with `data` (default: its sample) in `locale`."""
        principal, game_id = await self._guard.tenant_game(request, SEND)
        body = await json_body(request) if request.headers.get("content-length", "0") != "0" else {}
        if not isinstance(body, dict) or not isinstance(body.get("data", {}), dict):
            raise ApiError(400, 'send {"data": {...}, "locale": "fi"} (both optional)')
        locale = body.get("locale")
        if locale is not None and not isinstance(locale, str):
            raise ApiError(400, "locale is a name such as fi or pt-BR")
        async with store.tenant_transaction(self._pool, principal.tenant_id) as conn:
            template = await store.load_template(conn, principal.tenant_id, game_id, request.path_params["name"])
        if template is None:
            raise ApiError(404, f"no template {request.path_params['name']!r} in this game")
        context = sample_context({**template.sample, **body.get("data", {})})
        try:
            rendered = {channel: render(template, channel, locale, context) for channel in template.channels}
        except TemplateInvalid as exc:
            raise ApiError(422, str(exc)) from None
        return json_response({channel: {"subject": r.subject, "body": r.body} if channel == "email"
                              else {"body": r.body} if channel == "sms" else {"title": r.subject, "body": r.body}
                              for channel, r in rendered.items()})

    async def send(self, request: Request) -> Response:
        principal = await self._guard(request, SEND)
        parsed = _notification_request(await json_body(request), principal, request.headers.get("idempotency-key"))
        # No separate check of the game: templates belong to a game of the token's tenant, so a game
        # of another tenant (or none) has no template here, and the request is a 404 naming it.
        try:
            accepted = await self._acceptor.accept(parsed)
        except Refused as exc:
            raise _refusal(exc) from None
        location = f"/v1/notifications/{accepted.notification_id}"
        return json_response({"id": accepted.notification_id, "created": accepted.created}, 202,
                             {"Location": location})

    async def send_bulk(self, request: Request) -> Response:
        """Up to BULK_MAX notifications in one request, each with its own idempotency key; each is
        answered on its own (202 with its id, or the 4xx it would have had alone), in order."""
        principal = await self._guard(request, SEND)
        if request.headers.get("idempotency-key") is not None:
            raise ApiError(400, "a bulk send has no Idempotency-Key header: give each notification its own"
                                " idempotency_key")
        body = await json_body(request, max_bytes=BULK_MAX_BYTES)
        items = body.get("notifications") if isinstance(body, dict) and set(body) == {"notifications"} else None
        if not isinstance(items, list) or not items:
            raise ApiError(400, 'send {"notifications": [{"game_id", "player_id", "template", "data", "channels",'
                                ' "idempotency_key"}, ...]}')
        if len(items) > BULK_MAX:
            raise ApiError(413, f"a bulk send has at most {BULK_MAX} notifications; this one has {len(items)}")
        results: list[dict[str, Any] | None] = [None] * len(items)
        asked: list[tuple[int, NotificationRequest]] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                results[index] = {"status": 400, "error": "each notification is an object"}
                continue
            fields = dict(item)
            key = fields.pop("idempotency_key", None)
            try:
                if key is not None and not isinstance(key, str):
                    raise ApiError(400, "idempotency_key is a string")
                asked.append((index, _notification_request(fields, principal, key)))
            except ApiError as exc:
                results[index] = {"status": exc.status, "error": exc.message}
        answers = await self._acceptor.accept_many([parsed for _, parsed in asked])
        for (index, _), answer in zip(asked, answers, strict=True):
            results[index] = {"status": answer.status, "error": answer.reason} if isinstance(answer, Refused) \
                else {"status": 202, "id": answer.notification_id, "created": answer.created}
        taken = sum(1 for r in results if r is not None and r["status"] == 202)
        return json_response({"accepted": taken, "refused": len(items) - taken, "results": results})

    async def status(self, request: Request) -> Response:
        principal = await self._guard(request, SEND)
        notification_id = path_uuid(request, "notification_id")
        async with store.tenant_transaction(self._pool, principal.tenant_id) as conn:
            found = await store.notification_status(conn, principal.tenant_id, notification_id)
        if found is None:
            raise ApiError(404, f"no notification {notification_id} in this tenant")
        return json_response(found)

    async def put_preferences(self, request: Request) -> Response:
        principal, game_id = await self._guard.tenant_game(request, SEND)
        player_id = path_player(request)
        try:
            preferences = parse_preferences(await json_body(request))
        except PreferencesInvalid as exc:
            raise ApiError(400, str(exc)) from None
        async with store.tenant_transaction(self._pool, principal.tenant_id) as conn:
            if await store.player_traits(conn, principal.tenant_id, game_id, player_id) is None:
                raise ApiError(404, f"no player {player_id!r} in this game")
            await store.set_preferences(conn, principal.tenant_id, game_id, player_id, preferences)
        return json_response(preferences.json())

    async def get_preferences(self, request: Request) -> Response:
        principal, game_id = await self._guard.tenant_game(request, SEND)
        player_id = path_player(request)
        async with store.tenant_transaction(self._pool, principal.tenant_id) as conn:
            found = await store.load_preferences(conn, principal.tenant_id, game_id, player_id)
        return json_response(found.json())

    async def unsubscribe_page(self, request: Request) -> Response:
        """A mail client or a person opening the link: a button that posts the one-click form."""
        self._who(request)
        return HTMLResponse('<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
                            '<button>Unsubscribe</button></form>')

    async def unsubscribe(self, request: Request) -> Response:
        """RFC 8058's one-click POST: the link's signature is the credential; opts the player out of
        the category's email."""
        who = self._who(request)
        async with store.tenant_transaction(self._pool, who.tenant_id) as conn:
            await store.opt_out(conn, who.tenant_id, who.game_id, who.player_id, who.category, "email")
        return json_response({"unsubscribed": {"category": who.category, "channel": "email"}})

    def _who(self, request: Request) -> Unsubscription:
        try:
            return self._links.check(request.path_params["token"])
        except BadLink as exc:
            raise ApiError(404, str(exc)) from None

    def routes(self) -> list[Route]:
        return [
            Route(TEMPLATES + "/{name}", self.put_template, methods=["PUT"]),
            Route(TEMPLATES + "/{name}", self.get_template, methods=["GET"]),
            Route(TEMPLATES + "/{name}", self.delete_template, methods=["DELETE"]),
            Route(TEMPLATES + "/{name}/preview", self.preview, methods=["POST"]),
            Route("/v1/notifications", self.send, methods=["POST"]),
            Route("/v1/notifications/bulk", self.send_bulk, methods=["POST"]),
            Route(UNSUBSCRIBE + "/{token}", self.unsubscribe_page, methods=["GET"]),
            Route(UNSUBSCRIBE + "/{token}", self.unsubscribe, methods=["POST"]),
            Route("/v1/notifications/{notification_id}", self.status, methods=["GET"]),
            Route(PREFERENCES, self.put_preferences, methods=["PUT"]),
            Route(PREFERENCES, self.get_preferences, methods=["GET"]),
        ]
