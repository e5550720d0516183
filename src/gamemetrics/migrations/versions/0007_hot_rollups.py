"""Room for in-place (HOT) updates of the rollups the processor rewrites on every batch.

Each batch updates a row of `players`, `player_days` and `sessions` for most of its events. With
free space in the page and no indexed column changed, PostgreSQL rewrites the row beside the old
one without touching any index (a HOT update); full pages, or a changed indexed column, mean a
new entry in every index. So those tables keep 30% of each page free, and `sessions_started`
no longer carries `ended_at` (which changes on nearly every update). Existing pages get the room
when rewritten (VACUUM FULL or pg_repack); new ones at once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TABLES = ("players", "player_days", "sessions")


def upgrade() -> None:
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")
    op.execute("DROP INDEX sessions_started")
    op.execute("CREATE INDEX sessions_started ON sessions (tenant_id, game_id, started_at)")


def downgrade() -> None:
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    op.execute("DROP INDEX sessions_started")
    op.execute("CREATE INDEX sessions_started ON sessions (tenant_id, game_id, started_at) INCLUDE (ended_at)")
