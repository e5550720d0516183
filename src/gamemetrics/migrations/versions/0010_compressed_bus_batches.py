"""The embedded bus's record batches are compressed with zstd; their keys move to a `keys` column.

A batch of processed events is about 700 bytes a message as plain MessagePack and about 145 with
zstd level 1, and the append's COPY, TOAST and WAL shrink with it. An erasure can no longer
search the compressed bytes for a key, so each row keeps its batch's distinct keys uncompressed in
`keys` (see `adapters/pglog/batches.py`). Rows still waiting to be read are rewritten both ways in
place, so their offsets do not change and consumers carry on from their committed positions.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from gamemetrics.adapters.pglog.batches import Entry, decode_batch, encode_batch, encode_entries

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ROWS = 16


def _rewrite(columns: tuple[str, ...], convert: Callable[[list[Entry]], tuple[bytes, ...]]) -> None:
    """Set `columns` of every batch to `convert` of its entries, in place: offsets stay as they are.
    Rows are streamed a few at a time, since a batch can be tens of megabytes."""
    bind = op.get_bind()
    update = sa.text(f"UPDATE bus_log SET {', '.join(f'{c} = :{c}' for c in columns)}"
                     " WHERE topic = :topic AND partition = :partition AND last_offset = :last")
    batches = bind.execute(
        sa.text("SELECT topic, partition, last_offset, records FROM bus_log").execution_options(yield_per=_ROWS)
    )
    for rows in batches.partitions():
        bind.execute(update, [
            {**dict(zip(columns, convert(decode_batch(bytes(records))), strict=True)),
             "topic": topic, "partition": partition, "last": last}
            for topic, partition, last, records in rows
        ])


def upgrade() -> None:
    op.execute("ALTER TABLE bus_log ADD COLUMN keys bytea")
    # Out of line and uncompressed like `records`: pglz would cost more than the append, and the
    # erasure's search reads the keys as stored.
    op.execute("ALTER TABLE bus_log ALTER COLUMN keys SET STORAGE EXTERNAL")
    _rewrite(("keys", "records"), encode_batch)
    op.execute("ALTER TABLE bus_log ALTER COLUMN keys SET NOT NULL")


def downgrade() -> None:
    _rewrite(("records",), lambda entries: (encode_entries(entries),))
    op.execute("ALTER TABLE bus_log DROP COLUMN keys")
