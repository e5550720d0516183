"""`GET /v1/operators/me`: the caller's own operator state (role, disabled), read fresh.

The dashboard asks it on each page and live update of a session (at most every few seconds), to
end the session of an operator who was disabled or given another role at once rather than when
it expires. It is served by a guard without the operator-state check, so a disabled operator's
token learns that it is disabled; every other users route refuses that token.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.auth.operators import OperatorStates, operator_of
from gamemetrics.web.errors import ApiError
from gamemetrics.web.principal import Guard
from gamemetrics.web.responses import json_response


class OperatorSelfRoutes:
    def __init__(self, guard: Guard, states: OperatorStates) -> None:
        self._guard = guard
        self._states = states

    async def me(self, request: Request) -> Response:
        principal = await self._guard(request, None)
        operator_id = operator_of(principal)
        if operator_id is None:
            raise ApiError(403, "this token is not an operator's: log in with an operator's email and password")
        state = await self._states.fresh(operator_id)
        if state is None:
            raise ApiError(404, "this operator no longer exists")
        shown: dict[str, Any] = {"operator_id": state.operator_id, "email": state.email, "role": state.role,
                                 "tenant_id": state.tenant_id, "disabled": state.disabled}
        return json_response(shown, headers={"Cache-Control": "no-store"})

    def routes(self) -> list[Route]:
        return [Route("/v1/operators/me", self.me, methods=["GET"])]
