"""The archived events' Parquet form: typed columns, properties and context as JSON text, and the
content hash that proves a file holds exactly the rows it was made from."""

from __future__ import annotations

import hashlib
import io
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SCHEMA_VERSION = 1

SCHEMA = pa.schema([  # type: ignore[arg-type]  # the stubs miss decimal128 fields
    ("tenant_id", pa.string()),
    ("game_id", pa.string()),
    ("event_id", pa.string()),
    ("event_type", pa.string()),
    ("event_name", pa.string()),
    ("player_id", pa.string()),
    ("session_id", pa.string()),
    ("event_time", pa.timestamp("us", tz="UTC")),
    ("received_at", pa.timestamp("us", tz="UTC")),
    ("source", pa.string()),
    ("platform", pa.string()),
    ("os", pa.string()),
    ("app_version", pa.string()),
    ("country", pa.string()),
    ("is_new_player", pa.bool_()),
    ("revenue_usd", pa.decimal128(18, 6)),
    ("properties", pa.string()),
    ("context", pa.string()),
])

def to_parquet(table: pa.Table, *, zstd_level: int) -> bytes:
    """`table` as one Parquet file, zstd-compressed."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", compression_level=zstd_level)
    return sink.getvalue()


def from_parquet(data: bytes) -> pa.Table:
    """A Parquet file's rows as a table of SCHEMA; ValueError when it is not such a file."""
    try:
        return pq.read_table(io.BytesIO(data)).cast(SCHEMA)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not a readable archive file: {exc}") from exc


def content_hash(table: pa.Table) -> str:
    """sha256 over the rows in event-id order, column by column (nulls, then values in a fixed
    binary form): equal for equal rows however they were read or stored."""
    ordered = in_event_order(table)
    digest = hashlib.sha256(ordered.num_rows.to_bytes(8, "little"))
    for name in SCHEMA.names:
        column = ordered[name].combine_chunks()
        for part in _canonical(column):
            digest.update(part)
    return digest.hexdigest()


def _ordered(ids: Any) -> bool:
    return len(ids) < 2 or bool(pc.all(pc.less_equal(ids.slice(0, len(ids) - 1), ids.slice(1))).as_py())


def in_event_order(table: pa.Table) -> pa.Table:
    """`table` sorted by event id; as it is when it already is (checking costs far less than sorting)."""
    return table if _ordered(table["event_id"]) else table.sort_by("event_id")


def ids_digest(ids: Any) -> str:
    """sha256 over the (non-null) event ids' text in id order, concatenated: what the store computes with
    `sha256(convert_to(string_agg(event_id::text, '' ORDER BY event_id), 'UTF8'))`."""
    ordered = ids if _ordered(ids) else pc.take(ids, pc.sort_indices(ids))
    return hashlib.sha256("".join(ordered.to_pylist()).encode()).hexdigest()


def _canonical(column: Any) -> list[bytes]:
    """The column's nulls and values as bytes that do not depend on how its buffers are laid out."""
    nulls = pc.is_null(column).to_numpy(zero_copy_only=False).tobytes()
    kind = column.type
    if pa.types.is_string(kind):
        filled = pc.fill_null(column, "")
        lengths = pc.binary_length(filled).to_numpy().astype("<i4").tobytes()
        _, offsets, data = filled.buffers()
        bounds = np.frombuffer(offsets, dtype="<i4")[filled.offset:filled.offset + len(filled) + 1] \
            if offsets is not None and len(filled) else np.zeros(2, dtype="<i4")
        return [nulls, lengths, data.to_pybytes()[bounds[0]:bounds[-1]] if data is not None else b""]
    if pa.types.is_timestamp(kind):
        return [nulls, pc.fill_null(column.cast(pa.int64()), 0).to_numpy().astype("<i8").tobytes()]
    if pa.types.is_boolean(kind):
        return [nulls, pc.fill_null(column, False).to_numpy(zero_copy_only=False).tobytes()]
    # decimal128: 16 little-endian bytes a value.
    filled = pc.fill_null(column, pa.scalar(Decimal(0), kind))
    values = filled.buffers()[1]
    return [nulls, values.to_pybytes()[filled.offset * 16:(filled.offset + len(filled)) * 16] if values else b""]
