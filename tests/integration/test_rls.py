"""Row-level security, the second wall: SQL without any tenant filter, run as the analytics role
with one tenant's setting, sees that tenant's rows and nothing else; with no setting, nothing.

The rows are written as the trusted owner (as the processor writes them), then read back the way
the analytics API reads: `SET LOCAL ROLE gamemetrics_app` and the tenant set for the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import pytest

from gamemetrics.adapters.postgres.embedded import EmbeddedPostgres

APP_ROLE = "gamemetrics_app"
TENANT_TABLES = (
    "tenants", "games", "write_keys", "events", "event_ids", "players", "player_days", "minute_stats",
    "sessions", "dead_letters", "game_counters", "event_days", "game_days",
)


@dataclass(frozen=True)
class Studio:
    tenant_id: uuid.UUID
    game_id: uuid.UUID


def _fill(conn: psycopg.Connection, studio: Studio, rows: int) -> None:
    """`rows` rows of this tenant in every tenant table."""
    t, g = studio.tenant_id, studio.game_id
    at = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 'studio')", (t,))
    conn.execute("INSERT INTO games (game_id, tenant_id, name) VALUES (%s, %s, 'game')", (g, t))
    conn.execute("SELECT gm_ensure_event_partition(%s::date)", (at.date(),))
    for i in range(rows):
        player, event_id = f"p{i}", uuid.uuid4()
        conn.execute(
            "INSERT INTO write_keys (key_id, tenant_id, game_id, key_hash, key_prefix) VALUES (%s, %s, %s, %s, 'gm_')",
            (uuid.uuid4(), t, g, uuid.uuid4().bytes),
        )
        conn.execute(
            "INSERT INTO events (tenant_id, game_id, event_id, event_type, player_id, session_id, event_time,"
            " received_at, source) VALUES (%s, %s, %s, 'session_start', %s, %s, %s, %s, 'live')",
            (t, g, event_id, player, f"s{i}", at, at),
        )
        conn.execute("INSERT INTO event_ids VALUES (%s, %s)", (t, event_id))
        conn.execute(
            "INSERT INTO players (tenant_id, game_id, player_id, first_seen, last_seen, first_day)"
            " VALUES (%s, %s, %s, %s, %s, %s)", (t, g, player, at, at, at.date()),
        )
        conn.execute(
            "INSERT INTO player_days (tenant_id, game_id, day, player_id, first_event_at, last_event_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)", (t, g, at.date(), player, at, at),
        )
        conn.execute(
            "INSERT INTO minute_stats (tenant_id, game_id, minute, event_type) VALUES (%s, %s, %s, %s)",
            (t, g, at, f"type{i}"),
        )
        conn.execute(
            "INSERT INTO sessions (tenant_id, game_id, session_id, player_id, started_at, ended_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)", (t, g, f"s{i}", player, at, at),
        )
        conn.execute(
            "INSERT INTO dead_letters (tenant_id, game_id, source_topic, source_partition, source_offset, reason,"
            " payload) VALUES (%s, %s, 'raw', 0, %s, 'bad', '')", (t, g, uuid.uuid4().int % 2**62),
        )
        conn.execute(
            "INSERT INTO event_days (tenant_id, game_id, day, event_type) VALUES (%s, %s, %s, %s)",
            (t, g, at.date(), f"type{i}"),
        )
        conn.execute("INSERT INTO game_days (tenant_id, game_id, day) VALUES (%s, %s, %s::date - %s)",
                     (t, g, at.date(), i))
    conn.execute("INSERT INTO game_counters (tenant_id, game_id, events_stored) VALUES (%s, %s, %s)", (t, g, rows))


@pytest.fixture
def studios(database_url: str) -> Iterator[tuple[Studio, Studio]]:
    a = Studio(uuid.uuid4(), uuid.uuid4())
    b = Studio(uuid.uuid4(), uuid.uuid4())
    with psycopg.connect(database_url, autocommit=True) as conn:
        _fill(conn, a, 2)
        _fill(conn, b, 3)
        # A dead letter whose tenant could not be read belongs to no tenant: the API never sees it.
        conn.execute(
            "INSERT INTO dead_letters (source_topic, source_partition, source_offset, reason, payload)"
            " VALUES ('raw', 1, 1, 'unreadable', '')"
        )
    yield a, b


def _as_app(conn: psycopg.Connection, tenant: uuid.UUID | str | None) -> None:
    """What the analytics API does at the start of each transaction."""
    conn.execute("SELECT set_config('role', %s, true)", (APP_ROLE,))
    if tenant is not None:
        conn.execute("SELECT set_config('gamemetrics.tenant_id', %s, true)", (str(tenant),))


def _counts(conn: psycopg.Connection) -> dict[str, int]:
    return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TENANT_TABLES}


def test_every_tenant_table_has_row_level_security_forced(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, count(p.polname)"
            " FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid"
            " WHERE c.relname = ANY(%s) AND c.relnamespace = 'public'::regnamespace GROUP BY 1, 2, 3",
            (list(TENANT_TABLES),),
        ).fetchall()
    assert {r[0] for r in rows} == set(TENANT_TABLES)
    for name, enabled, forced, policies in rows:
        assert enabled and forced and policies == 2, f"{name}: rls {enabled}, forced {forced}, {policies} policies"


def test_every_table_with_a_tenant_column_has_row_level_security_forced(database_url: str) -> None:
    """Tables added by later services too: a table holding a tenant's rows without a forced
    policy would show them to every tenant's transactions."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, count(p.polname)"
            " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'"
            " LEFT JOIN pg_policy p ON p.polrelid = c.oid"
            " WHERE c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace"
            " AND NOT c.relispartition GROUP BY 1, 2, 3"
        ).fetchall()
    assert {r[0] for r in rows} >= set(TENANT_TABLES) - {"tenants"}
    unprotected = [f"{name}: rls {enabled}, forced {forced}, {policies} policies"
                   for name, enabled, forced, policies in rows if not (enabled and forced and policies)]
    assert unprotected == []


def test_sql_without_tenant_filter_sees_only_the_transactions_tenant(
    database_url: str, studios: tuple[Studio, Studio]
) -> None:
    a, b = studios
    with psycopg.connect(database_url) as conn:
        with conn.transaction():
            _as_app(conn, b.tenant_id)
            assert conn.execute("SELECT current_user").fetchone()[0] == APP_ROLE
            seen_by_b = _counts(conn)
            # Hand-written queries that name tenant A outright, under B's setting, return nothing.
            for table in TENANT_TABLES:
                leaked = conn.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", (a.tenant_id,))
                assert leaked.fetchone()[0] == 0, f"{table} leaked tenant A's rows to tenant B"
            assert conn.execute(
                "SELECT count(*) FROM events e JOIN players p USING (player_id) WHERE e.game_id = %s", (a.game_id,)
            ).fetchone()[0] == 0
        with conn.transaction():
            _as_app(conn, a.tenant_id)
            seen_by_a = _counts(conn)
            games = conn.execute("SELECT tenant_id, game_id FROM games").fetchall()
        with conn.transaction():
            everything = _counts(conn)  # the owner, outside the role: the trusted view
    expected_b = {t: 1 if t in ("tenants", "games", "game_counters") else 3 for t in TENANT_TABLES}
    expected_a = {t: 1 if t in ("tenants", "games", "game_counters") else 2 for t in TENANT_TABLES}
    assert seen_by_b == expected_b
    assert seen_by_a == expected_a
    assert games == [(a.tenant_id, a.game_id)]
    assert everything["events"] == 5 and everything["dead_letters"] == 6


@pytest.mark.parametrize("setting", [None, "", "00000000-0000-0000-0000-000000000000"])
def test_without_a_tenant_the_role_sees_nothing(
    database_url: str, studios: tuple[Studio, Studio], setting: str | None
) -> None:
    with psycopg.connect(database_url) as conn:
        if setting == "":
            # A session that set the variable before reads '' once its transaction is over.
            with conn.transaction():
                _as_app(conn, studios[0].tenant_id)
        with conn.transaction():
            _as_app(conn, setting)
            assert set(_counts(conn).values()) == {0}


def test_the_role_cannot_write_or_reach_partitions_or_the_bus(
    database_url: str, studios: tuple[Studio, Studio]
) -> None:
    a, _ = studios
    attempts = [
        ("INSERT INTO games (game_id, tenant_id, name) VALUES (gen_random_uuid(), %s, 'x')", (a.tenant_id,)),
        ("UPDATE players SET events = 0", None),
        ("DELETE FROM events", None),
        ("SELECT count(*) FROM events_20261120", None),
        ("SELECT count(*) FROM bus_log", None),
    ]
    with psycopg.connect(database_url) as conn:
        for sql, params in attempts:
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                _as_app(conn, a.tenant_id)
                conn.execute(sql, params)


def test_a_trusted_worker_that_is_not_superuser_keeps_working(
    pg_server: EmbeddedPostgres, database_url: str, studios: tuple[Studio, Studio]
) -> None:
    """On a managed server the owner is no superuser: FORCE applies to it, and membership of
    gamemetrics_trusted is what lets the processor and admin commands see and write every tenant."""
    role = f"gm_worker_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
    url = database_url.replace("postgres:@", f"{role}:@", 1)
    assert url != database_url
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0  # not trusted yet
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"GRANT gamemetrics_trusted TO {role}")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 5
            conn.execute("UPDATE game_counters SET events_stored = events_stored + 1")  # both games
            assert conn.execute("SELECT sum(events_stored) FROM game_counters").fetchone()[0] == 5 + 2
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
