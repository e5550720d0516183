"""What an operator's token is worth now: the operator's current role and whether they are disabled.

An access token outlives a change an admin makes: it was issued with the role's scopes of its
login. `OperatorStates.check` refuses, on every users route, the token of an operator who has been
disabled or given a role whose scopes no longer cover the token's; `GET /v1/operators/me` answers
an operator's current state, which the dashboard asks on each page and live update to end a
session at once rather than when it expires.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gamemetrics.adapters.memory.memo import LocalMemo
from gamemetrics.auth.tokens import InvalidToken, Principal
from gamemetrics.ports.cache import MISS
from gamemetrics.services.users.operators import ROLES
from gamemetrics.web.errors import ApiError
from gamemetrics.web.principal import Guard
from gamemetrics.web.responses import json_response

SUBJECT = "operator:"


@dataclass(frozen=True, slots=True)
class OperatorState:
    """An operator as the operators table has them now."""

    operator_id: uuid.UUID
    email: str
    role: str
    tenant_id: uuid.UUID | None
    disabled: bool


def operator_of(principal: Principal) -> uuid.UUID | None:
    """The operator a token was issued to, or None for a client's token."""
    if not principal.subject.startswith(SUBJECT):
        return None
    try:
        return uuid.UUID(principal.subject.removeprefix(SUBJECT))
    except ValueError:
        return None


class OperatorStates:
    """Operators' current state, each read at most once per `kept_s` seconds in this process."""

    def __init__(self, pool: AsyncConnectionPool, *, kept_s: float) -> None:
        self._pool = pool
        self._kept: LocalMemo[uuid.UUID, OperatorState | None] = LocalMemo(10_000, ttl_seconds=kept_s)

    async def fresh(self, operator_id: uuid.UUID) -> OperatorState | None:
        """The operator as stored now (None when there is no such operator)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT operator_id, email, role, tenant_id, disabled_at IS NOT NULL FROM operators"
                " WHERE operator_id = %s", (operator_id,))
            row = await cur.fetchone()
        state = OperatorState(*row) if row else None
        self._kept.put(operator_id, state)
        return state

    async def state(self, operator_id: uuid.UUID) -> OperatorState | None:
        kept = self._kept.get(operator_id)
        return await self.fresh(operator_id) if kept is MISS else kept

    async def check(self, principal: Principal) -> None:
        """InvalidToken for the token of an operator who is gone, disabled, or no longer has its scopes."""
        operator_id = operator_of(principal)
        if operator_id is None:
            return
        state = await self.state(operator_id)
        if state is None or state.disabled:
            raise InvalidToken("this operator has been disabled; ask an admin of the tenant")
        if not principal.scopes <= set(ROLES.get(state.role, ())):
            raise InvalidToken(f"this operator's role is now {state.role}; log in again")


class OperatorSelfRoutes:
    """`GET /v1/operators/me`: the caller's own operator state, read fresh."""

    def __init__(self, guard: Guard, states: OperatorStates) -> None:
        self._guard = guard  # a guard without the state check: a disabled operator learns they are
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
