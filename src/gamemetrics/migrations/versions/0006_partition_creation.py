"""Event partitions are created under a lock on `events` itself, not an advisory lock.

Two processors that miss the same day used to race: the second one waited on the advisory lock,
but a backend only refreshes its catalog cache when it takes a lock on a relation, so its second
look still missed the table the first had just made, and its CREATE failed ("already exists").
Waiting on the parent table's lock refreshes the cache, so the second look is exact.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION gm_ensure_event_partition(day date) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    name text := format('events_%s', to_char(day, 'YYYYMMDD'));
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN;
    END IF;
    -- Serialise creators.
    {lock};
    IF to_regclass(name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
            name, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
    END IF;
END;
$$;
"""


def upgrade() -> None:
    op.execute(_FUNCTION.replace("{lock}", "LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE"))


def downgrade() -> None:
    op.execute(_FUNCTION.replace("{lock}", "PERFORM pg_advisory_xact_lock(hashtext('gm_event_partition'))"))
