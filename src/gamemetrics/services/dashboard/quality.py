"""The data-quality page: a game's dead letters grouped by reason, their original bytes, and replay."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gamemetrics.services.dashboard.dead_letters import DeadLetterStore, NotReplayable
from gamemetrics.services.dashboard.pages import PREFIX, Page, Pages
from gamemetrics.services.dashboard.sessions import Session

MAX_REPLAY = 500


class QualityPages:
    """Dead letters of a game: every role reads them, managing roles replay them."""

    def __init__(self, pages: Pages, letters: DeadLetterStore) -> None:
        self._pages = pages
        self._letters = letters

    async def overview(self, request: Request, session: Session) -> Response:
        game, games = await self._pages.game_of(request, session)
        tenant, game_id = uuid.UUID(session.tenant_id), uuid.UUID(game["id"])
        reasons = await self._letters.reasons(tenant, game_id)
        chosen = request.query_params.get("reason")
        if chosen is None and reasons:
            chosen = reasons[0].reason
        letters = await self._letters.letters(tenant, game_id, chosen) if chosen else []
        replayed = request.query_params.get("replayed")
        return self._pages.render("quality.html", session=session, game=game, games=games, reasons=reasons,
                                  chosen=chosen, letters=letters, replayed=replayed)

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
            Route(f"{game}/quality/replay", on(self.replay, manage=True), methods=["POST"]),
        ]
