"""Pages that act on a game: its write keys (create, shown once; revoke) and its players (search,
profile and timeline, GDPR export and erasure with the state of each store).

The actions are calls of the users service's API with the operator's token, so they are refused
there too and written to the audit log there. Roles are checked here first: an analyst sees no
management buttons, and a form posted by hand gets a 403 page.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gamemetrics.services.dashboard.pages import PREFIX, Page, Pages
from gamemetrics.services.dashboard.platform_api import PlatformApi
from gamemetrics.services.dashboard.sessions import Session

TIMELINE_QUERY = """
query Timeline($game: ID!, $player: String!) {
  player(gameId: $game, playerId: $player) { playerId firstSeen lastSeen sessions events lifetimeRevenue
    platform os country appVersion }
  events(gameId: $game, playerId: $player, limit: 100) { eventId eventType name timestamp revenueUsd sessionId }
}
"""


def _player_path(game_id: str, player_id: str) -> str:
    return f"/v1/games/{game_id}/players/{quote(player_id, safe='')}"


class ManagePages:
    """Write keys and players of a game."""

    def __init__(self, pages: Pages, api: PlatformApi) -> None:
        self._pages = pages
        self._api = api

    async def keys(self, request: Request, session: Session, created: str | None = None) -> Response:
        game, games = await self._pages.game_of(request, session)
        keys = [] if not session.manages else \
            (await self._api.call(session.token, "GET", f"/v1/admin/games/{game['id']}/write-keys"))["write_keys"]
        return self._pages.render("keys.html", session=session, game=game, games=games, keys=keys, created=created)

    async def create_key(self, request: Request, session: Session) -> Response:
        game, _ = await self._pages.game_of(request, session)
        form = await request.form()
        environment = str(form.get("environment") or "production").strip()
        if not environment.isidentifier() or len(environment) > 40:
            raise Page(400, "an environment is a name of letters, digits and _ (at most 40)")
        made = await self._api.call(session.token, "POST", f"/v1/admin/games/{game['id']}/write-keys",
                                    {"environment": environment, "allow_import": form.get("allow_import") == "on"})
        return await self.keys(request, session, created=str(made["write_key"]))

    async def revoke_key(self, request: Request, session: Session) -> Response:
        game, _ = await self._pages.game_of(request, session)
        key_id = request.path_params["key_id"]
        owned = (await self._api.call(session.token, "GET", f"/v1/admin/games/{game['id']}/write-keys"))["write_keys"]
        if not any(str(k["key_id"]) == key_id for k in owned):
            raise Page(404, f"no write key {key_id!r} in this game")
        await self._api.call(session.token, "DELETE", f"/v1/admin/write-keys/{key_id}")
        return RedirectResponse(f"{PREFIX}/games/{game['id']}/keys", 303)

    async def players(self, request: Request, session: Session) -> Response:
        game, games = await self._pages.game_of(request, session)
        q = request.query_params.get("q", "").strip()
        if len(q) > 256 or "\x00" in q:
            raise Page(400, "search with at most 256 characters")
        found = (await self._api.call(session.token, "GET",
                                      f"/v1/games/{game['id']}/players?limit=50&q={quote(q)}"))["players"]
        return self._pages.render("players.html", session=session, game=game, games=games, players=found, q=q)

    async def player(self, request: Request, session: Session) -> Response:
        game, games = await self._pages.game_of(request, session)
        player_id = request.path_params["player_id"]
        data = await self._api.graphql(session.token, TIMELINE_QUERY, {"game": game["id"], "player": player_id})
        if data["player"] is None:
            raise Page(404, f"no player {player_id!r} in {game['name']}")
        return self._pages.render("player.html", session=session, game=game, games=games, player=data["player"],
                                  events=data["events"] or [], player_id=player_id)

    async def export(self, request: Request, session: Session) -> Response:
        game, _ = await self._pages.game_of(request, session)
        player_id = request.path_params["player_id"]
        body = await self._api.download(session.token, _player_path(game["id"], player_id) + "/export")
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in player_id)[:80]
        return Response(body, media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="player-{name}.json"',
                                 "Cache-Control": "no-store"})

    async def erase(self, request: Request, session: Session) -> Response:
        game, _ = await self._pages.game_of(request, session)
        player_id = request.path_params["player_id"]
        form = await request.form()
        if form.get("confirm") != player_id:
            raise Page(400, "type the player's id to confirm the erasure")
        asked = await self._api.call(session.token, "DELETE", _player_path(game["id"], player_id))
        return RedirectResponse(f"{PREFIX}/games/{game['id']}/erasures/{asked['erasure_id']}", 303)

    async def erasure(self, request: Request, session: Session) -> Response:
        game, games = await self._pages.game_of(request, session)
        erasure_id = request.path_params["erasure_id"]
        state = await self._api.call(session.token, "GET", f"/v1/erasures/{quote(erasure_id, safe='')}")
        if str(state["game_id"]) != game["id"]:
            raise Page(404, f"no erasure {erasure_id!r} in this game")
        return self._pages.render("erasure.html", session=session, game=game, games=games, erasure=state)

    def routes(self) -> list[BaseRoute]:
        on = self._pages.signed_in
        game = f"{PREFIX}/games/{{game_id}}"
        player = f"{game}/players/{{player_id}}"
        return [
            Route(f"{game}/keys", on(self.keys, manage=True), methods=["GET"]),
            Route(f"{game}/keys", on(self.create_key, manage=True), methods=["POST"]),
            Route(f"{game}/keys/{{key_id}}/revoke", on(self.revoke_key, manage=True), methods=["POST"]),
            Route(f"{game}/players", on(self.players), methods=["GET"]),
            Route(player, on(self.player), methods=["GET"]),
            Route(f"{player}/export", on(self.export), methods=["GET"]),
            Route(f"{player}/erase", on(self.erase, manage=True), methods=["POST"]),
            Route(f"{game}/erasures/{{erasure_id}}", on(self.erasure, manage=True), methods=["GET"]),
        ]
