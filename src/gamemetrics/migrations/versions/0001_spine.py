"""The spine: tenants, games, write keys, events and rollups, the embedded bus.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE tenants (
    tenant_id   uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE games (
    game_id     uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX games_tenant ON games (tenant_id);

-- Only a SHA-256 of each key is kept; the key itself is shown once, when it is created.
CREATE TABLE write_keys (
    key_id       uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    game_id      uuid NOT NULL REFERENCES games ON DELETE CASCADE,
    key_hash     bytea NOT NULL UNIQUE,
    key_prefix   text NOT NULL,
    environment  text NOT NULL DEFAULT 'production',
    allow_import boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- One row per stored event, partitioned by day of event time (partitions made on demand).
CREATE TABLE events (
    tenant_id     uuid NOT NULL,
    game_id       uuid NOT NULL,
    event_id      uuid NOT NULL,
    event_type    text NOT NULL,
    event_name    text,
    player_id     text NOT NULL,
    session_id    text,
    event_time    timestamptz NOT NULL,
    received_at   timestamptz NOT NULL,
    source        text NOT NULL,
    platform      text,
    os            text,
    app_version   text,
    country       text,
    is_new_player boolean NOT NULL DEFAULT false,
    revenue_usd   numeric(18, 6),
    properties    jsonb NOT NULL DEFAULT '{}',
    context       jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, event_id, event_time)
) PARTITION BY RANGE (event_time);
CREATE INDEX events_player ON events (tenant_id, game_id, player_id, event_time);

-- The de-duplication key across all partitions: an event id is stored once per tenant.
CREATE TABLE event_ids (
    tenant_id uuid NOT NULL,
    event_id  uuid NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);

CREATE FUNCTION gm_ensure_event_partition(day date) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    name text := format('events_%s', to_char(day, 'YYYYMMDD'));
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN;
    END IF;
    -- Serialise creators so two processors making the same day do not collide.
    PERFORM pg_advisory_xact_lock(hashtext('gm_event_partition'));
    IF to_regclass(name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
            name, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
    END IF;
END;
$$;

CREATE TABLE players (
    tenant_id            uuid NOT NULL,
    game_id              uuid NOT NULL,
    player_id            text NOT NULL,
    first_seen           timestamptz NOT NULL,
    last_seen            timestamptz NOT NULL,
    platform             text,
    os                   text,
    country              text,
    app_version          text,
    events               bigint NOT NULL DEFAULT 0,
    sessions             bigint NOT NULL DEFAULT 0,
    lifetime_revenue_usd numeric(18, 6) NOT NULL DEFAULT 0,
    current_session_id   text,
    traits               jsonb NOT NULL DEFAULT '{}',
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, game_id, player_id)
);

CREATE TABLE player_days (
    tenant_id        uuid NOT NULL,
    game_id          uuid NOT NULL,
    day              date NOT NULL,
    player_id        text NOT NULL,
    events           integer NOT NULL DEFAULT 0,
    sessions         integer NOT NULL DEFAULT 0,
    playtime_seconds bigint NOT NULL DEFAULT 0,
    purchases        integer NOT NULL DEFAULT 0,
    revenue_usd      numeric(18, 6) NOT NULL DEFAULT 0,
    first_event_at   timestamptz NOT NULL,
    last_event_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, game_id, day, player_id)
);

CREATE TABLE minute_stats (
    tenant_id   uuid NOT NULL,
    game_id     uuid NOT NULL,
    minute      timestamptz NOT NULL,
    event_type  text NOT NULL,
    events      bigint NOT NULL DEFAULT 0,
    revenue_usd numeric(18, 6) NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, game_id, minute, event_type)
);

CREATE TABLE sessions (
    tenant_id        uuid NOT NULL,
    game_id          uuid NOT NULL,
    session_id       text NOT NULL,
    player_id        text NOT NULL,
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz NOT NULL,
    events           integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, game_id, session_id)
);

CREATE TABLE dead_letters (
    id               bigserial PRIMARY KEY,
    tenant_id        uuid,
    game_id          uuid,
    event_id         text,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    reason           text NOT NULL,
    payload          bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX dead_letters_game ON dead_letters (tenant_id, game_id, created_at);

CREATE TABLE game_counters (
    tenant_id            uuid NOT NULL,
    game_id              uuid NOT NULL,
    events_stored        bigint NOT NULL DEFAULT 0,
    events_dead_lettered bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, game_id)
);

-- The embedded bus: one ordered log per topic partition.
CREATE TABLE bus_partitions (
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition)
);

CREATE TABLE bus_log (
    topic       text NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    key         bytea,
    value       bytea NOT NULL,
    headers     jsonb,
    appended_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);

CREATE TABLE bus_offsets (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    for table in (
        "bus_offsets", "bus_log", "bus_partitions", "game_counters", "dead_letters", "sessions",
        "minute_stats", "player_days", "players", "event_ids", "events", "write_keys", "games", "tenants",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("DROP FUNCTION IF EXISTS gm_ensure_event_partition(date)")
