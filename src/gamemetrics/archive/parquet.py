"""The archived events' Parquet form: typed columns, properties and context as JSON text, and the
content hashes that prove a file holds exactly the rows it was made from."""

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
        table = pq.read_table(pa.BufferReader(data))
        # A file this archive wrote reads back in SCHEMA already; a cast of every column would copy them all.
        return table if table.schema.equals(SCHEMA) else table.cast(SCHEMA)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not a readable archive file: {exc}") from exc


def rows_hash(table: pa.Table) -> str:
    """sha256 over the rows in the order they are in, column by column (nulls, lengths, values in a
    fixed binary form, each kind hashed on its own chunk by chunk): equal for the same rows in the
    same order however their columns are chunked. What a part's `content_hash` is when its
    `content_order` is "file": no sort, so it costs one pass over the rows' bytes."""
    digest = hashlib.sha256(table.num_rows.to_bytes(8, "little"))
    for name in SCHEMA.names:
        kinds = (hashlib.sha256(), hashlib.sha256(), hashlib.sha256())
        for chunk in table[name].chunks:
            for kind, part in zip(kinds, _canonical(chunk), strict=True):
                kind.update(part)
        for kind in kinds:
            digest.update(kind.digest())
    return digest.hexdigest()


def content_hash(table: pa.Table) -> str:
    """sha256 over the rows in event-id order, column by column (nulls, then values in a fixed
    binary form): equal for equal rows however they were read or stored."""
    ordered = in_event_order(table)
    digest = hashlib.sha256(ordered.num_rows.to_bytes(8, "little"))
    for name in SCHEMA.names:
        column = ordered[name].combine_chunks()
        nulls, lengths, values = _canonical(column)
        digest.update(nulls)
        digest.update(lengths)
        digest.update(values)
    return digest.hexdigest()


def _ordered(ids: Any) -> bool:
    return len(ids) < 2 or bool(pc.all(pc.less_equal(ids.slice(0, len(ids) - 1), ids.slice(1))).as_py())


def in_event_order(table: pa.Table) -> pa.Table:
    """`table` sorted by event id; as it is when it already is (checking costs far less than sorting)."""
    return table if _ordered(table["event_id"]) else table.sort_by("event_id")


def _canonical(column: Any) -> tuple[Any, Any, Any]:
    """The column's nulls, value lengths and values as bytes (or views of its buffers) that do not
    depend on how its buffers are laid out: null slots read as empty or zero; lengths b"" for fixed widths."""
    nulls = pc.is_null(column).to_numpy(zero_copy_only=False).tobytes()
    kind = column.type
    if pa.types.is_string(kind):
        filled = pc.fill_null(column, "") if column.null_count else column
        _, offsets, data = filled.buffers()
        bounds = np.frombuffer(offsets, dtype="<i4")[filled.offset:filled.offset + len(filled) + 1] \
            if offsets is not None and len(filled) else np.zeros(2, dtype="<i4")
        lengths = np.diff(bounds).astype("<i4").tobytes() if len(filled) else b""
        return nulls, lengths, memoryview(data)[bounds[0]:bounds[-1]] if data is not None else b""
    if pa.types.is_timestamp(kind):
        values = column.cast(pa.int64())
        values = pc.fill_null(values, 0) if column.null_count else values
        return nulls, b"", values.to_numpy().astype("<i8").tobytes()
    if pa.types.is_boolean(kind):
        filled = pc.fill_null(column, False) if column.null_count else column
        return nulls, b"", filled.to_numpy(zero_copy_only=False).tobytes()
    # decimal128: 16 little-endian bytes a value.
    filled = pc.fill_null(column, pa.scalar(Decimal(0), kind)) if column.null_count else column
    values = filled.buffers()[1]
    return nulls, b"", memoryview(values)[filled.offset * 16:(filled.offset + len(filled)) * 16] if values else b""
