"""Row-level security on the recommender's tables: forced, with the two policies every tenant table
has, and a transaction naming one tenant sees none of another's rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg

TABLES = ("rec_items", "rec_interactions", "rec_weights", "rec_models", "rec_feedback")


def _fill(conn: psycopg.Connection, tenant: uuid.UUID, game: uuid.UUID) -> None:
    conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 'studio')", (tenant,))
    conn.execute("INSERT INTO games (game_id, tenant_id, name) VALUES (%s, %s, 'game')", (game, tenant))
    conn.execute("INSERT INTO rec_items (tenant_id, game_id, item_id) VALUES (%s, %s, 'sword')", (tenant, game))
    conn.execute("INSERT INTO rec_interactions (tenant_id, event_id, game_id, player_id, item_id, event_type, at)"
                 " VALUES (%s, %s, %s, 'p', 'sword', 'purchase', %s)", (tenant, uuid.uuid4(), game, datetime.now(UTC)))
    conn.execute("INSERT INTO rec_weights VALUES (%s, %s, 'purchase', 3)", (tenant, game))
    conn.execute("INSERT INTO rec_models (tenant_id, game_id, version, algorithm, factors, players, items,"
                 " interactions) VALUES (%s, %s, 1, 'als', 4, 1, 1, 1)", (tenant, game))
    conn.execute("INSERT INTO rec_feedback (tenant_id, game_id, recommendation_id, kind, item_id, player_id, source)"
                 " VALUES (%s, %s, %s, 'shown', 'sword', 'p', 'popular')", (tenant, game, uuid.uuid4()))


def test_the_recommenders_tables_keep_tenants_apart(database_url: str) -> None:
    a, b = (uuid.uuid4(), uuid.uuid4()), (uuid.uuid4(), uuid.uuid4())
    with psycopg.connect(database_url, autocommit=True) as conn:
        _fill(conn, *a)
        _fill(conn, *b)
        rows = conn.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, count(p.polname) FROM pg_class c"
            " LEFT JOIN pg_policy p ON p.polrelid = c.oid WHERE c.relname = ANY(%s) GROUP BY 1, 2, 3",
            (list(TABLES),)).fetchall()
    assert sorted(r[0] for r in rows) == sorted(TABLES)
    assert all(enabled and forced and policies == 2 for _, enabled, forced, policies in rows), rows
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute("SELECT set_config('role', 'gamemetrics_app', true),"
                     " set_config('gamemetrics.tenant_id', %s, true)", (str(b[0]),))
        for table in TABLES:
            seen = conn.execute(f"SELECT tenant_id FROM {table}").fetchall()
            assert seen == [(b[0],)], (table, seen)
