"""`events` loses its primary key: `event_ids` already makes each event id unique per tenant.

Every stored event is claimed in `event_ids` in the same transaction that inserts it, so the
key `(tenant_id, event_id, event_time)` on `events` never refused a row; it only cost a second
random-uuid index insert per event (about a third of the time of the batch's insert into
`events`). Nothing reads events by id; `events_player` serves the lookups by player.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE events DROP CONSTRAINT events_pkey")


def downgrade() -> None:
    op.execute("ALTER TABLE events ADD PRIMARY KEY (tenant_id, event_id, event_time)")
