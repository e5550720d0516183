"""One player's events in a game's archive, for their export: every part the day manifests list,
its bytes checked against the manifest, read with pyarrow keeping the player's rows only."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from gamemetrics.archive.layout import MANIFEST, ArchivedFile, ArchiveError, game_prefix, load_manifest
from gamemetrics.ports.objects import ObjectNotFound, Objects

_JSON = ("properties", "context")


async def archived_events(objects: Objects, tenant_id: uuid.UUID, game_id: uuid.UUID,
                          player_id: str) -> list[dict[str, Any]]:
    """The player's archived events of the game, by event time then id; ArchiveError naming the object
    when a part is missing or damaged (an export must not leave rows out silently)."""
    events: list[dict[str, Any]] = []
    for info in await objects.list(game_prefix(tenant_id, game_id)):
        if not info.key.endswith("/" + MANIFEST):
            continue
        manifest = await load_manifest(objects, info.key)
        for file in manifest.files if manifest else ():
            events += await asyncio.to_thread(_rows_of, await _bytes(objects, file), player_id)
    return sorted(events, key=lambda event: (event["event_time"], event["event_id"]))


async def _bytes(objects: Objects, file: ArchivedFile) -> bytes:
    try:
        data = await objects.get(file.key)
    except ObjectNotFound:
        raise ArchiveError(f"archive file {file.key} is missing") from None
    if hashlib.sha256(data).hexdigest() != file.sha256:
        raise ArchiveError(f"archive file {file.key} is corrupted: its sha256 differs from its manifest's")
    return data


def _rows_of(data: bytes, player_id: str) -> list[dict[str, Any]]:
    """The player's rows of one part, their JSON columns decoded (as the online rows are exported)."""
    table = pq.read_table(pa.BufferReader(data), filters=[("player_id", "=", player_id)])
    rows = table.drop_columns(["tenant_id", "game_id"]).to_pylist()
    for row in rows:
        for name in _JSON:
            row[name] = msgspec.json.decode(row[name]) if row[name] is not None else None
        row["event_id"] = uuid.UUID(row["event_id"])
    return rows
