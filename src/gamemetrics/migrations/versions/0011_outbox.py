"""The outbox: messages to players (email, SMS, push, in-app) kept in the database, where the
dashboard shows them, when no real provider is configured (the Mail port's embedded adapter).

Each row belongs to a tenant and carries the player it was for, so an erasure can delete a
player's messages. Row-level security as on every tenant table: a transaction sees and writes only
the rows of the tenant it names; the analytics role may read them, as it reads the other tenant
tables, for the dashboard.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

APP_ROLE = "gamemetrics_app"
TRUSTED_ROLE = "gamemetrics_trusted"
TENANT_OF_TRANSACTION = "nullif(current_setting('gamemetrics.tenant_id', true), '')::uuid"

SCHEMA = f"""
-- message_id is the sender's: a retried send of the same message stores it once.
CREATE TABLE outbox (
    tenant_id  uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    message_id uuid NOT NULL,
    channel    text NOT NULL CHECK (channel IN ('email', 'sms', 'push', 'in_app')),
    recipient  text NOT NULL,
    player_id  text,
    subject    text NOT NULL DEFAULT '',
    body       text NOT NULL,
    headers    jsonb NOT NULL DEFAULT '{{}}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, message_id)
);
CREATE INDEX outbox_recent ON outbox (tenant_id, created_at);
CREATE INDEX outbox_player ON outbox (tenant_id, player_id) WHERE player_id IS NOT NULL;

-- The same two policies and grant as revision 0002 gives every tenant table.
ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox
    USING (tenant_id = {TENANT_OF_TRANSACTION}) WITH CHECK (tenant_id = {TENANT_OF_TRANSACTION});
CREATE POLICY trusted_workers ON outbox TO {TRUSTED_ROLE} USING (true) WITH CHECK (true);
GRANT SELECT ON outbox TO {APP_ROLE};
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE outbox")
