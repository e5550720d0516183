"""Erasure in the archive: every archived file that holds the player is rewritten without their
rows (a new part, read back and verified), the day's manifest switched to it, and the old part
deleted.

It runs under the retention lock, so it never rewrites a manifest a run is writing. Each step is
idempotent: a request delivered again finds no part holding the player, or (after a kill between
the manifest switch and the deletion) an old part no manifest lists, which it deletes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from psycopg_pool import AsyncConnectionPool

from gamemetrics.archive.layout import (
    MANIFEST,
    Manifest,
    game_prefix,
    load_manifest,
    next_part_number,
    store_manifest,
)
from gamemetrics.events.gdpr_requests import ErasureRequest
from gamemetrics.gdpr.erasers import StoreState
from gamemetrics.ports.objects import Objects
from gamemetrics.services.retention.archiver import RUN_LOCK
from gamemetrics.services.retention.parts import read_part, write_part


class ArchiveEraser:
    """Erases a player from a game's archived days."""

    name = "archive"
    stores = ("archive",)

    def __init__(self, pool: AsyncConnectionPool, objects: Objects, *, zstd_level: int) -> None:
        self._pool = pool
        self._objects = objects
        self._zstd_level = zstd_level

    async def erase(self, request: ErasureRequest, player_hash: bytes) -> Mapping[str, StoreState]:
        """Rewrite the parts holding the player; the rows removed."""
        async with self._pool.connection() as lock:
            await lock.execute("SELECT pg_advisory_lock(%s)", (RUN_LOCK,))
            try:
                removed = 0
                prefix = game_prefix(request.tenant_id, request.game_id)
                for info in await self._objects.list(prefix):
                    if info.key.endswith("/" + MANIFEST):
                        removed += await self._erase_day(info.key, request.player_id)
            finally:
                await lock.execute("SELECT pg_advisory_unlock(%s)", (RUN_LOCK,))
        return {"archive": StoreState("erased", rows=removed)}

    async def _erase_day(self, key: str, player_id: str) -> int:
        manifest = await load_manifest(self._objects, key)
        if manifest is None:
            return 0
        listed = {file.key for file in manifest.files}
        files, stale, removed = [], [], 0
        number = next_part_number(manifest)
        for file in manifest.files:
            table = await read_part(self._objects, file)
            theirs = pc.equal(table["player_id"], pa.scalar(player_id))
            count = int(pc.sum(theirs.cast(pa.int64())).as_py() or 0)
            if not count:
                files.append(file)
                continue
            kept = table.filter(pc.invert(theirs))
            removed += count
            stale.append(file.key)
            if kept.num_rows:
                files.append(await write_part(self._objects, manifest.tenant_id, manifest.game_id, manifest.day,
                                              number, kept, zstd_level=self._zstd_level))
                number += 1
        if stale:
            await store_manifest(self._objects, Manifest(manifest.tenant_id, manifest.game_id, manifest.day,
                                                         manifest.schema_version, tuple(files), datetime.now(UTC)))
            async with self._pool.connection() as conn:
                await conn.execute(
                    "UPDATE archived_days SET rows = %s WHERE tenant_id = %s AND game_id = %s AND day = %s",
                    (sum(f.rows for f in files), manifest.tenant_id, manifest.game_id, manifest.day))
        # Parts of the day no manifest lists: the old ones of this rewrite, or of one killed after its switch.
        for info in await self._objects.list(key.removesuffix(MANIFEST)):
            if info.key.endswith(".parquet") and (info.key in stale or info.key not in listed | {f.key for f in files}):
                await self._objects.delete(info.key)
        return removed
