"""The store side of the processor: one transaction per batch writes events, rollups and dead letters.

De-duplication is the `event_ids` insert: only events whose id is new for the tenant are stitched
and go on to the events table and the rollups, so a batch replayed after a crash changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, timedelta

import msgspec
from psycopg import AsyncConnection, postgres
from psycopg.adapt import Dumper
from psycopg.errors import UniqueViolation
from psycopg.pq import Format
from psycopg_pool import AsyncConnectionPool

from gamemetrics.gdpr.tombstones import ERASURE_LOCK, Tombstones
from gamemetrics.services.processor.columns import BATCH_COLUMNS, EVENT_COLUMNS, batch_rows
from gamemetrics.services.processor.decode import DeadLetter, EventRow
from gamemetrics.services.processor.stitching import GameKey, PlayerKey, PlayerState, by_game, stitch

_COLUMN_LIST = EVENT_COLUMNS.sql_list
_BATCH_COLUMN_LIST = BATCH_COLUMNS.sql_list


class _JsonbBytesDumper(Dumper):
    """JSON text already encoded (properties, context) as jsonb's binary form: a version byte, then
    the text. psycopg's own jsonb dumper would encode the bytes again, as a JSON string."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: bytes) -> bytes:
        return b"\x01" + obj


# The batch's rows, typed as in `events`, then its profile columns. Declared from the column spec
# rather than `LIKE events`: LIKE would lock `events` from the start of the batch, and a batch that
# holds that lock while another processor creates a day's partition (which locks `events`
# exclusively) deadlocks with it.
_NEW_EVENTS = f"CREATE TEMP TABLE new_events ({BATCH_COLUMNS.ddl}) ON COMMIT DROP"

_ROLLUPS = """
-- Rows of one player (sessions, players, player-days) first; rows every processor shares (a game's
-- days, minutes, event types and counters) last, each statement in key order: concurrent
-- processors then wait for each other only at the end of a batch, and always in the same order,
-- so they never deadlock.
INSERT INTO sessions AS s (tenant_id, game_id, session_id, player_id, started_at, ended_at, events)
SELECT tenant_id, game_id, session_id, min(player_id), min(event_time), max(event_time), count(*)
FROM new_events WHERE session_id IS NOT NULL AND event_type <> 'identify' GROUP BY 1, 2, 3
ON CONFLICT (tenant_id, game_id, session_id) DO UPDATE SET
    started_at = least(s.started_at, excluded.started_at), ended_at = greatest(s.ended_at, excluded.ended_at),
    events = s.events + excluded.events;

INSERT INTO players AS p (tenant_id, game_id, player_id, first_seen, last_seen, platform, os, country,
                          app_version, events, sessions, lifetime_revenue_usd, current_session_id, first_day,
                          best_score)
-- The latest context and session come from the one row stitching marked per player, rather than
-- from sorting each player's events once for each of the five.
SELECT tenant_id, game_id, player_id, min(event_time), max(event_time),
       max(latest_platform), max(latest_os), max(latest_country), max(latest_app_version),
       count(*), count(*) FILTER (WHERE event_type = 'session_start'),
       coalesce(sum(revenue_usd) FILTER (WHERE event_type = 'purchase'), 0),
       max(session_id) FILTER (WHERE player_latest),
       min((event_time AT TIME ZONE 'UTC')::date) FILTER (WHERE event_type <> 'identify'),
       max((properties->>'score')::numeric) FILTER (
           WHERE (event_type = 'level_complete' OR (event_type = 'custom' AND event_name = 'game_end'))
             AND jsonb_typeof(properties->'score') = 'number')
FROM new_events GROUP BY 1, 2, 3
ON CONFLICT (tenant_id, game_id, player_id) DO UPDATE SET
    first_seen = least(p.first_seen, excluded.first_seen),
    -- least and greatest skip NULLs: a batch without activity or scores keeps what was there.
    first_day = least(p.first_day, excluded.first_day), best_score = greatest(p.best_score, excluded.best_score),
    last_seen = greatest(p.last_seen, excluded.last_seen),
    platform = CASE WHEN excluded.last_seen >= p.last_seen
                    THEN coalesce(excluded.platform, p.platform) ELSE p.platform END,
    os = CASE WHEN excluded.last_seen >= p.last_seen THEN coalesce(excluded.os, p.os) ELSE p.os END,
    country = CASE WHEN excluded.last_seen >= p.last_seen THEN coalesce(excluded.country, p.country) ELSE p.country END,
    app_version = CASE WHEN excluded.last_seen >= p.last_seen
                       THEN coalesce(excluded.app_version, p.app_version) ELSE p.app_version END,
    current_session_id = CASE WHEN excluded.last_seen >= p.last_seen
                              THEN excluded.current_session_id ELSE p.current_session_id END,
    events = p.events + excluded.events, sessions = p.sessions + excluded.sessions,
    lifetime_revenue_usd = p.lifetime_revenue_usd + excluded.lifetime_revenue_usd, updated_at = now();

-- Every identify of the batch merges its traits into the profile, in event-time order: a trait
-- sent twice keeps its latest value, and traits only an earlier identify carried are kept too.
UPDATE players AS p SET traits = p.traits || i.traits
FROM (SELECT tenant_id, game_id, player_id, jsonb_object_agg(t.key, t.value ORDER BY event_time) AS traits
      FROM new_events, jsonb_each(properties) AS t
      WHERE event_type = 'identify' GROUP BY 1, 2, 3) AS i
WHERE p.tenant_id = i.tenant_id AND p.game_id = i.game_id AND p.player_id = i.player_id;

-- Player-days, and from what the upsert returns the game's daily totals: a row without an old
-- version is a new player-day, one whose old revenue was zero and new is above zero a new payer.
-- (Joining the returned rows back to the batch instead would sort both sides.)
WITH days AS (
    INSERT INTO player_days AS d (tenant_id, game_id, day, player_id, events, sessions, playtime_seconds,
                                  purchases, revenue_usd, first_event_at, last_event_at)
    SELECT tenant_id, game_id, (event_time AT TIME ZONE 'UTC')::date, player_id, count(*),
           count(*) FILTER (WHERE event_type = 'session_start'),
           coalesce(sum((properties->>'duration_seconds')::numeric) FILTER (WHERE event_type = 'session_end'), 0),
           count(*) FILTER (WHERE event_type = 'purchase'),
           coalesce(sum(revenue_usd) FILTER (WHERE event_type = 'purchase'), 0), min(event_time), max(event_time)
    FROM new_events WHERE event_type <> 'identify' GROUP BY 1, 2, 3, 4
    ON CONFLICT (tenant_id, game_id, day, player_id) DO UPDATE SET
        events = d.events + excluded.events, sessions = d.sessions + excluded.sessions,
        playtime_seconds = d.playtime_seconds + excluded.playtime_seconds,
        purchases = d.purchases + excluded.purchases, revenue_usd = d.revenue_usd + excluded.revenue_usd,
        first_event_at = least(d.first_event_at, excluded.first_event_at),
        last_event_at = greatest(d.last_event_at, excluded.last_event_at)
    RETURNING new.tenant_id, new.game_id, new.day, old.events IS NULL AS new_day,
              new.revenue_usd > 0 AND coalesce(old.revenue_usd, 0) = 0 AS new_payer,
              new.purchases - coalesce(old.purchases, 0) AS purchases,
              new.revenue_usd - coalesce(old.revenue_usd, 0) AS revenue
)
INSERT INTO game_days AS g (tenant_id, game_id, day, active_players, payers, purchases, revenue_usd)
SELECT tenant_id, game_id, day, count(*) FILTER (WHERE new_day), count(*) FILTER (WHERE new_payer),
       sum(purchases), sum(revenue)
FROM days GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
ON CONFLICT (tenant_id, game_id, day) DO UPDATE SET
    active_players = g.active_players + excluded.active_players, payers = g.payers + excluded.payers,
    purchases = g.purchases + excluded.purchases, revenue_usd = g.revenue_usd + excluded.revenue_usd;

INSERT INTO minute_stats AS m (tenant_id, game_id, minute, event_type, events, revenue_usd)
SELECT tenant_id, game_id, date_trunc('minute', event_time), event_type, count(*), coalesce(sum(revenue_usd), 0)
FROM new_events GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (tenant_id, game_id, minute, event_type) DO UPDATE SET
    events = m.events + excluded.events, revenue_usd = m.revenue_usd + excluded.revenue_usd;

INSERT INTO event_days AS e (tenant_id, game_id, day, event_type, event_name, events, revenue_usd)
SELECT tenant_id, game_id, (event_time AT TIME ZONE 'UTC')::date, event_type, coalesce(event_name, ''), count(*),
       coalesce(sum(revenue_usd), 0)
FROM new_events GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (tenant_id, game_id, day, event_type, event_name) DO UPDATE SET
    events = e.events + excluded.events, revenue_usd = e.revenue_usd + excluded.revenue_usd;

INSERT INTO game_counters AS c (tenant_id, game_id, events_stored)
SELECT tenant_id, game_id, count(*) FROM new_events GROUP BY 1, 2 ORDER BY 1, 2
ON CONFLICT (tenant_id, game_id) DO UPDATE SET events_stored = c.events_stored + excluded.events_stored;
"""


@dataclass(frozen=True, slots=True)
class SinkResult:
    """What one batch changed."""

    stored: int
    duplicates: int
    dead_lettered: int
    # Events of erased players: dead-lettered without their bytes, never stored or published.
    erased: tuple[DeadLetter, ...] = ()
    erased_players: frozenset[PlayerKey] = frozenset()


class EventSink:
    """Writes a decoded batch in one transaction."""

    def __init__(self, pool: AsyncConnectionPool, *, session_gap: timedelta,
                 tombstones: Tombstones | None = None) -> None:
        self._pool = pool
        self._gap = session_gap
        self._tombstones = tombstones

    async def write(self, rows: Sequence[EventRow], dead: Sequence[DeadLetter]) -> SinkResult:
        rows = _first_of_each_id(rows)
        erased: list[DeadLetter] = []
        gone: frozenset[PlayerKey] = frozenset()
        if rows:
            await self._ensure_partitions({r.event_time.astimezone(UTC).date() for r in rows})
        async with self._pool.connection() as conn, conn.transaction():
            if rows and self._tombstones is not None:
                # Shared: an erasure (exclusive) waits for this batch, or this batch for the erasure.
                await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (ERASURE_LOCK,))
            stored, gone = await self._write_events(conn, rows, erased) if rows else (0, gone)
            dead = [*dead, *erased]
            dead_lettered = await self._write_dead_letters(conn, dead) if dead else 0
        return SinkResult(stored=stored, duplicates=len(rows) - stored - len(erased), dead_lettered=dead_lettered,
                          erased=tuple(erased), erased_players=gone)

    async def _ensure_partitions(self, days: set[date]) -> None:
        # In a transaction of its own: creating a partition locks `events` exclusively, and every
        # batch being written holds a lock on `events` until it commits, so creating one inside a
        # batch could deadlock with another processor's batch.
        async with self._pool.connection() as conn:
            await conn.execute("SELECT gm_ensure_event_partition(day) FROM unnest(%s::date[]) AS day", (sorted(days),))

    async def _drop_erased(self, conn: AsyncConnection, fresh: list[EventRow],
                           erased: list[DeadLetter]) -> tuple[list[EventRow], frozenset[PlayerKey]]:
        """The rows whose player has no tombstone; the others become redacted dead letters in `erased`
        and give their ids back (two queries per batch, whatever its size)."""
        if self._tombstones is None:
            return fresh, frozenset()
        games = set(by_game(fresh))
        cur = await conn.execute(
            "SELECT DISTINCT tenant_id, game_id FROM erased_players WHERE tenant_id = ANY(%s) AND game_id = ANY(%s)",
            (list({t for t, _ in games}), list({g for _, g in games})),
        )
        with_tombstones = {(t, g) for t, g in await cur.fetchall()} & games
        if not with_tombstones:  # the common case: no player of these games was ever erased
            return fresh, frozenset()
        hashes = self._tombstones.hashes(
            (r.tenant_id, r.game_id, r.player_id) for r in fresh if (r.tenant_id, r.game_id) in with_tombstones)
        cur = await conn.execute("SELECT player_hash FROM erased_players WHERE player_hash = ANY(%s)", (list(hashes),))
        gone = frozenset(hashes[bytes(h)] for (h,) in await cur.fetchall())
        if not gone:
            return fresh, gone
        dropped = [r for r in fresh if (r.tenant_id, r.game_id, r.player_id) in gone]
        await conn.execute(
            "DELETE FROM event_ids WHERE (tenant_id, event_id) IN (SELECT * FROM unnest(%s::uuid[], %s::uuid[]))",
            ([r.tenant_id for r in dropped], [r.event_id for r in dropped]),
        )
        erased.extend(erased_letter(r) for r in dropped if r.record is not None)
        return [r for r in fresh if (r.tenant_id, r.game_id, r.player_id) not in gone], gone

    async def _write_events(self, conn: AsyncConnection, rows: list[EventRow],
                            erased: list[DeadLetter]) -> tuple[int, frozenset[PlayerKey]]:
        # Claim the ids first: a concurrent writer of the same ids (an old owner of the partition
        # finishing late) holds their index entries until it commits, so each id is claimed by
        # exactly one transaction, and player state is read only after the claim, never stale.
        fresh = await _claim_ids(conn, rows)
        # After the claim: the tombstones are read once this batch holds the erasure lock.
        fresh, gone = await self._drop_erased(conn, fresh, erased)
        if not fresh:
            return 0, gone
        games = by_game(fresh)
        stitch(games, await _player_states(conn, games), self._gap)
        await conn.execute(_NEW_EVENTS)
        cur = conn.cursor()
        # Binary COPY: the client formats no text, and the server parses no uuids or times.
        cur.adapters.register_dumper(bytes, _JsonbBytesDumper)
        async with cur.copy(f"COPY new_events ({_BATCH_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(BATCH_COLUMNS.copy_types)
            for row in batch_rows(fresh):
                await copy.write_row(row)
        await cur.execute(f"INSERT INTO events ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM new_events")
        await cur.execute(_ROLLUPS)
        return len(fresh), gone

    async def _write_dead_letters(self, conn: AsyncConnection, dead: Sequence[DeadLetter]) -> int:
        cur = await conn.execute(
            "WITH added AS ("
            " INSERT INTO dead_letters (tenant_id, game_id, event_id, source_topic, source_partition,"
            "  source_offset, reason, payload)"
            " SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::int[], %s::bigint[],"
            "  %s::text[], %s::bytea[])"
            " ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING"
            " RETURNING tenant_id, game_id)"
            " , counted AS (INSERT INTO game_counters AS c (tenant_id, game_id, events_dead_lettered)"
            "  SELECT tenant_id, game_id, count(*) FROM added WHERE tenant_id IS NOT NULL AND game_id IS NOT NULL"
            "  GROUP BY 1, 2 ON CONFLICT (tenant_id, game_id)"
            "  DO UPDATE SET events_dead_lettered = c.events_dead_lettered + excluded.events_dead_lettered)"
            " SELECT count(*) FROM added",
            (
                [d.tenant_id for d in dead],
                [d.game_id for d in dead],
                [d.event_id for d in dead],
                [d.record.topic for d in dead],
                [d.record.partition for d in dead],
                [d.record.offset for d in dead],
                [d.reason for d in dead],
                [d.value for d in dead],
            ),
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


def erased_letter(row: EventRow) -> DeadLetter:
    """The dead letter of an erased player's late event: what happened, never who it was."""
    assert row.record is not None
    redacted = msgspec.json.encode({
        "tenant_id": row.tenant_id, "game_id": row.game_id, "event_id": row.event_id, "event_type": row.event_type,
        "timestamp": row.event_time, "received_at": row.received_at, "player": "erased",
    })
    return DeadLetter(row.record, "the player was erased (GDPR): an event that arrives after the erasure is"
                      " dropped, and only this redacted copy is kept", row.tenant_id, row.game_id,
                      str(row.event_id), redacted)


async def _claim_ids(conn: AsyncConnection, rows: Sequence[EventRow]) -> list[EventRow]:
    """The rows of `rows` whose (tenant, event id) no transaction had stored before this one.

    Nearly every batch is all new, and a plain binary COPY of its ids costs less than an
    `INSERT ... ON CONFLICT`; a batch holding an id already stored (a replay after a crash, a
    client's retry) fails that COPY on the unique key, and only then is it claimed with
    `ON CONFLICT DO NOTHING`, which returns the ids that were new."""
    copy_ids = "COPY event_ids (tenant_id, event_id) FROM STDIN (FORMAT BINARY)"
    try:
        # In a savepoint: a failed COPY leaves the batch's transaction usable.
        async with conn.transaction(), conn.cursor().copy(copy_ids) as copy:
            copy.set_types(("uuid", "uuid"))
            for r in rows:
                await copy.write_row((r.tenant_id, r.event_id))
        return list(rows)
    except UniqueViolation:
        pass
    claimed: set[tuple[int, int]] = set()
    for tenant_id, event_ids in _ids_by_tenant(rows).items():  # a batch is nearly always one tenant's
        cur = await conn.execute(
            "INSERT INTO event_ids (tenant_id, event_id) SELECT %s, unnest(%s::uuid[])"
            " ON CONFLICT DO NOTHING RETURNING event_id",
            (tenant_id, event_ids),
        )
        claimed.update((tenant_id.int, event_id.int) for (event_id,) in await cur.fetchall())
    return [r for r in rows if _id_key(r) in claimed]


def _ids_by_tenant(rows: Sequence[EventRow]) -> dict[uuid.UUID, list[uuid.UUID]]:
    ids: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in rows:
        ids.setdefault(row.tenant_id, []).append(row.event_id)
    return ids


def _id_key(row: EventRow) -> tuple[int, int]:
    """The de-duplication key as integers: they hash in C, a UUID's hash is a Python method."""
    return row.tenant_id.int, row.event_id.int


def _first_of_each_id(rows: Sequence[EventRow]) -> list[EventRow]:
    """Drop repeats of an event id within one batch (the first one wins, as across batches)."""
    seen: set[tuple[int, int]] = set()
    unique: list[EventRow] = []
    for row in rows:
        key = _id_key(row)
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


async def _player_states(conn: AsyncConnection,
                         games: Mapping[GameKey, Sequence[EventRow]]) -> dict[GameKey, dict[str, PlayerState]]:
    # One primary-key lookup per game with `player_id = ANY(...)`: a join against unnest() leaves the
    # planner guessing the batch's size, and once it guesses small it loops over every player.
    states: dict[GameKey, dict[str, PlayerState]] = {}
    for (tenant_id, game_id), rows in games.items():
        # Both ways in binary: a text array makes psycopg check every id for quoting in Python, and
        # binary results skip parsing the timestamps from text.
        cur = await conn.execute(
            "SELECT player_id, last_seen, current_session_id FROM players"
            " WHERE tenant_id = %s AND game_id = %s AND player_id = ANY(%b)",
            (tenant_id, game_id, list({r.player_id for r in rows})), binary=True,
        )
        states[(tenant_id, game_id)] = {player_id: PlayerState(seen, session)
                                        for player_id, seen, session in await cur.fetchall()}
    return states
