"""The analytics API on a running `gamemetrics up`, with real clients (gql over HTTP and over
WebSocket), against numbers computed independently from the raw events table in plain SQL.

Two tenants get three weeks of simulated traffic through the public ingest API. Both use the same
simulator seed and B has more players, so the two share player ids and even event ids: any query
that mixed tenants would show B's extra players or doubled counts in A's answers.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from gql import Client, gql
from gql.transport.exceptions import TransportQueryError, TransportServerError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport
from psycopg.rows import dict_row

from gamemetrics.auth.keys import public_jwk
from gamemetrics.simulator.run import SimulateOptions, run_simulation
from tests.e2e.conftest import (
    PATIENCE_S,
    RunningPlatform,
    _stop_cleanly,
    interrupted_on_failure,
    start_platform,
    wait_ready,
)
from tests.identity import platform_signing_key

pytestmark = [
    pytest.mark.timeout(240),
    # gql 4 prefers variables on the request object; the keyword reads better in these tests.
    pytest.mark.filterwarnings("ignore:Using variable_values:DeprecationWarning"),
]

DAYS = 21
PLAYERS = {"A": 90, "B": 130}
SEED = 11
STEPS = [
    {"event": "session_start"},
    {"event": "tutorial_completed"},
    {"event": "level_complete", "property": "level", "equals": "1"},
    {"event": "level_complete", "property": "level", "equals": "3"},
    {"event": "purchase"},
]
FUNNEL_WINDOW_HOURS = 48


@dataclass
class Studio:
    name: str
    tenant_id: str
    game_id: str
    live_key: str
    token: str


@dataclass
class Stack:
    platform: RunningPlatform
    studios: dict[str, Studio] = field(default_factory=dict)
    today: date = field(default_factory=lambda: datetime.now(UTC).date())

    @property
    def graphql_url(self) -> str:
        return f"{self.platform.base_url}/graphql"

    def sql(self, query: str, **params: Any) -> list[dict[str, Any]]:
        with psycopg.connect(self.platform.database_url, autocommit=True, row_factory=dict_row) as conn:
            return conn.execute(query, params).fetchall()


def _start_platform() -> RunningPlatform:
    # History loads as fast as the machine allows; the ingest tests own the rate-limit checks.
    platform = start_platform("gamemetrics-analytics-", settings={
        "GAMEMETRICS_KEY_RATE_EVENTS_PER_SECOND": "1000000", "GAMEMETRICS_KEY_RATE_BURST_EVENTS": "1000000",
        "GAMEMETRICS_AUTH_LEEWAY_SECONDS": "0", "GAMEMETRICS_LOG_LEVEL": "warning"})
    with interrupted_on_failure(platform):
        wait_ready(platform)
    return platform


def _studio(platform: RunningPlatform, name: str) -> tuple[Studio, str]:
    tenant = platform.cli("admin", "create-tenant", f"Studio {name}")["tenant_id"]
    game = platform.cli("admin", "create-game", "--tenant", tenant, f"Game {name}")["game_id"]
    live = platform.cli("admin", "create-write-key", "--game", game)["write_key"]
    history = platform.cli("admin", "create-write-key", "--game", game, "--allow-import")["write_key"]
    token = platform.cli("admin", "issue-token", "--tenant", tenant, "--scopes", "analytics:read")
    assert token["token_type"] == "Bearer" and token["scope"] == "analytics:read"
    return Studio(name, tenant, game, live, token["access_token"]), history


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    platform = _start_platform()
    stack = Stack(platform)
    try:
        for name, players in PLAYERS.items():
            studio, history = _studio(platform, name)
            stack.studios[name] = studio
            report = run_simulation(SimulateOptions(
                url=platform.base_url, write_key=studio.live_key, import_key=history, players=players, days=DAYS,
                rate=None, seed=SEED))
            # Today so far goes through /v1/events; just after midnight UTC it holds no events yet, and the
            # live path is exercised by the events the tests below send.
            assert report.rejected == 0 and report.history.accepted > 0
            assert report.live.accepted == report.live.sent
        # A score sent through the original contract's game_end tops A's leaderboard.
        answer = platform.post("/api/v1/events", {
            "player_id": "legacy-champion", "game_id": stack.studios["A"].game_id, "event_type": "game_end",
            "timestamp": datetime.now(UTC).isoformat(), "data": {"score": 10_000_000}},
            key=stack.studios["A"].live_key)
        assert answer.status_code == 200, answer.text
        platform.wait_drained()
        yield stack
    finally:
        if platform.process.poll() is None:
            _stop_cleanly(platform)
        shutil.rmtree(platform.data_dir, ignore_errors=True)


@pytest.fixture
async def client_a(stack: Stack) -> AsyncIterator[Any]:
    async with _client(stack, stack.studios["A"].token) as session:
        yield session


def _client(stack: Stack, token: str) -> Client:
    transport = HTTPXAsyncTransport(url=stack.graphql_url, headers={"Authorization": f"Bearer {token}"},
                                    timeout=30)
    return Client(transport=transport, fetch_schema_from_transport=False)


def _span(stack: Stack) -> dict[str, str]:
    return {"from": (stack.today - timedelta(days=DAYS)).isoformat(), "to": stack.today.isoformat()}


def _params(stack: Stack, name: str = "A") -> dict[str, Any]:
    return {"t": stack.studios[name].tenant_id, "g": stack.studios[name].game_id,
            "lo": stack.today - timedelta(days=DAYS), "hi": stack.today}


# ---------------------------------------------------------------- independent computations (raw events)

ACTIVE = "SELECT * FROM events WHERE tenant_id = %(t)s AND game_id = %(g)s AND event_type <> 'identify'"
FIRST_DAYS = f"SELECT player_id, min((event_time AT TIME ZONE 'UTC')::date) AS first_day FROM ({ACTIVE}) a GROUP BY 1"


def expected_active(stack: Stack, window: int, name: str = "A") -> dict[str, int]:
    rows = stack.sql(
        f"SELECT d::date AS day, (SELECT count(DISTINCT player_id) FROM ({ACTIVE}) a"
        "  WHERE (event_time AT TIME ZONE 'UTC')::date BETWEEN d::date - %(back)s AND d::date) AS n"
        " FROM generate_series(%(lo)s::date, %(hi)s::date, interval '1 day') AS d",
        **_params(stack, name), back=window - 1)
    return {r["day"].isoformat(): r["n"] for r in rows}


def expected_new_players(stack: Stack) -> dict[str, int]:
    rows = stack.sql(f"SELECT first_day, count(*) AS n FROM ({FIRST_DAYS}) f GROUP BY 1", **_params(stack))
    return {r["first_day"].isoformat(): r["n"] for r in rows}


def expected_retention(stack: Stack, offsets: list[int]) -> dict[tuple[str, int], tuple[int, int]]:
    rows = stack.sql(
        f"SELECT f.first_day, n, count(*) AS size,"
        f" count(*) FILTER (WHERE EXISTS (SELECT 1 FROM ({ACTIVE}) a WHERE a.player_id = f.player_id"
        "   AND (a.event_time AT TIME ZONE 'UTC')::date = f.first_day + n)) AS back"
        f" FROM ({FIRST_DAYS}) f CROSS JOIN unnest(%(offsets)s::int[]) AS n GROUP BY 1, 2",
        **_params(stack), offsets=offsets)
    return {(r["first_day"].isoformat(), r["n"]): (r["size"], r["back"]) for r in rows}


def expected_revenue(stack: Stack) -> dict[str, dict[str, Any]]:
    rows = stack.sql(
        "SELECT day, count(*) AS dau, count(*) FILTER (WHERE paid > 0) AS payers, sum(paid) AS gross,"
        " sum(purchases) AS purchases, round(sum(paid) / count(*), 6) AS arpdau,"
        " round(sum(paid) / nullif(count(*) FILTER (WHERE paid > 0), 0), 6) AS arppu"
        " FROM (SELECT (event_time AT TIME ZONE 'UTC')::date AS day, player_id,"
        "   coalesce(sum(revenue_usd) FILTER (WHERE event_type = 'purchase'), 0) AS paid,"
        "   count(*) FILTER (WHERE event_type = 'purchase') AS purchases"
        f"   FROM ({ACTIVE}) a GROUP BY 1, 2) p GROUP BY 1", **_params(stack))
    ads = stack.sql(
        "SELECT (event_time AT TIME ZONE 'UTC')::date AS day, sum(revenue_usd) AS ads FROM events"
        " WHERE tenant_id = %(t)s AND game_id = %(g)s AND event_type = 'ad_impression' GROUP BY 1", **_params(stack))
    by_day = {r["day"].isoformat(): r for r in rows}
    for r in ads:
        by_day.setdefault(r["day"].isoformat(), {})["ads"] = r["ads"]
    return by_day


def expected_sessions(stack: Stack) -> dict[str, dict[str, Any]]:
    rows = stack.sql(
        "SELECT (started AT TIME ZONE 'UTC')::date AS day, count(*) AS n, avg(len) AS average,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY len) AS median"
        " FROM (SELECT min(event_time) AS started, extract(epoch FROM max(event_time) - min(event_time)) AS len"
        f"   FROM ({ACTIVE}) a GROUP BY session_id) s GROUP BY 1", **_params(stack))
    return {r["day"].isoformat(): r for r in rows}


def _step_condition(step: dict[str, str], alias: str) -> str:
    event = step["event"].replace("'", "''")
    condition = (f"({alias}.event_type = '{event}'"
                 f" OR ({alias}.event_type = 'custom' AND {alias}.event_name = '{event}'))")
    if "property" in step:
        condition += f" AND {alias}.properties->>'{step['property']}' = '{step['equals']}'"
    return condition


def expected_funnel(stack: Stack) -> list[int]:
    """Step k's time: the earliest matching event strictly after step k-1, within the window of step 1."""
    ranged = ("SELECT * FROM events WHERE tenant_id = %(t)s AND game_id = %(g)s"
              " AND event_time >= %(lo)s::date AND event_time < %(hi)s::date + 1")
    chain = [f"s1 AS (SELECT player_id, min(event_time) AS t1 FROM ({ranged}) e WHERE {_step_condition(STEPS[0], 'e')}"
             " GROUP BY 1)"]
    for k in range(2, len(STEPS) + 1):
        chain.append(
            f"s{k} AS (SELECT s.*, (SELECT min(e.event_time) FROM ({ranged}) e WHERE e.player_id = s.player_id"
            f" AND {_step_condition(STEPS[k - 1], 'e')} AND e.event_time > s.t{k - 1}"
            f" AND e.event_time <= s.t1 + %(window)s) AS t{k} FROM s{k - 1} s)")
    counts = ", ".join(f"count(t{k}) AS c{k}" for k in range(1, len(STEPS) + 1))
    row = stack.sql(f"WITH {', '.join(chain)} SELECT {counts} FROM s{len(STEPS)}", **_params(stack),
                    window=timedelta(hours=FUNNEL_WINDOW_HOURS))[0]
    return [row[f"c{k}"] for k in range(1, len(STEPS) + 1)]


# ---------------------------------------------------------------- metrics, day by day


async def test_active_users_day_week_month(stack: Stack, client_a: Any) -> None:
    query = gql("query($g: ID!, $from: Date!, $to: Date!) {"
                " dau: activeUsers(gameId: $g, from: $from, to: $to) { date value }"
                " wau: activeUsers(gameId: $g, from: $from, to: $to, window: WEEK) { date value }"
                " mau: activeUsers(gameId: $g, from: $from, to: $to, window: MONTH) { date value } }")
    answer = await client_a.execute(query, variable_values={"g": stack.studios["A"].game_id, **_span(stack)})
    for alias, window in (("dau", 1), ("wau", 7), ("mau", 30)):
        got = {d["date"]: d["value"] for d in answer[alias]}
        assert len(got) == DAYS + 1
        assert got == expected_active(stack, window), alias
    assert max(d["value"] for d in answer["dau"]) > 0
    # B has more players: the same days of B differ, so A's answer is A's alone.
    assert expected_active(stack, 30, "B") != {d["date"]: d["value"] for d in answer["mau"]}


async def test_new_players_and_retention(stack: Stack, client_a: Any) -> None:
    offsets = [0, 1, 3, 7, 14]
    answer = await client_a.execute(gql(
        "query($g: ID!, $from: Date!, $to: Date!, $days: [Int!]!) {"
        " newPlayers(gameId: $g, from: $from, to: $to) { date value }"
        " retention(gameId: $g, cohortFrom: $from, cohortTo: $to, days: $days)"
        "  { cohortDate size days { day value players } } }"),
        variable_values={"g": stack.studios["A"].game_id, "days": offsets, **_span(stack)})
    new = expected_new_players(stack)
    assert {d["date"]: d["value"] for d in answer["newPlayers"] if d["value"]} == new
    assert sum(new.values()) == stack.sql(f"SELECT count(*) AS n FROM ({FIRST_DAYS}) f", **_params(stack))[0]["n"]
    expected = expected_retention(stack, offsets)
    checked = 0
    for cohort in answer["retention"]:
        day = cohort["cohortDate"]
        assert cohort["size"] == new.get(day, 0)
        assert [d["day"] for d in cohort["days"]] == offsets
        for point in cohort["days"]:
            size, back = expected.get((day, point["day"]), (0, 0))
            assert point["players"] == back, (day, point)
            reached = date.fromisoformat(day) + timedelta(days=point["day"]) <= stack.today
            assert point["value"] == (back / size if size and reached else None), (day, point)
            checked += point["value"] is not None
    assert checked > 20
    day_zero = [p["value"] for c in answer["retention"] for p in c["days"] if p["day"] == 0 and c["size"]]
    assert day_zero and set(day_zero) == {1.0}  # a cohort is active on its own first day, by definition


async def test_revenue_to_the_cent(stack: Stack, client_a: Any) -> None:
    answer = await client_a.execute(gql(
        "query($g: ID!, $from: Date!, $to: Date!) { revenue(gameId: $g, from: $from, to: $to)"
        " { date gross payers arpdau arppu conversion dau purchases adRevenue } }"),
        variable_values={"g": stack.studios["A"].game_id, **_span(stack)})
    expected = expected_revenue(stack)
    for day in answer["revenue"]:
        want = expected.get(day["date"], {})
        dau, payers = want.get("dau", 0), want.get("payers", 0)
        assert Decimal(day["gross"]) == want.get("gross", Decimal(0)), day
        assert (day["dau"], day["payers"], day["purchases"]) == (dau, payers, want.get("purchases", 0)), day
        assert (Decimal(day["arpdau"]) if day["arpdau"] else None) == want.get("arpdau"), day
        assert (Decimal(day["arppu"]) if day["arppu"] else None) == want.get("arppu"), day
        assert day["conversion"] == (payers / dau if dau else None), day
        assert Decimal(day["adRevenue"]) == (want.get("ads") or Decimal(0)), day
    assert sum(Decimal(d["gross"]) for d in answer["revenue"]) > 0
    assert sum(d["payers"] for d in answer["revenue"]) > 0


async def test_sessions(stack: Stack, client_a: Any) -> None:
    answer = await client_a.execute(gql(
        "query($g: ID!, $from: Date!, $to: Date!) { sessions(gameId: $g, from: $from, to: $to)"
        " { date sessions averageLengthSeconds medianLengthSeconds sessionsPerDau dau } }"),
        variable_values={"g": stack.studios["A"].game_id, **_span(stack)})
    expected = expected_sessions(stack)
    dau = expected_active(stack, 1)
    for day in answer["sessions"]:
        want = expected.get(day["date"])
        if want is None:
            assert day["sessions"] == 0 and day["averageLengthSeconds"] is None, day
            continue
        assert day["sessions"] == want["n"], day
        assert day["averageLengthSeconds"] == float(want["average"]), day
        assert day["medianLengthSeconds"] == want["median"], day
        assert day["dau"] == dau[day["date"]]
        assert day["sessionsPerDau"] == want["n"] / dau[day["date"]], day
    assert sum(d["sessions"] for d in answer["sessions"]) == sum(w["n"] for w in expected.values()) > 0


async def test_funnel(stack: Stack, client_a: Any) -> None:
    answer = await client_a.execute(gql(
        "query($g: ID!, $from: Date!, $to: Date!, $steps: [FunnelStepInput!]!, $w: Int!) {"
        " funnel(gameId: $g, steps: $steps, from: $from, to: $to, windowHours: $w)"
        "  { step event players conversion } }"),
        variable_values={"g": stack.studios["A"].game_id, "steps": STEPS, "w": FUNNEL_WINDOW_HOURS, **_span(stack)})
    players = [s["players"] for s in answer["funnel"]]
    assert players == expected_funnel(stack)
    assert players[0] > players[-1] > 0 and players == sorted(players, reverse=True)
    assert [s["conversion"] for s in answer["funnel"]] == [p / players[0] for p in players]


async def test_top_events_and_events_per_minute(stack: Stack, client_a: Any) -> None:
    yesterday = (stack.today - timedelta(days=1)).isoformat()
    answer = await client_a.execute(gql(
        "query($g: ID!, $from: Date!, $to: Date!, $y: Date!) {"
        " topEvents(gameId: $g, from: $from, to: $to, limit: 8) { eventType name count }"
        " all: eventsPerMinute(gameId: $g, from: $y, to: $y) { minute value }"
        " levels: eventsPerMinute(gameId: $g, from: $y, to: $y, eventType: \"level_start\") { minute value } }"),
        variable_values={"g": stack.studios["A"].game_id, "y": yesterday, **_span(stack)})
    top = stack.sql(
        "SELECT event_type, coalesce(event_name, '') AS name, count(*) AS n FROM events"
        " WHERE tenant_id = %(t)s AND game_id = %(g)s AND event_time >= %(lo)s::date AND event_time < %(hi)s::date + 1"
        " GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 8", **_params(stack))
    assert [(e["eventType"], e["name"] or "", e["count"]) for e in answer["topEvents"]] == \
        [(r["event_type"], r["name"], r["n"]) for r in top]
    for alias, event_type in (("all", None), ("levels", "level_start")):
        rows = stack.sql(
            "SELECT date_trunc('minute', event_time) AS m, count(*) AS n FROM events"
            " WHERE tenant_id = %(t)s AND game_id = %(g)s AND (event_time AT TIME ZONE 'UTC')::date = %(y)s"
            " AND (%(type)s::text IS NULL OR event_type = %(type)s) GROUP BY 1",
            **_params(stack), y=date.fromisoformat(yesterday), type=event_type)
        series = answer[alias]
        assert len(series) == 24 * 60
        assert {datetime.fromisoformat(p["minute"]): p["value"] for p in series if p["value"]} == \
            {r["m"]: r["n"] for r in rows}, alias
        assert sum(p["value"] for p in series) > 0


async def test_player_and_the_original_schema(stack: Stack, client_a: Any) -> None:
    game = stack.studios["A"].game_id
    players = stack.sql(
        "SELECT player_id FROM events WHERE tenant_id = %(t)s AND game_id = %(g)s AND event_type = 'purchase'"
        " GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 2", **_params(stack))
    for row in players:
        player_id = row["player_id"]
        answer = await client_a.execute(gql(
            "query($g: ID!, $p: String!) {"
            " player(gameId: $g, playerId: $p) { playerId firstSeen lastSeen firstActiveDay sessions events"
            "  lifetimeRevenue platform country bestScore traits }"
            " playerStats(playerId: $p) { playerId totalEvents eventBreakdown lastActive totalSessions totalRevenue"
            "  games }"
            " events(playerId: $p, gameId: $g, limit: 5) { eventId eventType timestamp data } }"),
            variable_values={"g": game, "p": player_id})
        want = stack.sql(
            "SELECT min(event_time) AS first, max(event_time) AS last, count(*) AS events,"
            " count(*) FILTER (WHERE event_type = 'session_start') AS sessions,"
            " coalesce(sum(revenue_usd) FILTER (WHERE event_type = 'purchase'), 0) AS revenue,"
            " min((event_time AT TIME ZONE 'UTC')::date) FILTER (WHERE event_type <> 'identify') AS first_day,"
            " max((properties->>'score')::numeric) FILTER (WHERE event_type = 'level_complete') AS best,"
            " (array_agg(platform ORDER BY event_time DESC) FILTER (WHERE platform IS NOT NULL))[1] AS platform,"
            " (array_agg(country ORDER BY event_time DESC) FILTER (WHERE country IS NOT NULL))[1] AS country"
            " FROM events WHERE tenant_id = %(t)s AND game_id = %(g)s AND player_id = %(p)s",
            **_params(stack), p=player_id)[0]
        player = answer["player"]
        assert (datetime.fromisoformat(player["firstSeen"]), datetime.fromisoformat(player["lastSeen"])) == \
            (want["first"], want["last"])
        assert (player["events"], player["sessions"], Decimal(player["lifetimeRevenue"])) == \
            (want["events"], want["sessions"], want["revenue"])
        assert player["firstActiveDay"] == want["first_day"].isoformat()
        assert player["bestScore"] == (float(want["best"]) if want["best"] is not None else None)
        assert (player["platform"], player["country"]) == (want["platform"], want["country"])
        assert "install_source" in player["traits"]
        stats = answer["playerStats"]
        breakdown = stack.sql("SELECT event_type, count(*) AS n FROM events WHERE tenant_id = %(t)s"
                              " AND player_id = %(p)s GROUP BY 1", **_params(stack), p=player_id)
        assert stats["eventBreakdown"] == {r["event_type"]: r["n"] for r in breakdown}
        assert stats["totalEvents"] == want["events"] and stats["totalSessions"] == want["sessions"]
        assert Decimal(stats["totalRevenue"]) == want["revenue"] and stats["games"] == [game]
        assert datetime.fromisoformat(stats["lastActive"]) == want["last"]
        latest = stack.sql("SELECT event_id::text FROM events WHERE tenant_id = %(t)s AND player_id = %(p)s"
                           " ORDER BY event_time DESC, event_id LIMIT 5", **_params(stack), p=player_id)
        assert [e["eventId"] for e in answer["events"]] == [r["event_id"] for r in latest]


async def test_game_stats_and_leaderboard(stack: Stack, client_a: Any) -> None:
    answer = await client_a.execute(gql(
        "query($g: ID!) { gameStats(gameId: $g) { gameId totalPlayers totalEvents activePlayers totalSessions"
        "  averageSessionDuration totalRevenue eventBreakdown }"
        " leaderboard(gameId: $g, limit: 10) { rank playerId score } }"),
        variable_values={"g": stack.studios["A"].game_id})
    want = stack.sql(
        "SELECT count(DISTINCT player_id) AS players, count(*) AS events,"
        " coalesce(sum(revenue_usd) FILTER (WHERE event_type = 'purchase'), 0) AS revenue,"
        " count(DISTINCT player_id) FILTER (WHERE event_type <> 'identify'"
        "   AND (event_time AT TIME ZONE 'UTC')::date = %(hi)s) AS today"
        " FROM events WHERE tenant_id = %(t)s AND game_id = %(g)s", **_params(stack))[0]
    sessions = stack.sql(
        "SELECT count(*) AS n, avg(len) AS average FROM (SELECT extract(epoch FROM max(event_time) - min(event_time))"
        f" AS len FROM ({ACTIVE}) a GROUP BY session_id) s", **_params(stack))[0]
    stats = answer["gameStats"]
    assert (stats["totalPlayers"], stats["totalEvents"], stats["activePlayers"]) == \
        (want["players"], want["events"], want["today"])
    assert Decimal(stats["totalRevenue"]) == want["revenue"]
    assert (stats["totalSessions"], stats["averageSessionDuration"]) == (sessions["n"], float(sessions["average"]))
    assert sum(stats["eventBreakdown"].values()) == want["events"]
    best = stack.sql(
        "SELECT player_id, max((properties->>'score')::numeric) AS score FROM events"
        " WHERE tenant_id = %(t)s AND game_id = %(g)s AND (event_type = 'level_complete'"
        "  OR (event_type = 'custom' AND event_name = 'game_end')) GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10",
        **_params(stack))
    board = answer["leaderboard"]
    assert [(e["playerId"], e["score"]) for e in board] == [(r["player_id"], float(r["score"])) for r in best]
    assert board[0] == {"rank": 1, "playerId": "legacy-champion", "score": 10_000_000.0}
    scores = [e["score"] for e in board]
    assert [e["rank"] for e in board] == [1 + sum(s > score for s in scores) for score in scores]


async def test_answers_follow_new_data(stack: Stack, client_a: Any) -> None:
    """Kept answers are keyed by the tenant's stored-event counters: once the processor has stored
    a new player, the same request answers with them (within the version TTL, 100 ms by default)."""
    studio = stack.studios["A"]
    query = gql("query($g: ID!, $d: Date!) { activeUsers(gameId: $g, from: $d, to: $d) { value }"
                " newPlayers(gameId: $g, from: $d, to: $d) { value } }")
    variables = {"g": studio.game_id, "d": stack.today.isoformat()}
    before = await client_a.execute(query, variable_values=variables)
    assert await client_a.execute(query, variable_values=variables) == before
    stack.platform.send([{"event_id": str(uuid.uuid4()), "event_type": "session_start",
                          "player_id": f"newcomer-{uuid.uuid4().hex[:8]}", "timestamp": datetime.now(UTC).isoformat()}],
                        key=studio.live_key)
    stack.platform.wait_drained()
    deadline = time.monotonic() + PATIENCE_S
    after = await client_a.execute(query, variable_values=variables)
    while after == before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        after = await client_a.execute(query, variable_values=variables)
    assert after["activeUsers"][0]["value"] == before["activeUsers"][0]["value"] + 1
    assert after["newPlayers"][0]["value"] == before["newPlayers"][0]["value"] + 1


# ---------------------------------------------------------------- isolation and refusals


async def test_a_token_of_tenant_a_never_sees_tenant_b_over_http(stack: Stack) -> None:
    a, b = stack.studios["A"], stack.studios["B"]
    async with _client(stack, a.token) as session:
        games = await session.execute(gql("{ games { id name eventsStored } }"))
        assert [g["id"] for g in games["games"]] == [a.game_id]
        for field_query in (
            'activeUsers(gameId: $g, from: "2026-01-01", to: "2026-01-02") { value }',
            "gameStats(gameId: $g) { totalEvents }", "leaderboard(gameId: $g) { playerId }",
            'player(gameId: $g, playerId: "player-00000") { playerId }',
            'retention(gameId: $g, cohortFrom: "2026-01-01", cohortTo: "2026-01-02") { size }',
        ):
            with pytest.raises(TransportQueryError) as refused:
                await session.execute(gql(f"query($g: ID!) {{ {field_query} }}"), variable_values={"g": b.game_id})
            assert refused.value.errors[0]["extensions"]["code"] == "NOT_FOUND", field_query
        # B-only players (B has more) are unknown to A; shared ids count A's events only.
        b_only = stack.sql("SELECT player_id FROM events WHERE tenant_id = %(t)s GROUP BY 1 EXCEPT"
                           " SELECT player_id FROM events WHERE tenant_id = %(a)s LIMIT 1",
                           t=b.tenant_id, a=a.tenant_id)[0]["player_id"]
        with pytest.raises(TransportQueryError) as refused:
            await session.execute(gql("query($p: String!) { playerStats(playerId: $p) { totalEvents } }"),
                                  variable_values={"p": b_only})
        assert refused.value.errors[0]["extensions"]["code"] == "NOT_FOUND"
        shared = stack.sql("SELECT player_id, count(*) AS n FROM events WHERE tenant_id = %(t)s"
                           " GROUP BY 1 ORDER BY 2 DESC LIMIT 1", t=a.tenant_id)[0]
        stats = await session.execute(gql("query($p: String!) { playerStats(playerId: $p) { totalEvents } }"),
                                      variable_values={"p": shared["player_id"]})
        assert stats["playerStats"]["totalEvents"] == shared["n"]
        events = await session.execute(gql("{ events(limit: 1000) { gameId } }"))
        assert {e["gameId"] for e in events["events"]} == {a.game_id}
    async with _client(stack, a.token) as session:
        games_a = await session.execute(gql("{ games { id eventsStored } }"))
    assert [g["id"] for g in games_a["games"]] == [a.game_id]
    async with _client(stack, b.token) as session:
        games = await session.execute(gql("{ games { id eventsStored } }"))
        stored_b = stack.sql("SELECT count(*) AS n FROM events WHERE tenant_id = %(t)s", t=b.tenant_id)[0]["n"]
        assert games["games"] == [{"id": b.game_id, "eventsStored": stored_b}]


def _stranger_token(stack: Stack, **claims: Any) -> str:
    """A token signed with the platform's own key (or `key`), with chosen claims."""
    kid, key = platform_signing_key(stack.platform.database_url, stack.platform.data_dir)
    key = claims.pop("key", key)
    kid = claims.pop("kid", kid)
    now = int(time.time())
    body = {"iss": "gamemetrics", "aud": "gamemetrics", "sub": "test", "iat": now, "exp": now + 60,
            "tenant_id": stack.studios["A"].tenant_id, "scope": "analytics:read", **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="ES256", headers={"kid": kid})


def test_token_failures_are_401_and_403(stack: Stack) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    cases = {
        "no token": (None, 401),
        "not a JWT": ("not-a-token", 401),
        "expired": (_stranger_token(stack, exp=int(time.time()) - 1), 401),
        "wrong audience": (_stranger_token(stack, aud="someone-else"), 401),
        "wrong issuer": (_stranger_token(stack, iss="https://elsewhere.example"), 401),
        "unknown key": (_stranger_token(stack, key=stranger, kid=public_jwk(stranger.public_key())["kid"]), 401),
        "forged with a known kid": (_stranger_token(stack, key=stranger), 401),
        "no tenant": (_stranger_token(stack, tenant_id=None), 401),
        "missing scope": (stack.platform.cli("admin", "issue-token", "--tenant", stack.studios["A"].tenant_id,
                                             "--scopes", "players:read")["access_token"], 403),
    }
    for name, (token, status) in cases.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(stack.graphql_url, json={"query": "{ games { id } }"}, headers=headers, timeout=10)
        assert response.status_code == status, (name, response.text)
        code = "UNAUTHENTICATED" if status == 401 else "FORBIDDEN"
        assert response.json()["errors"][0]["extensions"]["code"] == code, name
        assert response.headers["www-authenticate"].startswith("Bearer"), name
    # GraphiQL's page asks for no token; everything it sends does.
    page = httpx.get(stack.graphql_url, headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and "graphiql" in page.text.lower()


async def test_guards_answer_with_codes(stack: Stack, client_a: Any) -> None:
    game = stack.studios["A"].game_id
    many_revenues = " ".join(f'r{i}: revenue(gameId: "GAME", from: "2025-01-01", to: "2026-01-31") {{ date }}'
                             for i in range(15))
    cases = {
        '{ activeUsers(gameId: "GAME", from: "2025-01-01", to: "2026-02-05") { value } }': "BAD_USER_INPUT",
        '{ revenue(gameId: "GAME", from: "2026-02-05", to: "2026-02-01") { date } }': "BAD_USER_INPUT",
        '{ revenue(gameId: "not-a-uuid", from: "2026-02-01", to: "2026-02-05") { date } }': "BAD_USER_INPUT",
        '{ topEvents(gameId: "GAME", from: "2026-02-01", to: "2026-02-05", limit: 0) { count } }': "BAD_USER_INPUT",
        # A literal that is no date fails validation; the same value in a variable is bad input.
        '{ revenue(gameId: "GAME", from: "2026-02-31", to: "2026-03-01") { date } }': "GRAPHQL_VALIDATION_FAILED",
        f'{{ sessions(gameId: "{uuid.uuid4()}", from: "2026-02-01", to: "2026-02-05") {{ date }} }}': "NOT_FOUND",
        "{ " + " ".join(f"g{i}: games {{ id }}" for i in range(25)) + " }": "GRAPHQL_VALIDATION_FAILED",
        "{ " + many_revenues + " }": "QUERY_TOO_COMPLEX",
        "{ games { id } nosuchfield }": "GRAPHQL_VALIDATION_FAILED",
    }
    for query, code in cases.items():
        with pytest.raises(TransportQueryError) as refused:
            await client_a.execute(gql(query.replace("GAME", game)))
        assert refused.value.errors[0]["extensions"]["code"] == code, (query[:80], refused.value.errors)
    with pytest.raises(TransportQueryError) as refused:
        await client_a.execute(gql("query($d: Date!) { revenue(gameId: $g, from: $d, to: $d) { date } }"
                                   .replace("$g", f'"{game}"')), variable_values={"d": "2026-02-31"})
    assert refused.value.errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    # One failing field does not take the others' answers with it.
    with pytest.raises(TransportQueryError) as refused:
        await client_a.execute(gql(f'{{ games {{ id }} player(gameId: "{game}", playerId: "nobody") {{ playerId }} }}'))
    assert refused.value.data == {"games": [{"id": game}], "player": None}
    assert refused.value.errors[0]["extensions"]["code"] == "NOT_FOUND"


# ---------------------------------------------------------------- liveStats over WebSocket

LIVE = gql("subscription($g: ID!) { liveStats(gameId: $g) { gameId at eventsPerSecond activePlayers revenueToday"
           " deadLetters eventsStored } }")


def _ws(stack: Stack, token: str | None) -> Client:
    url = stack.graphql_url.replace("http://", "ws://")
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(transport=WebsocketsTransport(url=url, init_payload=payload, connect_timeout=10))


async def test_live_stats_over_websocket(stack: Stack) -> None:
    a = stack.studios["A"]
    dead_before = stack.sql("SELECT count(*) AS n FROM dead_letters WHERE game_id = %(g)s", g=a.game_id)[0]["n"]
    # One event the processor dead-letters (a currency without a rate) and one new event.
    stack.platform.send([{"event_id": str(uuid.uuid4()), "event_type": "purchase", "player_id": "dlq-player",
                          "timestamp": datetime.now(UTC).isoformat(),
                          "properties": {"item_id": "x", "price": 1, "currency": "XXX"}}], key=a.live_key)
    stack.platform.wait_drained()
    seen: list[dict[str, Any]] = []
    async with _ws(stack, a.token) as session:
        async for message in session.subscribe(LIVE, variable_values={"g": a.game_id}):
            seen.append(message["liveStats"])
            if len(seen) == 1:
                stack.platform.send([{"event_id": str(uuid.uuid4()), "event_type": "session_start",
                                      "player_id": "live-player", "timestamp": datetime.now(UTC).isoformat()}],
                                    key=a.live_key)
            # About one push a second: PATIENCE_S pushes is PATIENCE_S seconds at most.
            if seen[-1]["eventsStored"] > seen[0]["eventsStored"] or len(seen) >= int(PATIENCE_S):
                break
    first = seen[0]
    assert seen[-1]["eventsStored"] == first["eventsStored"] + 1, seen  # pushed again once new data landed
    assert len({s["at"] for s in seen}) == len(seen)  # each push is a new reading
    at = datetime.fromisoformat(first["at"])
    want = stack.sql(
        "SELECT count(*) FILTER (WHERE event_time >= date_trunc('minute', %(at)s::timestamptz) - interval '1 minute'"
        "  AND event_time <= %(at)s) AS recent,"
        " count(DISTINCT player_id) FILTER (WHERE event_type <> 'identify' AND event_time >= %(at)s::timestamptz"
        "  - interval '5 minutes' AND event_time <= %(at)s) AS active,"
        " coalesce(sum(revenue_usd) FILTER (WHERE event_type = 'purchase' AND (event_time AT TIME ZONE 'UTC')::date"
        "  = (%(at)s::timestamptz AT TIME ZONE 'UTC')::date AND event_time <= %(at)s), 0) AS revenue,"
        " count(*) FILTER (WHERE event_time <= %(at)s) AS stored"
        " FROM events WHERE tenant_id = %(t)s AND game_id = %(g)s", t=a.tenant_id, g=a.game_id, at=at)[0]
    assert first["gameId"] == a.game_id
    assert first["eventsStored"] == want["stored"]
    assert first["deadLetters"] == dead_before + 1
    assert first["activePlayers"] == want["active"] > 0
    assert Decimal(first["revenueToday"]) == want["revenue"]
    assert first["eventsPerSecond"] == want["recent"] / (60 + at.second + at.microsecond / 1e6)


async def test_websocket_isolation_and_refusals(stack: Stack) -> None:
    a, b = stack.studios["A"], stack.studios["B"]
    async with _ws(stack, a.token) as session:
        with pytest.raises(TransportQueryError) as refused:
            async for _ in session.subscribe(LIVE, variable_values={"g": b.game_id}):
                pytest.fail("tenant A received tenant B's live figures")
        assert refused.value.errors[0]["extensions"]["code"] == "NOT_FOUND"
    async with _ws(stack, b.token) as session:
        async for message in session.subscribe(LIVE, variable_values={"g": b.game_id}):
            stored_b = stack.sql("SELECT count(*) AS n FROM events WHERE tenant_id = %(t)s", t=b.tenant_id)[0]["n"]
            assert message["liveStats"]["eventsStored"] == stored_b
            break
    no_scope = stack.platform.cli("admin", "issue-token", "--tenant", a.tenant_id, "--scopes", "players:read")
    for token in (None, "garbage", no_scope["access_token"], _stranger_token(stack, exp=int(time.time()) - 1)):
        with pytest.raises(TransportServerError):
            async with _ws(stack, token) as session:
                async for _ in session.subscribe(LIVE, variable_values={"g": a.game_id}):
                    pytest.fail(f"a subscription was served to token {token!r}")


def test_status_json_still_lists_both_games(stack: Stack) -> None:
    """The admin side (trusted role) still sees every tenant after row-level security."""
    games = {g["game_id"] for g in stack.platform.cli("status", "--json")["games"]}
    assert {s.game_id for s in stack.studios.values()} <= games


# ---------------------------------------------------------------- erasure (last: it changes tenant A's data)


async def test_an_erasure_shows_in_every_answer_at_once(stack: Stack, client_a: Any) -> None:
    """Answers kept before a GDPR erasure are not given again: the erased player's figures are gone
    from the player, daily and per-player queries, which equal the events left, day by day."""
    a = stack.studios["A"]
    player = stack.sql("SELECT player_id FROM events WHERE tenant_id = %(t)s AND event_type = 'purchase'"
                       " GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1", t=a.tenant_id)[0]["player_id"]
    query = gql("query($g: ID!, $p: String!, $from: Date!, $to: Date!) {"
                " player(gameId: $g, playerId: $p) { playerId }"
                " revenue(gameId: $g, from: $from, to: $to) { date gross payers dau }"
                " dau: activeUsers(gameId: $g, from: $from, to: $to) { date value }"
                " mau: activeUsers(gameId: $g, from: $from, to: $to, window: MONTH) { date value }"
                " gameStats(gameId: $g) { totalPlayers totalRevenue } }")
    variables = {"g": a.game_id, "p": player, **_span(stack)}
    before = await client_a.execute(query, variable_values=variables)  # now kept at both cache levels
    assert before["player"] == {"playerId": player}

    client = stack.platform.cli("admin", "create-client", "--tenant", a.tenant_id, "--scopes", "gdpr:erase")
    token = httpx.post(f"{stack.platform.base_url}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(client["client_id"], client["client_secret"]), timeout=30).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    erasure = httpx.delete(f"{stack.platform.base_url}/v1/games/{a.game_id}/players/{player}", headers=auth,
                           timeout=30)
    assert erasure.status_code == 202, erasure.text
    deadline = time.monotonic() + PATIENCE_S
    while httpx.get(stack.platform.base_url + erasure.json()["status_url"], headers=auth,
                    timeout=30).json()["state"] != "completed":
        assert time.monotonic() < deadline, "the erasure did not complete"
        await asyncio.sleep(0.05)

    with pytest.raises(TransportQueryError) as refused:
        while True:  # kept answers are trusted for the version TTL (100 ms), then read again
            await client_a.execute(query, variable_values=variables)
            assert time.monotonic() < deadline, "answers kept before the erasure were still given"
            await asyncio.sleep(0.05)
    after = refused.value.data
    assert after["player"] is None and refused.value.errors[0]["extensions"]["code"] == "NOT_FOUND"
    assert {d["date"]: d["value"] for d in after["dau"]} == expected_active(stack, 1)
    assert {d["date"]: d["value"] for d in after["mau"]} == expected_active(stack, 30)
    revenue = expected_revenue(stack)
    for day in after["revenue"]:
        want = revenue.get(day["date"], {})
        assert (Decimal(day["gross"]), day["payers"], day["dau"]) == \
            (want.get("gross", Decimal(0)), want.get("payers", 0), want.get("dau", 0)), day
    assert after["gameStats"]["totalPlayers"] == before["gameStats"]["totalPlayers"] - 1
    assert Decimal(after["gameStats"]["totalRevenue"]) < Decimal(before["gameStats"]["totalRevenue"])
    assert sum(d["value"] for d in after["dau"]) < sum(d["value"] for d in before["dau"])
