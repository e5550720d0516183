"""Where archives live in object storage, and the manifest that says what a day's archive holds.

Hive-style keys, so DuckDB, Spark or Athena read them as partitions:
`events/tenant_id=<t>/game_id=<g>/dt=YYYY-MM-DD/part-NNNN.parquet`, and beside the parts
`_manifest.json`, written last: a part no manifest lists is not part of the archive.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

import msgspec

from gamemetrics.ports.objects import ObjectNotFound, Objects

TABLE = "events"
MANIFEST = "_manifest.json"


class ArchiveError(Exception):
    """An archive that cannot be trusted: the message names the object."""


class ArchivedFile(msgspec.Struct, frozen=True):
    """One Parquet part of a day."""

    key: str
    rows: int
    sha256: str
    """Of the file's bytes: a changed or truncated file is found before it is read."""
    content_hash: str
    """Of its rows: the rows are the ones that were online. `parquet.rows_hash` of them in the file's
    order when `content_order` is "file", `parquet.content_hash` (in event-id order) when "event_id"."""
    min_event_time: datetime
    max_event_time: datetime
    content_order: Literal["event_id", "file"] = "event_id"
    """Parts written before the file-order hash have none, and are hashed in event-id order."""


class Manifest(msgspec.Struct, frozen=True):
    """What one day of one game's archive holds."""

    tenant_id: uuid.UUID
    game_id: uuid.UUID
    day: date
    schema_version: int
    files: tuple[ArchivedFile, ...]
    written_at: datetime

    @property
    def rows(self) -> int:
        return sum(file.rows for file in self.files)


def day_prefix(tenant_id: uuid.UUID, game_id: uuid.UUID, day: date) -> str:
    return f"{TABLE}/tenant_id={tenant_id}/game_id={game_id}/dt={day.isoformat()}/"


def game_prefix(tenant_id: uuid.UUID, game_id: uuid.UUID) -> str:
    return f"{TABLE}/tenant_id={tenant_id}/game_id={game_id}/"


def manifest_key(tenant_id: uuid.UUID, game_id: uuid.UUID, day: date) -> str:
    return day_prefix(tenant_id, game_id, day) + MANIFEST


def part_key(tenant_id: uuid.UUID, game_id: uuid.UUID, day: date, number: int) -> str:
    return day_prefix(tenant_id, game_id, day) + f"part-{number:04d}.parquet"


def next_part_number(manifest: Manifest | None) -> int:
    """The number of the next part: above every part the manifest lists (so a rewrite never reuses a name)."""
    if manifest is None or not manifest.files:
        return 0
    return max(int(file.key.rsplit("part-", 1)[1].split(".")[0]) for file in manifest.files) + 1


_decoder = msgspec.json.Decoder(Manifest)


async def load_manifest(objects: Objects, key: str) -> Manifest | None:
    """The manifest under `key`, None when there is none; ArchiveError when it is unreadable."""
    try:
        data = await objects.get(key)
    except ObjectNotFound:
        return None
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ArchiveError(f"manifest {key} is unreadable: {exc}") from None


async def store_manifest(objects: Objects, manifest: Manifest) -> str:
    key = manifest_key(manifest.tenant_id, manifest.game_id, manifest.day)
    await objects.put(key, msgspec.json.encode(manifest))
    return key
