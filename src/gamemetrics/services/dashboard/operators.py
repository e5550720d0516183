"""The tenant's operators (managing roles only): the list, invitations, roles, disabling and enabling.

Each action is a call of the users service's `/v1/admin/operators` with the operator's token, so the
tenant comes from that token, the change is audited there, and an operator of another tenant is a
404 there whatever id the URL names.
"""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gamemetrics.services.dashboard.pages import PREFIX, Page, Pages
from gamemetrics.services.dashboard.platform_api import PlatformApi
from gamemetrics.services.dashboard.sessions import Session

ROLES = ("analyst", "tenant_admin")
API = "/v1/admin/operators"


class OperatorPages:
    """The operators page and its forms."""

    def __init__(self, pages: Pages, api: PlatformApi) -> None:
        self._pages = pages
        self._api = api

    async def show(self, request: Request, session: Session, invited: dict[str, str] | None = None) -> Response:
        listed = (await self._api.call(session.token, "GET", API))["operators"]
        return self._pages.render("operators.html", session=session, game=None, operators=listed, roles=ROLES,
                                  invited=invited)

    async def invite(self, request: Request, session: Session) -> Response:
        form = await request.form()
        email, role = str(form.get("email") or "").strip(), str(form.get("role") or "")
        if "@" not in email[1:-1] or len(email) > 320:
            raise Page(400, "an invitation needs the operator's email address")
        if role not in ROLES:
            raise Page(400, f"choose a role: {' or '.join(ROLES)}")
        made = await self._api.call(session.token, "POST", API, {"email": email, "role": role})
        return await self.show(request, session, invited={"email": str(made["email"]),
                                                          "password": str(made["password"])})

    async def change(self, request: Request, session: Session) -> Response:
        try:
            operator_id = uuid.UUID(request.path_params["operator_id"])
        except ValueError:
            raise Page(404, "no such operator") from None
        form = await request.form()
        action = str(form.get("action") or "")
        if action == "role":
            role = str(form.get("role") or "")
            if role not in ROLES:
                raise Page(400, f"choose a role: {' or '.join(ROLES)}")
            change: dict[str, object] = {"role": role}
        elif action in ("disable", "enable"):
            change = {"disabled": action == "disable"}
        else:
            raise Page(400, "change the role, or disable or enable the operator")
        await self._api.call(session.token, "PATCH", f"{API}/{operator_id}", change)
        return RedirectResponse(f"{PREFIX}/settings/operators", 303)

    def routes(self) -> list[BaseRoute]:
        on = self._pages.signed_in
        return [
            Route(f"{PREFIX}/settings/operators", on(self.show, manage=True), methods=["GET"]),
            Route(f"{PREFIX}/settings/operators", on(self.invite, manage=True), methods=["POST"]),
            Route(f"{PREFIX}/settings/operators/{{operator_id}}", on(self.change, manage=True), methods=["POST"]),
        ]
