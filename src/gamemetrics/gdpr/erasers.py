"""The erasure fan-out's parts: a player-data eraser per holder of player data, and the stores
an erasure waits for.

Each eraser runs in its own consumer group of `gdpr.requests` (`gdpr-<name>`) and confirms the
stores it names; an erasure is complete when none of the stores recorded with its request is
still pending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import msgspec

from gamemetrics.events.gdpr_requests import ErasureRequest


class StoreState(msgspec.Struct, frozen=True, omit_defaults=True):
    """What one store says of an erasure: pending, erased (and how many rows), or expiring (when)."""

    state: str
    rows: int | None = None
    expires_at: str | None = None
    note: str | None = None


PENDING = StoreState("pending")


class PlayerEraser(Protocol):
    """Erases one player from the stores a service holds; each step idempotent, since a request
    can be delivered again."""

    @property
    def name(self) -> str:
        """Names the eraser's consumer group, `gdpr-<name>`."""
        ...

    @property
    def stores(self) -> Sequence[str]:
        """The stores it confirms."""
        ...

    async def erase(self, request: ErasureRequest, player_hash: bytes) -> Mapping[str, StoreState]:
        """Erase the player; the state of each of `stores` afterwards. Raise to be asked again."""
        ...


def group_of(eraser: PlayerEraser) -> str:
    """The consumer group of `gdpr.requests` the eraser reads in."""
    return f"gdpr-{eraser.name}"


def expected_stores(erasers: Iterable[PlayerEraser]) -> tuple[str, ...]:
    """The stores an erasure waits for, given every eraser of the platform; each store has one eraser."""
    owners: dict[str, str] = {}
    names: set[str] = set()
    for eraser in erasers:
        if eraser.name in names:
            raise ValueError(f"two erasers are named {eraser.name!r}: they would share a consumer group")
        names.add(eraser.name)
        for store in eraser.stores:
            if store in owners:
                raise ValueError(f"store {store!r} is confirmed by both {owners[store]!r} and {eraser.name!r}")
            owners[store] = eraser.name
    return tuple(owners)
