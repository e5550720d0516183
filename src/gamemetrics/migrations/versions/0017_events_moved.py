"""game_counters.events_moved: event rows the retention runs took out of the store or brought back.

The analytics caches key their answers by the game's counters. `events_stored` only grows as the
processor stores events; an archive run deleting a day's rows and a restore bringing them back
change what `funnel` and the per-player breakdowns read, so they count their rows here. It only
grows, so a version never comes back to one an older answer was kept under.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE game_counters ADD COLUMN events_moved bigint NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE game_counters DROP COLUMN events_moved")
