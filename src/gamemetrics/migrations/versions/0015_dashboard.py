"""Replays of dead letters from the dashboard: one row per letter replayed, so a letter is sent back
to `player.events.raw` once, whoever clicks and however often. Row-level security as on every
tenant table; the analytics role, which the dashboard's transactions take, may read and add rows.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

APP_ROLE = "gamemetrics_app"
TRUSTED_ROLE = "gamemetrics_trusted"
TENANT_OF_TRANSACTION = "nullif(current_setting('gamemetrics.tenant_id', true), '')::uuid"

SCHEMA = f"""
-- The letter's own row goes with it (an erasure deletes a player's dead letters): nothing here
-- names a player.
CREATE TABLE dead_letter_replays (
    letter_id   bigint PRIMARY KEY REFERENCES dead_letters (id) ON DELETE CASCADE,
    tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    replayed_by text NOT NULL,
    replayed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letter_replays_tenant ON dead_letter_replays (tenant_id, replayed_at);

ALTER TABLE dead_letter_replays ENABLE ROW LEVEL SECURITY;
ALTER TABLE dead_letter_replays FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dead_letter_replays
    USING (tenant_id = {TENANT_OF_TRANSACTION}) WITH CHECK (tenant_id = {TENANT_OF_TRANSACTION});
CREATE POLICY trusted_workers ON dead_letter_replays TO {TRUSTED_ROLE} USING (true) WITH CHECK (true);
GRANT SELECT, INSERT ON dead_letter_replays TO {APP_ROLE};
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE dead_letter_replays")
