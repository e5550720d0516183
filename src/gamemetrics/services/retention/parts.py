"""Writing a part and reading it back: a part counts only once its bytes, rows and content match."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from gamemetrics.archive import parquet
from gamemetrics.archive.layout import ArchivedFile, ArchiveError, Manifest, part_key
from gamemetrics.ports.objects import ObjectNotFound, Objects, ObjectStoreError


async def read_part(objects: Objects, file: ArchivedFile) -> pa.Table:
    """The part's rows, checked against what the manifest says of it; ArchiveError naming the object."""
    table = await _fetch(objects, file)
    if await asyncio.to_thread(content_hash, file, table) != file.content_hash:
        raise ArchiveError(f"archive file {file.key}: its rows do not match the content hash of the manifest")
    return table


def content_hash(file: ArchivedFile, table: pa.Table) -> str:
    """The content hash of `table` as `file`'s manifest entry computes it."""
    return parquet.rows_hash(table) if file.content_order == "file" else parquet.content_hash(table)


async def _fetch(objects: Objects, file: ArchivedFile) -> pa.Table:
    """The part's rows, its bytes and row count checked against `file`."""
    try:
        data = await objects.get(file.key)
    except ObjectNotFound:
        raise ArchiveError(f"archive file {file.key} is missing") from None
    except ObjectStoreError as exc:
        raise ArchiveError(str(exc)) from exc
    digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    if digest != file.sha256:
        raise ArchiveError(f"archive file {file.key} is corrupted: its sha256 is {digest}, the manifest says"
                           f" {file.sha256}")
    try:
        table = await asyncio.to_thread(parquet.from_parquet, data)
    except ValueError as exc:
        raise ArchiveError(f"archive file {file.key}: {exc}") from None
    if table.num_rows != file.rows:
        raise ArchiveError(f"archive file {file.key} holds {table.num_rows} rows, the manifest says {file.rows}")
    return table


async def read_day(objects: Objects, manifest: Manifest) -> pa.Table:
    """Every row of a day's archive, each part checked."""
    tables = [await read_part(objects, file) for file in manifest.files]
    return pa.concat_tables(tables) if tables else parquet.SCHEMA.empty_table()


@dataclass(frozen=True, slots=True)
class EncodedPart:
    """A part made but not stored yet: its rows, their Parquet bytes and the rows' content hash."""

    key: str
    rows: pa.Table
    data: bytes
    content_hash: str


async def encode_part(tenant_id: uuid.UUID, game_id: uuid.UUID, day: date, number: int, rows: pa.Table, *,
                      zstd_level: int, content_hash: str | None = None) -> EncodedPart:
    """`rows` as part `number` of the day; `content_hash` is their `parquet.rows_hash` when the caller has it."""
    if content_hash is None:
        # Both release the GIL: the hash for the manifest runs beside the encoding.
        made, data = await asyncio.gather(
            asyncio.to_thread(parquet.rows_hash, rows),
            asyncio.to_thread(parquet.to_parquet, rows, zstd_level=zstd_level))
    else:
        made, data = content_hash, await asyncio.to_thread(parquet.to_parquet, rows, zstd_level=zstd_level)
    return EncodedPart(part_key(tenant_id, game_id, day, number), rows, data, made)


async def store_part(objects: Objects, part: EncodedPart) -> ArchivedFile:
    """Upload `part` and read it back; the entry for the manifest."""
    await objects.put(part.key, part.data)
    times = part.rows["event_time"]
    file = ArchivedFile(part.key, part.rows.num_rows,
                        await asyncio.to_thread(lambda: hashlib.sha256(part.data).hexdigest()), part.content_hash,
                        pc.min(times).as_py(), pc.max(times).as_py(), content_order="file")
    # Read back what the store now holds, not what was sent, and compare it value for value with the
    # rows it was made from (which hash to `content_hash`): the verification before any deletion.
    stored = await _fetch(objects, file)
    if not await asyncio.to_thread(stored.equals, part.rows):
        raise ArchiveError(f"archive file {part.key} does not read back as the rows written to it;"
                           " nothing was deleted")
    return file


async def write_part(objects: Objects, tenant_id: uuid.UUID, game_id: uuid.UUID, day: date, number: int,
                     rows: pa.Table, *, zstd_level: int) -> ArchivedFile:
    """Upload `rows` as part `number` of the day and read it back; the entry for the manifest."""
    return await store_part(objects, await encode_part(tenant_id, game_id, day, number, rows, zstd_level=zstd_level))
