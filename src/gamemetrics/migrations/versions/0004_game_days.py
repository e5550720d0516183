"""Daily totals per game (active players, payers, purchases, revenue), so daily metrics read one
row per day whatever the number of players; and a counter of deleted players, so answers kept
by the analytics API change when a player is erased.

The processor keeps `game_days` in the transaction that writes `player_days`: a player-day row
it inserts adds an active player, a player-day whose revenue leaves zero adds a payer. Deleting
player-day rows (a GDPR erasure) takes them out again, through a trigger, so the daily totals
always equal the sums over `player_days`. Run this revision with the processors stopped (as
`gamemetrics up` does): rows written by an older processor while it runs would be missing from
the totals.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TENANT_OF_TRANSACTION = "nullif(current_setting('gamemetrics.tenant_id', true), '')::uuid"

SCHEMA = f"""
CREATE TABLE game_days (
    tenant_id      uuid NOT NULL,
    game_id        uuid NOT NULL,
    day            date NOT NULL,
    active_players integer NOT NULL DEFAULT 0,
    payers         integer NOT NULL DEFAULT 0,
    purchases      integer NOT NULL DEFAULT 0,
    revenue_usd    numeric(18, 6) NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, game_id, day)
);

INSERT INTO game_days (tenant_id, game_id, day, active_players, payers, purchases, revenue_usd)
SELECT tenant_id, game_id, day, count(*), count(*) FILTER (WHERE revenue_usd > 0), sum(purchases), sum(revenue_usd)
FROM player_days GROUP BY 1, 2, 3;

ALTER TABLE game_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE game_days FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON game_days
    USING (tenant_id = {TENANT_OF_TRANSACTION}) WITH CHECK (tenant_id = {TENANT_OF_TRANSACTION});
CREATE POLICY trusted_workers ON game_days TO gamemetrics_trusted USING (true) WITH CHECK (true);
GRANT SELECT ON game_days TO gamemetrics_app;

ALTER TABLE game_counters ADD COLUMN players_deleted bigint NOT NULL DEFAULT 0;

CREATE FUNCTION gm_player_day_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE game_days SET active_players = active_players - 1,
                         payers = payers - CASE WHEN OLD.revenue_usd > 0 THEN 1 ELSE 0 END,
                         purchases = purchases - OLD.purchases, revenue_usd = revenue_usd - OLD.revenue_usd
    WHERE tenant_id = OLD.tenant_id AND game_id = OLD.game_id AND day = OLD.day;
    RETURN NULL;
END;
$$;
CREATE TRIGGER player_days_deleted AFTER DELETE ON player_days
    FOR EACH ROW EXECUTE FUNCTION gm_player_day_deleted();

CREATE FUNCTION gm_player_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO game_counters AS c (tenant_id, game_id, players_deleted) VALUES (OLD.tenant_id, OLD.game_id, 1)
    ON CONFLICT (tenant_id, game_id) DO UPDATE SET players_deleted = c.players_deleted + 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER players_deleted AFTER DELETE ON players
    FOR EACH ROW EXECUTE FUNCTION gm_player_deleted();
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER players_deleted ON players; DROP FUNCTION gm_player_deleted();"
        " DROP TRIGGER player_days_deleted ON player_days; DROP FUNCTION gm_player_day_deleted();"
        " ALTER TABLE game_counters DROP COLUMN players_deleted; DROP TABLE game_days"
    )
