"""The dashboard's pure parts: ranges, the tiles' arithmetic, charts, the live feed's counting."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gamemetrics.events.processed import ProcessedEvent
from gamemetrics.services.dashboard import tiles
from gamemetrics.services.dashboard.charts import line_chart
from gamemetrics.services.dashboard.live import LiveFeed
from gamemetrics.services.dashboard.periods import BadRange, Period, parse_period

TODAY = date(2026, 3, 10)


def test_presets_end_today_and_the_previous_period_is_as_long() -> None:
    assert parse_period({}, TODAY) == ("7d", Period(date(2026, 3, 4), TODAY))
    assert parse_period({"range": "today"}, TODAY)[1] == Period(TODAY, TODAY)
    name, period = parse_period({"range": "90d"}, TODAY)
    assert (name, period.days, period.previous().days) == ("90d", 90, 90)
    assert period.previous().end == period.start - timedelta(days=1)


@pytest.mark.parametrize(("query", "says"), [
    ({"range": "week"}, "unknown range"),
    ({"range": "custom", "from": "2026-03-09"}, "YYYY-MM-DD"),
    ({"range": "custom", "from": "2026-03-09", "to": "2026-03-01"}, "before it starts"),
    ({"range": "custom", "from": "2016-03-09", "to": "2026-03-01"}, "at most 366 days"),
    ({"range": "custom", "from": "2026-03-09", "to": "2026-03-11"}, "future"),
])
def test_bad_ranges_say_what_to_change(query: dict[str, str], says: str) -> None:
    with pytest.raises(BadRange, match=says):
        parse_period(query, TODAY)


@given(st.integers(1, 366), st.integers(0, 3000))
def test_any_custom_range_within_the_limit_is_taken(days: int, back: int) -> None:
    end = TODAY - timedelta(days=back)
    start = end - timedelta(days=days - 1)
    _, period = parse_period({"range": "custom", "from": start.isoformat(), "to": end.isoformat()}, TODAY)
    assert period.days == days and period.previous().days == days and len(period.dates()) == days


ANSWER = {
    "dau": [{"date": "2026-03-09", "value": 10}, {"date": "2026-03-10", "value": 20}],
    "wau": [{"date": "2026-03-09", "value": 25}, {"date": "2026-03-10", "value": 28}],
    "mau": [{"date": "2026-03-09", "value": 40}, {"date": "2026-03-10", "value": 41}],
    "newPlayers": [{"date": "2026-03-09", "value": 3}, {"date": "2026-03-10", "value": 4}],
    "revenue": [{"date": "2026-03-09", "gross": "5.00", "payers": 1, "dau": 10},
                {"date": "2026-03-10", "gross": 25, "payers": 4, "dau": 20}],
    "sessions": [{"date": "2026-03-09", "sessions": 10, "averageLengthSeconds": 60.0},
                 {"date": "2026-03-10", "sessions": 30, "averageLengthSeconds": None}],
}


def test_figures_of_a_period() -> None:
    got = tiles.figures(ANSWER)
    assert got == {"dau": 15.0, "wau": 28.0, "mau": 41.0, "new_players": 7.0, "revenue": 30.0, "arpdau": 1.0,
                   "arppu": 6.0, "conversion": 5 / 30, "sessions": 40.0, "avg_session": 600 / 40}
    assert set(got) == {m.key for m in tiles.METRICS} == set(tiles.series(ANSWER))


def test_an_empty_period_has_no_ratios() -> None:
    empty = {k: [] for k in ANSWER}
    got = tiles.figures(empty)
    assert got["arpdau"] is got["arppu"] is got["conversion"] is got["avg_session"] is got["dau"] is None
    assert tiles.shown(None, "usd") == "–" and tiles.change(5.0, 0.0) is None


def test_shown_figures_and_changes() -> None:
    assert tiles.shown(1234.5, "usd") == "$1,234.50"
    assert tiles.shown(0.125, "share") == "12.5 %"
    assert tiles.shown(125, "seconds") == "2 min 05 s"
    assert tiles.shown(2000.0, "count") == "2,000"
    assert tiles.shown_change(tiles.change(110.0, 100.0)) == "+10.0 %"
    assert tiles.rows_csv([("2026-03-09", 1.0), ("2026-03-10", None)], "dau") == \
        "date,dau\r\n2026-03-09,1.0\r\n2026-03-10,\r\n"


def test_a_chart_escapes_its_labels_and_leaves_gaps() -> None:
    svg = line_chart([("<b>", 1.0), ("2026-03-10", None), ("x", 3.0)], 'a "label"')
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "&quot;label&quot;" in svg
    assert svg.count("M") >= 2  # the None broke the line


def _event(tenant: uuid.UUID, game: uuid.UUID, at: datetime, event_id: uuid.UUID | None = None,
           event_type: str = "custom", player: str = "p") -> ProcessedEvent:
    return ProcessedEvent(tenant, game, event_id or uuid.uuid4(), event_type, player, at, at, "live", False,
                          msgspec.Raw(b"{}"), msgspec.Raw(b"{}"))


async def test_the_live_feed_counts_each_event_once_per_game_and_minute() -> None:
    feed = LiveFeed(minutes=5, tail=3)
    tenant, game, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    repeated = _event(tenant, game, now)
    await feed.take([repeated, _event(tenant, game, now, event_type="purchase", player="q"),
                     _event(tenant, other, now), _event(tenant, game, now - timedelta(minutes=30))])
    await feed.take([repeated])  # a replayed batch is published again
    figures = feed.figures(tenant, game, now)
    assert figures.last_minute == 2
    assert sum(n for _, n in figures.per_minute) == 2 and len(figures.per_minute) == 5
    assert feed.figures(tenant, other, now).last_minute == 1
    assert feed.figures(uuid.uuid4(), game, now).last_minute == 0, "another tenant sees nothing of it"
    assert [e.event_type for e in feed.tail(tenant, game)] == ["custom", "purchase", "custom"]
    assert [e.player_id for e in feed.tail(tenant, game, event_type="purchase")] == ["q"]
    assert feed.figures(tenant, game, now + timedelta(seconds=61)).last_minute == 0


def test_funnel_steps_as_typed() -> None:
    from gamemetrics.services.dashboard.funnels import BadFunnel, Step, parse_steps

    assert parse_steps("session_start\n\n level_complete level=3 \npurchase") == [
        Step("session_start"), Step("level_complete", "level", "3"), Step("purchase")]
    assert Step("level_complete", "level", "3").as_input() == {"event": "level_complete", "property": "level",
                                                              "equals": "3"}
    for text, says in (("", "at least one step"), ("a b", "line 1"), ("x\nlevel =", "line 2"),
                       ("\n".join(["e"] * 21), "at most 20")):
        with pytest.raises(BadFunnel, match=says):
            parse_steps(text)


def test_a_replayed_letter_is_its_event_received_again() -> None:
    from gamemetrics.events.envelope import RawEnvelope, partition_key
    from gamemetrics.services.dashboard.dead_letters import NotReplayable, replay_message

    tenant, game, now = uuid.uuid4(), uuid.uuid4(), datetime(2026, 3, 10, 12, tzinfo=UTC)
    event = b'{"event_id":"e1","event_type":"custom","player_id":"p-1","timestamp":"2026-03-10T12:00:00Z"}'
    original = msgspec.json.encode(RawEnvelope(tenant, game, now - timedelta(hours=1), msgspec.Raw(event), "live"))
    message = replay_message(original, tenant, game, now)
    again = msgspec.json.decode(message.value, type=RawEnvelope)
    assert (again.tenant_id, again.game_id, again.received_at, bytes(again.event)) == (tenant, game, now, event)
    assert message.key == partition_key(tenant, "p-1")
    with pytest.raises(NotReplayable, match="another game"):
        replay_message(original, tenant, uuid.uuid4(), now)
    with pytest.raises(NotReplayable, match="not an event envelope"):
        replay_message(b"\x00garbage", tenant, game, now)
