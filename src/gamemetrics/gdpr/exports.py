"""The export fan-in's parts: what each holder of player data adds to a player's export.

The users service writes the export (GDPR Art. 15 and 20) in one repeatable-read transaction; a
service that keeps player data in tables of its own names a `PlayerExport` in its registry entry
(`gdpr_export`), and the runtime hands every one to the users service, which calls each in that
transaction and writes what it returns under the service's name. No service imports another.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from psycopg import AsyncConnection


class PlayerExport(Protocol):
    """Reads what one service holds about a player, in the caller's transaction (its snapshot)."""

    async def __call__(self, conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID,
                       player_id: str) -> Mapping[str, Any]:
        """The player's data as JSON-encodable values."""
        ...
