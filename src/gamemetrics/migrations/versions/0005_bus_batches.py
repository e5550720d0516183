"""The embedded bus stores record batches: one row per partition per append, not one per message.

Every message used to cost a row (with its index entry) to append, read, and trim again; a batch
row holds the messages one transaction appended to one partition, like a Kafka record batch
(see `adapters/pglog/batches.py`). Offsets do not change: messages still waiting in the old table
move over as batches of one, so consumers carry on from their committed positions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from gamemetrics.adapters.pglog.batches import Entry, decode_batch, encode_entries

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_CHUNK = 10_000


def upgrade() -> None:
    op.execute("ALTER TABLE bus_log RENAME TO bus_log_messages")
    op.execute("ALTER TABLE bus_log_messages RENAME CONSTRAINT bus_log_pkey TO bus_log_messages_pkey")
    op.execute("""
CREATE TABLE bus_log (
    topic       text NOT NULL,
    partition   integer NOT NULL,
    base_offset bigint NOT NULL,
    last_offset bigint NOT NULL CHECK (last_offset >= base_offset),
    records     bytea NOT NULL,
    appended_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, last_offset)
)""")
    # A batch is megabytes of small JSON messages: compressing it with pglz on every append cost
    # more than the append itself, and the log is short-lived. Out of line, uncompressed.
    op.execute("ALTER TABLE bus_log ALTER COLUMN records SET STORAGE EXTERNAL")
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        'SELECT topic, partition, "offset", key, value, headers, appended_at FROM bus_log_messages'
        ' ORDER BY topic, partition, "offset"'
    )).fetchall()
    insert = sa.text("INSERT INTO bus_log (topic, partition, base_offset, last_offset, records, appended_at)"
                     " VALUES (:topic, :partition, :offset, :offset, :records, :appended_at)")
    for start in range(0, len(rows), _CHUNK):
        bind.execute(insert, [
            {"topic": topic, "partition": partition, "offset": offset, "appended_at": appended_at,
             "records": encode_entries([Entry(0, bytes(key or b""), bytes(value), headers or None)])}
            for topic, partition, offset, key, value, headers, appended_at in rows[start:start + _CHUNK]
        ])
    op.execute("DROP TABLE bus_log_messages")


def downgrade() -> None:
    op.execute("ALTER TABLE bus_log RENAME TO bus_log_batches")
    op.execute("ALTER TABLE bus_log_batches RENAME CONSTRAINT bus_log_pkey TO bus_log_batches_pkey")
    op.execute("""
CREATE TABLE bus_log (
    topic       text NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    key         bytea,
    value       bytea NOT NULL,
    headers     jsonb,
    appended_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
)""")
    bind = op.get_bind()
    insert = sa.text('INSERT INTO bus_log (topic, partition, "offset", key, value, headers, appended_at)'
                     " VALUES (:topic, :partition, :offset, :key, :value, CAST(:headers AS jsonb), :appended_at)")
    batches = bind.execute(sa.text(
        "SELECT topic, partition, base_offset, records, appended_at FROM bus_log_batches"
    )).fetchall()
    for topic, partition, base, records, appended_at in batches:
        entries = decode_batch(bytes(records))
        if entries:
            bind.execute(insert, [
                {"topic": topic, "partition": partition, "offset": base + e.delta, "key": e.key, "value": e.value,
                 "headers": json.dumps(e.headers) if e.headers else None, "appended_at": appended_at}
                for e in entries
            ])
    op.execute("DROP TABLE bus_log_batches")
