"""The data-quality page: ingest's refusals by reason over a period, a game's dead letters grouped by
reason with their original bytes (both read through the analytics API with the operator's token),
and replay."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gamemetrics.services.dashboard.charts import line_chart
from gamemetrics.services.dashboard.dead_letters import (
    LETTERS_QUERY,
    REASONS_QUERY,
    DeadLetterStore,
    NotReplayable,
    letters_of,
    reasons_of,
)
from gamemetrics.services.dashboard.pages import NO_STORE, PREFIX, Page, Pages
from gamemetrics.services.dashboard.periods import BadRange, Period, parse_period
from gamemetrics.services.dashboard.platform_api import PlatformApi
from gamemetrics.services.dashboard.refusals import REFUSALS_QUERY, by_reason, rows_csv, rows_of
from gamemetrics.services.dashboard.sessions import Session

MAX_REPLAY = 500
LETTERS_SHOWN = 100


class QualityPages:
    """Refusals and dead letters of a game: every role reads them, managing roles replay letters."""

    def __init__(self, pages: Pages, api: PlatformApi, letters: DeadLetterStore) -> None:
        self._pages = pages
        self._api = api
        self._letters = letters

    async def _refusals(self, session: Session, game_id: str, period: Period) -> list[tuple[str, str, int, int]]:
        return rows_of(await self._api.graphql(session.token, REFUSALS_QUERY, {
            "g": game_id, "from": period.start.isoformat(), "to": period.end.isoformat()}))

    async def overview(self, request: Request, session: Session) -> Response:
        game, games = await self._pages.game_of(request, session)
        preset, period = _period(request)
        token, game_id = session.token, game["id"]
        rows, found = await asyncio.gather(self._refusals(session, game_id, period),
                                           self._api.graphql(token, REASONS_QUERY, {"g": game_id}))
        refused = by_reason(rows, period)
        charts = {r.reason: line_chart(r.daily, f"{r.label}: refused requests per day") for r in refused}
        reasons = reasons_of(found)
        chosen = request.query_params.get("reason")
        if chosen is None and reasons:
            chosen = reasons[0].reason
        letters = letters_of(await self._api.graphql(token, LETTERS_QUERY, {
            "g": game_id, "reason": chosen, "limit": LETTERS_SHOWN})) if chosen else []
        replayed = request.query_params.get("replayed")
        return self._pages.render("quality.html", session=session, game=game, games=games, reasons=reasons,
                                  chosen=chosen, letters=letters, replayed=replayed, refused=refused, charts=charts,
                                  preset=preset, period=period, query=request.url.query)

    async def refusals_csv(self, request: Request, session: Session) -> Response:
        game, _ = await self._pages.game_of(request, session)
        _, period = _period(request)
        rows = await self._refusals(session, game["id"], period)
        name = f"ingest-refusals_{period.start}_{period.end}.csv"
        return Response(rows_csv(rows), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"', **NO_STORE})

    async def replay(self, request: Request, session: Session) -> Response:
        game, _ = await self._pages.game_of(request, session)
        form = await request.form()
        try:
            ids = sorted({int(str(v)) for v in form.getlist("letter")})
        except ValueError:
            raise Page(400, "choose letters by their numbers") from None
        if not ids:
            raise Page(400, "choose at least one dead letter to replay")
        if len(ids) > MAX_REPLAY:
            raise Page(400, f"replay at most {MAX_REPLAY} letters at a time")
        try:
            sent = await self._letters.replay(uuid.UUID(session.tenant_id), uuid.UUID(game["id"]), ids,
                                              f"operator:{session.operator_id}")
        except NotReplayable as exc:
            raise Page(400, f"a chosen letter: {exc}") from None
        reason = str(form.get("reason") or "")
        target = f"{PREFIX}/games/{game['id']}/quality?replayed={sent}"
        if reason:
            target += f"&reason={quote(reason)}"
        return RedirectResponse(target, 303)

    def routes(self) -> list[BaseRoute]:
        on = self._pages.signed_in
        game = f"{PREFIX}/games/{{game_id}}"
        return [
            Route(f"{game}/quality", on(self.overview), methods=["GET"]),
            Route(f"{game}/quality/refusals.csv", on(self.refusals_csv), methods=["GET"]),
            Route(f"{game}/quality/replay", on(self.replay, manage=True), methods=["POST"]),
        ]


def _period(request: Request) -> tuple[str, Period]:
    try:
        return parse_period(request.query_params, datetime.now(UTC).date())
    except BadRange as exc:
        raise Page(400, str(exc)) from None
