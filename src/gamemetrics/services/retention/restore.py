"""Restore: archived days back into the store, once per event id, without erased players' rows.

The rollups were never removed, so a restore only brings back the event rows: analytics answers
do not change. Event ids stay claimed in `event_ids` while a day is archived, so the processor
never stores an archived event twice either.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
from psycopg_pool import AsyncConnectionPool

from gamemetrics.archive.layout import MANIFEST, Manifest, game_prefix, load_manifest
from gamemetrics.archive.parquet import SCHEMA
from gamemetrics.audit import AuditEntry, AuditLog
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.ports.objects import Objects
from gamemetrics.services.retention.online import count_moved
from gamemetrics.services.retention.parts import read_day

_COLUMNS = ", ".join(SCHEMA.names)


@dataclass(frozen=True, slots=True)
class RestoredDay:
    day: date
    archived: int
    restored: int
    already_online: int
    erased_skipped: int


async def archived_manifests(objects: Objects, tenant_id: uuid.UUID, game_id: uuid.UUID,
                             first: date | None = None, last: date | None = None) -> list[Manifest]:
    """The game's archived days between `first` and `last` (inclusive), by day."""
    found: list[Manifest] = []
    for info in await objects.list(game_prefix(tenant_id, game_id)):
        if not info.key.endswith("/" + MANIFEST):
            continue
        day = date.fromisoformat(info.key.rsplit("dt=", 1)[1].split("/")[0])
        if (first and day < first) or (last and day > last):
            continue
        manifest = await load_manifest(objects, info.key)
        if manifest is not None:
            found.append(manifest)
    return sorted(found, key=lambda m: m.day)


class Restorer:
    """Brings archived days of one game back online."""

    def __init__(self, pool: AsyncConnectionPool, objects: Objects, tombstones: Tombstones, audit: AuditLog,
                 actor: str) -> None:
        self._pool = pool
        self._objects = objects
        self._tombstones = tombstones
        self._audit = audit
        self._actor = actor

    async def restore(self, game_id: uuid.UUID, first: date, last: date,
                      done: Callable[[RestoredDay], None] = lambda day: None) -> list[RestoredDay]:
        """Restore each archived day of the game in [first, last]; KeyError when the game does not exist."""
        async with self._pool.connection() as conn:
            row = await (await conn.execute("SELECT tenant_id FROM games WHERE game_id = %s", (game_id,))).fetchone()
        if row is None:
            raise KeyError(f"no game {game_id}")
        tenant_id: uuid.UUID = row[0]
        results = []
        for manifest in await archived_manifests(self._objects, tenant_id, game_id, first, last):
            results.append(await self._day(manifest))
            done(results[-1])
        return results

    async def _day(self, manifest: Manifest) -> RestoredDay:
        table = await read_day(self._objects, manifest)
        kept = await self._without_erased(manifest, table)
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT gm_ensure_event_partition(%s)", (manifest.day,))
            await conn.execute("CREATE TEMPORARY TABLE restoring (LIKE events) ON COMMIT DROP")
            async with conn.cursor().copy(f"COPY restoring ({_COLUMNS}) FROM STDIN") as copy:
                for values in zip(*(kept[name].to_pylist() for name in SCHEMA.names), strict=True):
                    await copy.write_row(values)
            cur = await conn.execute(
                f"INSERT INTO events ({_COLUMNS}) SELECT {_COLUMNS} FROM restoring r WHERE NOT EXISTS"
                " (SELECT 1 FROM events e WHERE e.tenant_id = r.tenant_id AND e.game_id = r.game_id"
                "  AND e.event_id = r.event_id AND e.event_time = r.event_time)")
            restored = cur.rowcount
            await count_moved(conn, manifest.tenant_id, manifest.game_id, restored)
            await conn.execute("INSERT INTO event_ids (tenant_id, event_id) SELECT tenant_id, event_id FROM restoring"
                               " ON CONFLICT DO NOTHING")
            await self._audit.append(conn, AuditEntry(
                self._actor, "retention.day_restored", manifest.tenant_id, f"{manifest.game_id}/{manifest.day}",
                {"rows_restored": restored, "rows_archived": manifest.rows}))
        return RestoredDay(manifest.day, manifest.rows, restored, kept.num_rows - restored,
                           table.num_rows - kept.num_rows)

    async def _without_erased(self, manifest: Manifest, table: pa.Table) -> pa.Table:
        players = [p for p in pc.unique(table["player_id"]).to_pylist() if p is not None]
        hashes = {self._tombstones.player_hash(manifest.tenant_id, manifest.game_id, p): p for p in players}
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT player_hash FROM erased_players WHERE player_hash = ANY(%s)",
                                     (list(hashes),))
            erased = [hashes[bytes(row[0])] for row in await cur.fetchall()]
        if not erased:
            return table
        return table.filter(pc.invert(pc.is_in(table["player_id"], value_set=pa.array(erased, pa.string()))))
