"""The recommender: its catalogue of items, the interactions it learns from, per-game weights of
each event type, the versions of its trained models and the feedback on its answers.

Interactions are kept one row per event (keyed by the event id, so a replayed batch stores each
once); a player owns an item they purchased or acquired. Row-level security as on every tenant
table: a transaction sees and writes only the rows of the tenant it names.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

APP_ROLE = "gamemetrics_app"
TRUSTED_ROLE = "gamemetrics_trusted"
TENANT_OF_TRANSACTION = "nullif(current_setting('gamemetrics.tenant_id', true), '')::uuid"
TABLES = ("rec_items", "rec_interactions", "rec_weights", "rec_models", "rec_feedback")

SCHEMA = """
-- Items are learnt from events (described_at NULL) and described by the studio.
CREATE TABLE rec_items (
    tenant_id    uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    game_id      uuid NOT NULL,
    item_id      text NOT NULL,
    category     text,
    price        numeric(18, 6) CHECK (price >= 0),
    tags         text[] NOT NULL DEFAULT '{}',
    available    boolean NOT NULL DEFAULT true,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    described_at timestamptz,
    PRIMARY KEY (tenant_id, game_id, item_id)
);

CREATE TABLE rec_interactions (
    tenant_id  uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    event_id   uuid NOT NULL,
    game_id    uuid NOT NULL,
    player_id  text NOT NULL,
    item_id    text NOT NULL,
    event_type text NOT NULL,
    at         timestamptz NOT NULL,
    country    text,
    platform   text,
    -- When the recommender stored it: what "new since the last training" counts, whatever `at` says.
    stored_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX rec_interactions_player ON rec_interactions (tenant_id, game_id, player_id);
CREATE INDEX rec_interactions_recent ON rec_interactions (tenant_id, game_id, at);
CREATE INDEX rec_interactions_stored ON rec_interactions (tenant_id, game_id, stored_at);

CREATE TABLE rec_weights (
    tenant_id  uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    game_id    uuid NOT NULL,
    event_type text NOT NULL,
    weight     real NOT NULL CHECK (weight >= 0),
    PRIMARY KEY (tenant_id, game_id, event_type)
);

-- One active version per game; serving switches by moving `active` in one transaction.
CREATE TABLE rec_models (
    tenant_id    uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    game_id      uuid NOT NULL,
    version      integer NOT NULL,
    algorithm    text NOT NULL,
    factors      integer NOT NULL,
    players      integer NOT NULL,
    items        integer NOT NULL,
    interactions bigint NOT NULL,
    -- When its interactions were read: those stored later are new to it.
    trained_at   timestamptz NOT NULL DEFAULT now(),
    active       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, game_id, version)
);
CREATE UNIQUE INDEX rec_models_active ON rec_models (tenant_id, game_id) WHERE active;

CREATE TABLE rec_feedback (
    tenant_id         uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    game_id           uuid NOT NULL,
    recommendation_id uuid NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('shown', 'clicked', 'purchased')),
    item_id           text NOT NULL,
    player_id         text NOT NULL,
    source            text NOT NULL,
    at                timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, recommendation_id, kind, item_id)
);
CREATE INDEX rec_feedback_player ON rec_feedback (tenant_id, game_id, player_id);
"""


def _security(table: str) -> str:
    """The same two policies and grant as revision 0002 gives every tenant table."""
    return f"""
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {table}
    USING (tenant_id = {TENANT_OF_TRANSACTION}) WITH CHECK (tenant_id = {TENANT_OF_TRANSACTION});
CREATE POLICY trusted_workers ON {table} TO {TRUSTED_ROLE} USING (true) WITH CHECK (true);
GRANT SELECT ON {table} TO {APP_ROLE};
"""


def upgrade() -> None:
    op.execute(SCHEMA + "".join(_security(table) for table in TABLES))


def downgrade() -> None:
    op.execute("DROP TABLE " + ", ".join(reversed(TABLES)))
