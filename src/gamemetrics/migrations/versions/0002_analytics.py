"""Analytics: row-level security on every tenant table, the roles behind it, and the rollups and
indexes the analytics API reads (first active day and best score per player, events per day).

Two roles, both NOLOGIN, both granted to the user that runs the migration:

- `gamemetrics_app` — what the analytics API runs its transactions as (`SET LOCAL ROLE`). It may
  only SELECT the tenant tables, and only the rows of the tenant named by the transaction's
  `gamemetrics.tenant_id` setting. With no setting it sees nothing.
- `gamemetrics_trusted` — the trusted workers (ingest, processor, admin commands, migrations):
  one policy lets its members read and write every row. On the embedded server they connect as a
  superuser, which bypasses row-level security anyway; on a managed server where the owner is
  not a superuser, membership of this role is what keeps them working under FORCE.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APP_ROLE = "gamemetrics_app"
TRUSTED_ROLE = "gamemetrics_trusted"
TENANT_TABLES = (
    "tenants", "games", "write_keys", "events", "event_ids", "players", "player_days", "minute_stats",
    "sessions", "dead_letters", "game_counters", "event_days",
)
# nullif: once a session has set the variable, it reads '' (not NULL) after the transaction ends,
# and ''::uuid would be an error instead of "no tenant, no rows".
TENANT_OF_TRANSACTION = "nullif(current_setting('gamemetrics.tenant_id', true), '')::uuid"

ROLLUPS = """
-- A player's first active day: the UTC day of their first event other than identify (the same
-- activity that makes a row in player_days). NULL for a player who has only been identified.
ALTER TABLE players ADD COLUMN first_day date;
-- Best score from level_complete events and the original contract's game_end events.
ALTER TABLE players ADD COLUMN best_score numeric;
CREATE INDEX players_first_day ON players (tenant_id, game_id, first_day);
CREATE INDEX players_best_score ON players (tenant_id, game_id, best_score DESC) WHERE best_score IS NOT NULL;
CREATE INDEX sessions_started ON sessions (tenant_id, game_id, started_at) INCLUDE (ended_at);

-- Events per UTC day, type and custom name ('' for events without one).
CREATE TABLE event_days (
    tenant_id   uuid NOT NULL,
    game_id     uuid NOT NULL,
    day         date NOT NULL,
    event_type  text NOT NULL,
    event_name  text NOT NULL DEFAULT '',
    events      bigint NOT NULL DEFAULT 0,
    revenue_usd numeric(18, 6) NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, game_id, day, event_type, event_name)
);

-- The same figures for the data stored before this revision.
UPDATE players AS p SET first_day = d.first_day
FROM (SELECT tenant_id, game_id, player_id, min(day) AS first_day FROM player_days GROUP BY 1, 2, 3) AS d
WHERE p.tenant_id = d.tenant_id AND p.game_id = d.game_id AND p.player_id = d.player_id;

UPDATE players AS p SET best_score = s.best_score
FROM (SELECT tenant_id, game_id, player_id, max((properties->>'score')::numeric) AS best_score FROM events
      WHERE (event_type = 'level_complete' OR (event_type = 'custom' AND event_name = 'game_end'))
        AND jsonb_typeof(properties->'score') = 'number'
      GROUP BY 1, 2, 3) AS s
WHERE p.tenant_id = s.tenant_id AND p.game_id = s.game_id AND p.player_id = s.player_id;

-- Sessions are play: an identify (a profile update) no longer opens or stretches one.
DELETE FROM sessions;
INSERT INTO sessions (tenant_id, game_id, session_id, player_id, started_at, ended_at, events)
SELECT tenant_id, game_id, session_id, min(player_id), min(event_time), max(event_time), count(*)
FROM events WHERE session_id IS NOT NULL AND event_type <> 'identify' GROUP BY 1, 2, 3;

INSERT INTO event_days (tenant_id, game_id, day, event_type, event_name, events, revenue_usd)
SELECT tenant_id, game_id, (event_time AT TIME ZONE 'UTC')::date, event_type, coalesce(event_name, ''),
       count(*), coalesce(sum(revenue_usd), 0)
FROM events GROUP BY 1, 2, 3, 4, 5;
"""

ROLES = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} NOLOGIN NOINHERIT NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{TRUSTED_ROLE}') THEN
        CREATE ROLE {TRUSTED_ROLE} NOLOGIN NOBYPASSRLS;
    END IF;
END
$$;
GRANT {APP_ROLE} TO CURRENT_USER;
GRANT {TRUSTED_ROLE} TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO {APP_ROLE};
"""


def _secure(table: str) -> str:
    return f"""
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {table}
    USING (tenant_id = {TENANT_OF_TRANSACTION}) WITH CHECK (tenant_id = {TENANT_OF_TRANSACTION});
CREATE POLICY trusted_workers ON {table} TO {TRUSTED_ROLE} USING (true) WITH CHECK (true);
GRANT SELECT ON {table} TO {APP_ROLE};
"""


def upgrade() -> None:
    op.execute(ROLLUPS)
    op.execute(ROLES)
    op.execute("".join(_secure(table) for table in TENANT_TABLES))


def downgrade() -> None:
    for table in TENANT_TABLES:
        op.execute(
            f"DROP POLICY IF EXISTS tenant_isolation ON {table}; DROP POLICY IF EXISTS trusted_workers ON {table};"
            f" ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY; ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;"
            f" REVOKE ALL ON {table} FROM {APP_ROLE}"
        )
    # The roles belong to the whole cluster and other databases may use them: they are kept.
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
    op.execute(
        "DROP TABLE event_days; DROP INDEX sessions_started; DROP INDEX players_best_score;"
        " DROP INDEX players_first_day; ALTER TABLE players DROP COLUMN best_score, DROP COLUMN first_day"
    )
