"""The notifier's HTTP API: templates (with a preview), sending and reading notifications, the
players' preferences, and the one-click unsubscribe link of every email."""

from __future__ import annotations

import msgspec
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

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


def _refusal(exc: Refused) -> ApiError:
    return ApiError(exc.status, exc.reason)


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
        body = await json_body(request)
        if not isinstance(body, dict):
            raise ApiError(400, 'send {"game_id", "player_id", "template", "data", "channels"}')
        unknown = set(body) - _REQUEST_FIELDS
        if unknown:
            raise ApiError(400, f"unknown fields {', '.join(sorted(unknown))}")
        if "tenant_id" in body:
            raise ApiError(400, "the tenant comes from the token")
        try:
            parsed = msgspec.convert({**body, "tenant_id": str(principal.tenant_id),
                                      "idempotency_key": request.headers.get("idempotency-key"),
                                      "requested_by": principal.subject},
                                     NotificationRequest, strict=False)
        except msgspec.ValidationError as exc:
            raise ApiError(400, f"bad request: {exc}") from None
        # No separate check of the game: templates belong to a game of the token's tenant, so a game
        # of another tenant (or none) has no template here, and the request is a 404 naming it.
        try:
            accepted = await self._acceptor.accept(parsed)
        except Refused as exc:
            raise _refusal(exc) from None
        location = f"/v1/notifications/{accepted.notification_id}"
        return json_response({"id": accepted.notification_id, "created": accepted.created}, 202,
                             {"Location": location})

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
            Route(UNSUBSCRIBE + "/{token}", self.unsubscribe_page, methods=["GET"]),
            Route(UNSUBSCRIBE + "/{token}", self.unsubscribe, methods=["POST"]),
            Route("/v1/notifications/{notification_id}", self.status, methods=["GET"]),
            Route(PREFERENCES, self.put_preferences, methods=["PUT"]),
            Route(PREFERENCES, self.get_preferences, methods=["GET"]),
        ]
