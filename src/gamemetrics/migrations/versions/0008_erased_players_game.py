"""Tombstones indexed by game, so the processor asks once per batch whether a game has any.

Most games have no erased player at all; for them the processor skips hashing every player of
the batch (about a seventh of its time) and looks tombstones up only for the games that have some.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX erased_players_game ON erased_players (tenant_id, game_id)")


def downgrade() -> None:
    op.execute("DROP INDEX erased_players_game")
