"""Identity, access and GDPR: signing keys, OAuth2 clients, operators, erasures and their
tombstones, and the hash-chained audit log.

Nothing here holds a player id in clear: erasures and tombstones keep a keyed hash of it
(HMAC-SHA-256 under the platform secret), so a late event of an erased player can be recognised
without the platform remembering who the player was.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TRUSTED_ROLE = "gamemetrics_trusted"
TENANT_OF_TRANSACTION = "nullif(current_setting('gamemetrics.tenant_id', true), '')::uuid"
TENANT_TABLES = ("oauth_clients", "operators", "erasures", "erased_players", "audit_log")

SCHEMA = """
-- Token signing keys. The private key is sealed (AES-GCM under a key derived from the platform
-- secret); the public JWK is what the JWKS publishes. The newest active key signs; a key stays
-- published until `retired_at`, so tokens it signed keep verifying until they expire.
CREATE TABLE signing_keys (
    kid           text PRIMARY KEY,
    algorithm     text NOT NULL,
    public_jwk    jsonb NOT NULL,
    sealed_key    bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    superseded_at timestamptz,
    retired_at    timestamptz
);

-- OAuth2 clients (client-credentials grant). Only a SHA-256 of the secret is kept.
CREATE TABLE oauth_clients (
    client_id   text PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    name        text NOT NULL,
    secret_hash bytea NOT NULL,
    scopes      text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX oauth_clients_tenant ON oauth_clients (tenant_id);

-- People who log in to the dashboard. A platform admin has no tenant; the others have one.
CREATE TABLE operators (
    operator_id   uuid PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('platform_admin', 'tenant_admin', 'analyst')),
    tenant_id     uuid REFERENCES tenants ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz,
    CHECK ((role = 'platform_admin') = (tenant_id IS NULL))
);

-- Erasure requests and what each store that held the player's data has confirmed.
CREATE TABLE erasures (
    erasure_id   uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    game_id      uuid NOT NULL,
    player_hash  bytea NOT NULL,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    stores       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX erasures_tenant ON erasures (tenant_id, requested_at);

-- Tombstones: the processor dead-letters events whose player hash is here.
CREATE TABLE erased_players (
    player_hash bytea PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    game_id     uuid NOT NULL,
    erased_at   timestamptz NOT NULL DEFAULT now()
);

-- The audit log: append-only, each entry's MAC covers the previous entry's, so `gamemetrics
-- audit verify` finds any entry changed, removed or moved. The trigger refuses changes; the
-- chain catches whoever gets past the trigger.
CREATE TABLE audit_log (
    seq       bigint PRIMARY KEY,
    at        timestamptz NOT NULL,
    actor     text NOT NULL,
    action    text NOT NULL,
    tenant_id uuid,
    subject   text,
    details   jsonb NOT NULL DEFAULT '{}',
    prev_hash bytea NOT NULL,
    hash      bytea NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq);

CREATE FUNCTION gm_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION gm_audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION gm_audit_append_only();
"""


def _secure(table: str) -> str:
    # The same two policies as revision 0002 gives every tenant table.
    return f"""
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {table}
    USING (tenant_id = {TENANT_OF_TRANSACTION}) WITH CHECK (tenant_id = {TENANT_OF_TRANSACTION});
CREATE POLICY trusted_workers ON {table} TO {TRUSTED_ROLE} USING (true) WITH CHECK (true);
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute("".join(_secure(table) for table in TENANT_TABLES))


def downgrade() -> None:
    op.execute(
        "DROP TABLE audit_log; DROP FUNCTION gm_audit_append_only(); DROP TABLE erased_players;"
        " DROP TABLE erasures; DROP TABLE operators; DROP TABLE oauth_clients; DROP TABLE signing_keys"
    )
