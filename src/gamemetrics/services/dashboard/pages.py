"""The dashboard's pages and actions: login, logout, the games, a game's overview and its live figures.

Every handler finds the session first: without one a page goes to the login form and an API-style
request (JSON) gets 401. A session also asks the users service, at most every few seconds, whether
its operator is still enabled and still has the role of its login; one who is not is logged out at
once, every open page of theirs on its next request or live update, and the login form says why.
Games are those of the operator's token, so a game id of another tenant is a 404 page, never
someone else's numbers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gamemetrics.adapters.memory.memo import LocalMemo
from gamemetrics.ports.cache import MISS
from gamemetrics.services.dashboard import tiles
from gamemetrics.services.dashboard.charts import line_chart
from gamemetrics.services.dashboard.live import LiveFeed
from gamemetrics.services.dashboard.periods import BadRange, Period, parse_period
from gamemetrics.services.dashboard.platform_api import PlatformApi, Refused
from gamemetrics.services.dashboard.sessions import COOKIE, Session, Sessions, csrf_ok

PREFIX = "/dashboard"
GAMES_KEPT_S = 5.0
GAMES_QUERY = "query { games { id name eventsStored eventsDeadLettered } }"
log = structlog.get_logger("dashboard")
Handler = Callable[[Request, Session], Awaitable[Response]]
# Why a session was ended before its time, as the login form and a refused live update say it.
ENDED = {
    "disabled": "You were logged out: an admin of your tenant disabled your account.",
    "role": "You were logged out: your role was changed. Log in again to continue with the new role.",
    "refused": "You were logged out: the platform no longer accepts this session. Log in again.",
}
SIGNED_OUT = "log in to the dashboard first"


class Page(Exception):
    """Answer with a message page of `status` instead of the page asked for."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Pages:
    """The routes of the dashboard over its sessions, the platform's APIs and the live feed."""

    def __init__(self, sessions: Sessions, api: PlatformApi, live: LiveFeed, *, lifetime_s: float,
                 secure_cookie: bool | None, operator_check_s: float = 2.0) -> None:
        self._sessions = sessions
        self._api = api
        self._live = live
        self._lifetime_s = lifetime_s
        self._secure = secure_cookie
        self._known: LocalMemo[str, list[dict[str, Any]]] = LocalMemo(10_000, ttl_seconds=GAMES_KEPT_S)
        # Tokens whose operator was found enabled, with the role of their login, a moment ago.
        self._current: LocalMemo[str, bool] = LocalMemo(10_000, ttl_seconds=operator_check_s)
        self._env = Environment(loader=PackageLoader("gamemetrics.services.dashboard", "templates"),
                                autoescape=select_autoescape(["html"]))

    # ------------------------------------------------------------------ plumbing

    def render(self, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        html = self._env.get_template(name).render(prefix=PREFIX, **context)
        return HTMLResponse(html, status_code=code, headers=NO_STORE)

    def signed_in(self, handler: Handler, *, manage: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """`handler` behind the session (and the CSRF token on a POST; a managing role when `manage`)."""
        async def endpoint(request: Request) -> Response:
            sid = request.cookies.get(COOKIE)
            session = await self._sessions.find(sid)
            reason = None if session is None else await self._ended_by_platform(session)
            if session is None or reason is not None:
                if session is not None and sid and reason is not None:
                    await self._sessions.end_for(sid, session, reason)
                    log.info("session ended", operator=session.operator_id, reason=reason)
                if _wants_json(request):
                    reason = reason or await self._sessions.ended(sid)
                    return JSONResponse({"error": ENDED.get(reason or "", SIGNED_OUT)}, 401, headers=NO_STORE)
                return RedirectResponse(f"{PREFIX}/login", 303)
            try:
                if manage and not session.manages:
                    raise Page(403, f"the {session.role} role cannot manage the tenant")
                if request.method == "POST":
                    form = await _form(request)
                    if not csrf_ok(session, form.get("csrf")):
                        raise Page(403, "this form has expired or was not sent from the dashboard; reload the page")
                return await handler(request, session)
            except Page as page:
                return self._message(page, session, request)
            except httpx.HTTPError as exc:
                log.warning("platform API unreachable", path=request.url.path, error=str(exc))
                return self._message(Page(502, "the platform's API cannot be reached; retry in a moment"),
                                     session, request)
            except Refused as refused:
                if refused.status == 401:
                    return RedirectResponse(f"{PREFIX}/login", 303)
                status = refused.status if refused.status in (400, 403, 404, 409, 429) else 502
                return self._message(Page(status, refused.message), session, request)
        return endpoint

    async def _ended_by_platform(self, session: Session) -> str | None:
        """Why the session must end now (its operator disabled, gone, or given another role), or None.

        Asked of the users service at most once per token and `operator_check_s`; when that service
        cannot answer, the session goes on (every other API call of it fails meanwhile) and is asked
        again on its next request."""
        if self._current.get(session.token) is True:
            return None
        try:
            operator = await self._api.operator(session.token)
        except Refused as refused:
            if refused.status in (401, 404):
                return "refused" if refused.status == 401 else "disabled"
            log.warning("operator state unknown", operator=session.operator_id, status=refused.status)
            return None
        except httpx.HTTPError as exc:
            log.warning("operator state unknown", operator=session.operator_id, error=str(exc))
            return None
        if operator.get("disabled"):
            return "disabled"
        if operator.get("role") != session.role:
            return "role"
        self._current.put(session.token, True)
        return None

    def _message(self, page: Page, session: Session | None, request: Request) -> Response:
        if _wants_json(request):
            return JSONResponse({"error": page.message}, page.status, headers=NO_STORE)
        return self.render("message.html", page.status, session=session, status=page.status, message=page.message)

    async def _games(self, session: Session) -> list[dict[str, Any]]:
        games: list[dict[str, Any]] = (await self._api.graphql(session.token, GAMES_QUERY, {}))["games"] or []
        self._known.put(session.token, games)
        return games

    async def game_of(self, request: Request, session: Session) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The game of the path when it is one of the operator's, and all of them; else a 404 page.

        The operator's games are kept for a few seconds, so an open overview's live panel, which asks
        every second, costs no GraphQL request each time; a game not among them is asked for again
        (a game made a moment ago is found at once). Games are never taken from a tenant."""
        wanted = request.path_params["game_id"]
        kept = self._known.get(session.token)
        games = await self._games(session) if kept is MISS else kept
        found = next((g for g in games if g["id"] == wanted), None)
        if found is None and kept is not MISS:
            games = await self._games(session)
            found = next((g for g in games if g["id"] == wanted), None)
        if found is None:
            raise Page(404, f"no game {wanted!r} here")
        return found, games

    # ------------------------------------------------------------------ login and logout

    async def login_form(self, request: Request) -> Response:
        sid = request.cookies.get(COOKIE)
        if await self._sessions.find(sid) is not None:
            return RedirectResponse(f"{PREFIX}/", 303)
        notice = ENDED.get(await self._sessions.ended(sid) or "")
        return self.render("login.html", session=None, error=None, email="", notice=notice)

    async def login(self, request: Request) -> Response:
        try:
            form = await _form(request)
        except Page as page:
            return self._message(page, None, request)
        email, password = str(form.get("email") or "").strip(), str(form.get("password") or "")
        tenant = str(form.get("tenant_id") or "").strip() or None
        if not email or not password:
            return self.render("login.html", 400, session=None, error="enter your email and password", email=email)
        address = request.client.host if request.client else "unknown"
        try:
            login = await self._api.login(email, password, tenant, address)
        except httpx.HTTPError:
            return self.render("login.html", 502, session=None, email=email,
                               error="the platform's API cannot be reached; retry in a moment")
        except Refused as refused:
            message = {401: "wrong email or password"}.get(refused.status, refused.message)
            return self.render("login.html", refused.status if refused.status < 500 else 502, session=None,
                               error=message, email=email)
        sid, _ = await self._sessions.start(
            login.token, login.expires_in, operator_id=login.operator_id, email=login.email, role=login.role,
            tenant_id=login.tenant_id, lifetime_s=self._lifetime_s)
        response = RedirectResponse(f"{PREFIX}/", 303)
        response.set_cookie(COOKIE, sid, max_age=int(min(self._lifetime_s, login.expires_in)), path=PREFIX,
                            httponly=True, samesite="strict", secure=self._secure_for(request))
        return response

    async def logout(self, request: Request, session: Session) -> Response:
        await self._sessions.end(request.cookies.get(COOKIE))
        response = RedirectResponse(f"{PREFIX}/login", 303)
        response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict",
                               secure=self._secure_for(request))
        return response

    def _secure_for(self, request: Request) -> bool:
        return self._secure if self._secure is not None else request.url.scheme == "https"

    # ------------------------------------------------------------------ pages

    async def home(self, request: Request, session: Session) -> Response:
        games = await self._games(session)
        if len(games) == 1:
            return RedirectResponse(f"{PREFIX}/games/{games[0]['id']}", 303)
        return self.render("games.html", session=session, games=games)

    async def overview(self, request: Request, session: Session) -> Response:
        game, games = await self.game_of(request, session)
        try:
            preset, period = parse_period(request.query_params, datetime.now(UTC).date())
        except BadRange as exc:
            raise Page(400, str(exc)) from None
        now, before = await asyncio.gather(self._overview(session, game["id"], period),
                                           self._overview(session, game["id"], period.previous()))
        current, previous = tiles.figures(now), tiles.figures(before)
        points = tiles.series(now)
        cards = [{
            "key": m.key, "label": m.label, "help": m.help, "value": tiles.shown(current[m.key], m.unit),
            "raw": current[m.key], "change": tiles.shown_change(tiles.change(current[m.key], previous[m.key])),
            "chart": line_chart(points[m.key], m.label),
        } for m in tiles.METRICS]
        return self.render("overview.html", session=session, game=game, games=games, cards=cards, preset=preset,
                           period=period, query=request.url.query)

    async def _overview(self, session: Session, game_id: str, period: Period) -> dict[str, Any]:
        return await self._api.graphql(session.token, tiles.OVERVIEW_QUERY,
                                       {"game": game_id, "from": period.start.isoformat(),
                                        "to": period.end.isoformat()})

    async def overview_csv(self, request: Request, session: Session) -> Response:
        game, _ = await self.game_of(request, session)
        metric = request.path_params["metric"]
        if metric not in {m.key for m in tiles.METRICS}:
            raise Page(404, f"no chart {metric!r}")
        try:
            _, period = parse_period(request.query_params, datetime.now(UTC).date())
        except BadRange as exc:
            raise Page(400, str(exc)) from None
        points = tiles.series(await self._overview(session, game["id"], period))[metric]
        name = f"{metric}_{period.start}_{period.end}.csv"
        return Response(tiles.rows_csv(points, metric), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"', **NO_STORE})

    async def live(self, request: Request, session: Session) -> Response:
        game, _ = await self.game_of(request, session)
        figures = self._live.figures(uuid.UUID(session.tenant_id), uuid.UUID(game["id"]))
        return JSONResponse({
            "at": figures.at.isoformat(), "last_minute": figures.last_minute,
            "per_minute": [[m.isoformat(), n] for m, n in figures.per_minute],
        }, headers=NO_STORE)

    async def live_csv(self, request: Request, session: Session) -> Response:
        game, _ = await self.game_of(request, session)
        figures = self._live.figures(uuid.UUID(session.tenant_id), uuid.UUID(game["id"]))
        lines = ["minute,events"] + [f"{minute.isoformat()},{n}" for minute, n in figures.per_minute]
        return Response("\r\n".join(lines) + "\r\n", media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="events-per-minute.csv"', **NO_STORE})

    async def root(self, request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/", 307)

    def routes(self, static_dir: str) -> list[BaseRoute]:
        return [
            Route(PREFIX, self.root, methods=["GET"]),
            Route(f"{PREFIX}/", self.signed_in(self.home), methods=["GET"]),
            Route(f"{PREFIX}/login", self.login_form, methods=["GET"]),
            Route(f"{PREFIX}/login", self.login, methods=["POST"]),
            Route(f"{PREFIX}/logout", self.signed_in(self.logout), methods=["POST"]),
            Route(f"{PREFIX}/games/{{game_id}}", self.signed_in(self.overview), methods=["GET"]),
            Route(f"{PREFIX}/games/{{game_id}}/live", self.signed_in(self.live), methods=["GET"]),
            Route(f"{PREFIX}/games/{{game_id}}/live.csv", self.signed_in(self.live_csv), methods=["GET"]),
            Route(f"{PREFIX}/games/{{game_id}}/charts/{{metric}}.csv", self.signed_in(self.overview_csv),
                  methods=["GET"]),
            Mount(f"{PREFIX}/static", StaticFiles(directory=static_dir), name="dashboard-static"),
        ]

    def not_found(self, request: Request, exc: Exception) -> Response:
        """Unknown dashboard paths get the message page, not a bare 404."""
        return self.render("message.html", 404, session=None, status=404, message="no such page")


NO_STORE = {"Cache-Control": "no-store"}


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or request.url.path.endswith(("/live", "/latest"))


async def _form(request: Request) -> FormData:
    try:
        return await request.form(max_fields=20, max_part_size=8192)
    except (MultiPartException, ValueError) as exc:  # the sender's mistake: answer it, keep details out
        log.info("unreadable login form", error=str(exc))
        raise Page(400, "the form could not be read") from None
