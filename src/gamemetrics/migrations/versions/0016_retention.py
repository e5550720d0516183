"""Retention: policies per tenant (and game), and the event days archived to object storage.

`retention_policies` holds a tenant's defaults (game_id NULL) and per-game overrides. A day is
listed in `archived_days` once its manifest is written; the manifest in object storage is the
truth, this table is what the platform shows and what erasures and restores look up. Row-level
security as on every tenant table.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

APP_ROLE = "gamemetrics_app"
TRUSTED_ROLE = "gamemetrics_trusted"
TENANT_OF_TRANSACTION = "nullif(current_setting('gamemetrics.tenant_id', true), '')::uuid"
TABLES = ("retention_policies", "archived_days")

SCHEMA = """
CREATE TABLE retention_policies (
    tenant_id          uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    game_id            uuid REFERENCES games ON DELETE CASCADE,
    events_online_days integer NOT NULL CHECK (events_online_days >= 1),
    archive_days       integer NOT NULL,
    dead_letter_days   integer NOT NULL CHECK (dead_letter_days >= 1),
    notification_days  integer NOT NULL CHECK (notification_days >= 1),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (archive_days >= events_online_days),
    UNIQUE NULLS NOT DISTINCT (tenant_id, game_id)
);

CREATE TABLE archived_days (
    tenant_id    uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    game_id      uuid NOT NULL,
    day          date NOT NULL,
    rows         bigint NOT NULL,
    manifest_key text NOT NULL,
    archived_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, game_id, day)
);
"""

POLICIES = """
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {table}
    USING (tenant_id = {tenant}) WITH CHECK (tenant_id = {tenant});
CREATE POLICY trusted_workers ON {table} TO {trusted} USING (true) WITH CHECK (true);
GRANT SELECT ON {table} TO {app};
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    for table in TABLES:
        op.execute(POLICIES.format(table=table, tenant=TENANT_OF_TRANSACTION, trusted=TRUSTED_ROLE, app=APP_ROLE))


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE {table}")
