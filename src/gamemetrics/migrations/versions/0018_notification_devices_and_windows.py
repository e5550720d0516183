"""Notifications: a delivery record per device of a channel, and a send window.

A push or Web Push notification goes to every device the player registered, each with a record of
its own (`seq` numbers them within the channel; every other channel has the one record 0), so one
dead token does not hold back or repeat the others. `send_until` closes a notification's window:
a delivery not made by then (deferred by quiet hours, or still retrying) is given up.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
ALTER TABLE notifications ADD COLUMN send_until timestamptz;
ALTER TABLE notification_deliveries ADD COLUMN seq integer NOT NULL DEFAULT 0;
ALTER TABLE notification_deliveries DROP CONSTRAINT notification_deliveries_pkey,
    ADD PRIMARY KEY (tenant_id, notification_id, channel, seq);
""")


def downgrade() -> None:
    op.execute("""
DELETE FROM notification_deliveries WHERE seq > 0;
ALTER TABLE notification_deliveries DROP CONSTRAINT notification_deliveries_pkey,
    ADD PRIMARY KEY (tenant_id, notification_id, channel);
ALTER TABLE notification_deliveries DROP COLUMN seq;
ALTER TABLE notifications DROP COLUMN send_until;
""")
