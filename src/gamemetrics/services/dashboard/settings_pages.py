"""The tenant's settings (managing roles only): games, OAuth2 clients and the audit log.

Games and clients are made and revoked through the users service's API with the operator's token,
so they are audited there; the audit page shows the tenant's entries from that API and the state of
the whole chain, walked by the audit log's own verification.
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gamemetrics.audit import AuditLog
from gamemetrics.services.dashboard.pages import PREFIX, Page, Pages
from gamemetrics.services.dashboard.platform_api import PlatformApi
from gamemetrics.services.dashboard.sessions import Session

AUDIT_SHOWN = 100


class SettingsPages:
    """Games, clients and the audit log of the operator's tenant."""

    def __init__(self, pages: Pages, api: PlatformApi, audit: AuditLog, pool: AsyncConnectionPool) -> None:
        self._pages = pages
        self._api = api
        self._audit = audit
        self._pool = pool

    async def show(self, request: Request, session: Session, secret: str | None = None) -> Response:
        games = (await self._api.call(session.token, "GET", "/v1/admin/games"))["games"]
        clients = (await self._api.call(session.token, "GET", "/v1/admin/clients"))["clients"]
        return self._pages.render("settings.html", session=session, game=None, tenant_games=games, clients=clients,
                                  secret=secret)

    async def create_game(self, request: Request, session: Session) -> Response:
        form = await request.form()
        name = str(form.get("name") or "").strip()
        if not 1 <= len(name) <= 200:
            raise Page(400, "a game's name has 1 to 200 characters")
        await self._api.call(session.token, "POST", "/v1/admin/games", {"name": name})
        return RedirectResponse(f"{PREFIX}/settings", 303)

    async def create_client(self, request: Request, session: Session) -> Response:
        form = await request.form()
        name = str(form.get("name") or "client").strip()[:200]
        scopes = str(form.get("scopes") or "").split()
        made = await self._api.call(session.token, "POST", "/v1/admin/clients", {"name": name, "scopes": scopes})
        return await self.show(request, session, secret=f"{made['client_id']} / {made['client_secret']}")

    async def revoke_client(self, request: Request, session: Session) -> Response:
        client_id = request.path_params["client_id"]
        clients = (await self._api.call(session.token, "GET", "/v1/admin/clients"))["clients"]
        if not any(c["client_id"] == client_id for c in clients):
            raise Page(404, f"no client {client_id!r} in this tenant")
        await self._api.call(session.token, "DELETE", f"/v1/admin/clients/{client_id}")
        return RedirectResponse(f"{PREFIX}/settings", 303)

    async def audit(self, request: Request, session: Session) -> Response:
        entries: list[dict[str, object]] = []
        after = 0
        while True:  # the API pages oldest first; the page shows the newest
            page = await self._api.call(session.token, "GET", f"/v1/admin/audit?after={after}&limit=500")
            entries = (entries + page["entries"])[-AUDIT_SHOWN:]
            if len(page["entries"]) < 500:
                break
            after = int(page["next"])
        async with self._pool.connection() as conn:
            verification = await self._audit.verify(conn)
        return self._pages.render("audit.html", session=session, game=None, entries=list(reversed(entries)),
                                  verified=verification.ok, problem=verification.problem)

    def routes(self) -> list[BaseRoute]:
        on = self._pages.signed_in
        return [
            Route(f"{PREFIX}/settings", on(self.show, manage=True), methods=["GET"]),
            Route(f"{PREFIX}/settings/games", on(self.create_game, manage=True), methods=["POST"]),
            Route(f"{PREFIX}/settings/clients", on(self.create_client, manage=True), methods=["POST"]),
            Route(f"{PREFIX}/settings/clients/{{client_id}}/revoke", on(self.revoke_client, manage=True),
                  methods=["POST"]),
            Route(f"{PREFIX}/settings/audit", on(self.audit, manage=True), methods=["GET"]),
        ]
