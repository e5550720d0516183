"""Pages that read a game's history and stream: retention, funnels and the live events tail.

Retention and funnels are the analytics API's answers for the operator's token; the tail is the
live feed's latest events of the game, filtered here and refreshed by the browser once a second.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gamemetrics.services.dashboard.funnels import BadFunnel, parse_steps
from gamemetrics.services.dashboard.live import LiveFeed
from gamemetrics.services.dashboard.pages import PREFIX, Page, Pages
from gamemetrics.services.dashboard.periods import BadRange, parse_period
from gamemetrics.services.dashboard.platform_api import PlatformApi
from gamemetrics.services.dashboard.sessions import Session

RETENTION_DAYS = list(range(31))
RETENTION_QUERY = """
query Retention($game: ID!, $from: Date!, $to: Date!, $days: [Int!]!) {
  retention(gameId: $game, cohortFrom: $from, cohortTo: $to, days: $days) {
    cohortDate size days { day value players }
  }
}
"""
FUNNEL_QUERY = """
query Funnel($game: ID!, $steps: [FunnelStepInput!]!, $from: Date!, $to: Date!, $hours: Int!) {
  funnel(gameId: $game, steps: $steps, from: $from, to: $to, windowHours: $hours) {
    step event property equals players conversion
  }
}
"""
DEFAULT_FUNNEL = "session_start\nlevel_start\nlevel_complete\npurchase"


class InsightPages:
    """Retention, funnels and the events tail of a game."""

    def __init__(self, pages: Pages, api: PlatformApi, live: LiveFeed) -> None:
        self._pages = pages
        self._api = api
        self._live = live

    async def retention(self, request: Request, session: Session) -> Response:
        game, games = await self._pages.game_of(request, session)
        today = datetime.now(UTC).date()
        query = dict(request.query_params)
        query.setdefault("range", "30d")
        try:
            preset, period = parse_period(query, today)
        except BadRange as exc:
            raise Page(400, str(exc)) from None
        if period.days > 90:
            raise Page(400, f"the heatmap shows at most 90 cohort days, not {period.days}")
        data = await self._api.graphql(session.token, RETENTION_QUERY, {
            "game": game["id"], "from": period.start.isoformat(), "to": period.end.isoformat(),
            "days": RETENTION_DAYS})
        return self._pages.render("retention.html", session=session, game=game, games=games, preset=preset,
                                  period=period, cohorts=data["retention"] or [], offsets=RETENTION_DAYS)

    async def funnel(self, request: Request, session: Session) -> Response:
        game, games = await self._pages.game_of(request, session)
        params = request.query_params
        text = params.get("steps", DEFAULT_FUNNEL)
        query = dict(params)
        query.setdefault("range", "30d")
        result, error = None, None
        try:
            _, period = parse_period(query, datetime.now(UTC).date())
            hours = int(params.get("hours", "24"))
            if not 1 <= hours <= 24 * 90:
                raise BadFunnel(f"the window is from 1 to {24 * 90} hours")
            steps = parse_steps(text)
        except (BadRange, BadFunnel) as exc:
            error, period, hours = str(exc), None, 24
        except ValueError:
            error, period, hours = "the window is a whole number of hours", None, 24
        if error is None and "steps" in params and period is not None:
            data = await self._api.graphql(session.token, FUNNEL_QUERY, {
                "game": game["id"], "steps": [s.as_input() for s in steps], "from": period.start.isoformat(),
                "to": period.end.isoformat(), "hours": hours})
            result = _with_drop_off(data["funnel"] or [])
        return self._pages.render("funnel.html", 400 if error else 200, session=session, game=game, games=games,
                                  steps=text, hours=hours, range=query["range"], error=error, result=result,
                                  start=params.get("from", ""), end=params.get("to", ""))

    async def events(self, request: Request, session: Session) -> Response:
        game, games = await self._pages.game_of(request, session)
        return self._pages.render("events.html", session=session, game=game, games=games)

    async def events_json(self, request: Request, session: Session) -> Response:
        game, _ = await self._pages.game_of(request, session)
        params = request.query_params
        kind, player = params.get("type") or None, params.get("player") or None
        if (kind and len(kind) > 200) or (player and len(player) > 256):
            raise Page(400, "filters have at most 200 (type) and 256 (player) characters")
        chosen = self._live.tail(uuid.UUID(session.tenant_id), uuid.UUID(game["id"]), event_type=kind,
                                 player_id=player, limit=100)
        return JSONResponse({"events": [{
            "event_id": str(e.event_id), "event_type": e.event_type, "name": e.name, "player_id": e.player_id,
            "timestamp": e.timestamp.isoformat(), "received_at": e.received_at.isoformat(),
            "revenue_usd": None if e.revenue_usd is None else str(e.revenue_usd),
            "platform": e.platform, "country": e.country,
        } for e in chosen]}, headers={"Cache-Control": "no-store"})

    def routes(self) -> list[BaseRoute]:
        on = self._pages.signed_in
        game = f"{PREFIX}/games/{{game_id}}"
        return [
            Route(f"{game}/retention", on(self.retention), methods=["GET"]),
            Route(f"{game}/funnel", on(self.funnel), methods=["GET"]),
            Route(f"{game}/events", on(self.events), methods=["GET"]),
            Route(f"{game}/events/latest", on(self.events_json), methods=["GET"]),
        ]


def _with_drop_off(steps: list[dict[str, object]]) -> list[dict[str, object]]:
    """Each step with the players lost since the step before it."""
    out, before = [], None
    for step in steps:
        players = int(str(step["players"]))
        out.append({**step, "drop_off": None if before is None else before - players})
        before = players
    return out


