"""What the platform's database holds about one player, found and deleted store by store.

Events, rollups and the profile carry the player id in a column. Dead letters carry it inside the
original bytes, so they are decoded: a dead letter belongs to the player when its event names them.
Aggregates that count players anonymously (minute_stats, event_days, game_counters) are kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from psycopg import AsyncConnection

_PAGE = 1000


def names_player(game_id: uuid.UUID, player_id: str) -> Callable[[bytes], bool]:
    """Whether a raw envelope (as the raw topic and dead letters hold it) is an event of this player."""
    wanted_game = str(game_id)

    def match(value: bytes) -> bool:
        try:
            envelope = msgspec.json.decode(value)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            return False
        if not isinstance(envelope, dict) or str(envelope.get("game_id")) != wanted_game:
            return False
        event = envelope.get("event")
        return isinstance(event, dict) and event.get("player_id") == player_id

    return match


async def dead_letters_of(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID,
                          player_id: str) -> list[tuple[int, Any, str, bytes]]:
    """(id, created_at, reason, payload) of the game's dead letters that are events of the player."""
    match = names_player(game_id, player_id)
    found: list[tuple[int, Any, str, bytes]] = []
    after = 0
    while True:
        cur = await conn.execute(
            "SELECT id, created_at, reason, payload FROM dead_letters WHERE tenant_id = %s AND game_id = %s"
            " AND id > %s ORDER BY id LIMIT %s", (tenant_id, game_id, after, _PAGE),
        )
        rows = await cur.fetchall()
        found.extend((i, at, reason, bytes(payload)) for i, at, reason, payload in rows if match(bytes(payload)))
        if len(rows) < _PAGE:
            return found
        after = rows[-1][0]


async def delete_player(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID,
                        player_id: str) -> dict[str, int]:
    """Delete the player from every table of the store (in the caller's transaction); rows per store."""
    key = (tenant_id, game_id, player_id)
    cur = await conn.execute(
        "DELETE FROM events WHERE tenant_id = %s AND game_id = %s AND player_id = %s RETURNING event_id", key
    )
    event_ids = [row[0] for row in await cur.fetchall()]
    # Their ids too: with the tombstone in place no replay can bring the events back.
    await conn.execute("DELETE FROM event_ids WHERE tenant_id = %s AND event_id = ANY(%s)", (tenant_id, event_ids))
    rollups = 0
    for table in ("player_days", "sessions"):
        cur = await conn.execute(
            f"DELETE FROM {table} WHERE tenant_id = %s AND game_id = %s AND player_id = %s", key  # noqa: S608
        )
        rollups += cur.rowcount
    cur = await conn.execute("DELETE FROM players WHERE tenant_id = %s AND game_id = %s AND player_id = %s", key)
    profile = cur.rowcount
    letters = [row[0] for row in await dead_letters_of(conn, *key)]
    if letters:
        await conn.execute("DELETE FROM dead_letters WHERE id = ANY(%s)", (letters,))
    if event_ids or letters:  # the game's counters keep agreeing with the rows it holds
        await conn.execute(
            "UPDATE game_counters SET events_stored = events_stored - %s,"
            " events_dead_lettered = events_dead_lettered - %s WHERE tenant_id = %s AND game_id = %s",
            (len(event_ids), len(letters), tenant_id, game_id),
        )
    return {"events": len(event_ids), "rollups": rollups, "profile": profile, "dead_letters": len(letters)}
