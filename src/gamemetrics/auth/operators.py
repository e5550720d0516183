"""What an operator's token is worth now: the operator's current role and whether they are disabled.

An access token outlives a change an admin makes: it was issued with the role's scopes at its
login. `OperatorStates.check`, given to a service's token check, refuses the token of an operator
who has been disabled or given a role whose scopes no longer cover the token's, within `kept_s`
of the change rather than when the token expires. Clients' tokens name no operator and pass.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from gamemetrics.adapters.memory.memo import LocalMemo
from gamemetrics.auth.tokens import InvalidToken, Principal
from gamemetrics.ports.cache import MISS

SUBJECT = "operator:"
_ADMIN = ("admin", "analytics:read", "players:read", "players:write", "gdpr:erase", "recommendations:read")
ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "platform_admin": _ADMIN,
    "tenant_admin": _ADMIN,
    "analyst": ("analytics:read", "players:read"),
}


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
        if not principal.scopes <= set(ROLE_SCOPES.get(state.role, ())):
            raise InvalidToken(f"this operator's role is now {state.role}; log in again")
