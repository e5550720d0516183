"""Ingest's refusals per game, hour and reason: what the data-quality page charts. Each ingest
process adds its counts every few seconds, so a row is one game's hour of one reason. Row-level
security as on every tenant table; the analytics role, which the dashboard's reads take, may read.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

APP_ROLE = "gamemetrics_app"
TRUSTED_ROLE = "gamemetrics_trusted"
TENANT_OF_TRANSACTION = "nullif(current_setting('gamemetrics.tenant_id', true), '')::uuid"

SCHEMA = f"""
CREATE TABLE ingest_refusals (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    game_id   uuid NOT NULL REFERENCES games ON DELETE CASCADE,
    hour      timestamptz NOT NULL,
    reason    text NOT NULL,
    events    bigint NOT NULL,
    requests  bigint NOT NULL,
    PRIMARY KEY (tenant_id, game_id, hour, reason)
);

ALTER TABLE ingest_refusals ENABLE ROW LEVEL SECURITY;
ALTER TABLE ingest_refusals FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ingest_refusals
    USING (tenant_id = {TENANT_OF_TRANSACTION}) WITH CHECK (tenant_id = {TENANT_OF_TRANSACTION});
CREATE POLICY trusted_workers ON ingest_refusals TO {TRUSTED_ROLE} USING (true) WITH CHECK (true);
GRANT SELECT ON ingest_refusals TO {APP_ROLE};
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE ingest_refusals")
