"""Session stitching and the new-player flag on plain rows (no database)."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gamemetrics.services.processor.decode import EventRow
from gamemetrics.services.processor.stitching import GameKey, PlayerKey, PlayerState, by_game, session_id, stitch

TENANT = uuid.UUID("00000000-0000-4000-8000-000000000001")
GAME = uuid.UUID("00000000-0000-4000-8000-000000000002")
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
GAP = timedelta(minutes=30)


def row(player: str, at: datetime, session: str | None = None) -> EventRow:
    return EventRow(
        tenant_id=TENANT, game_id=GAME, event_id=uuid.uuid4(), event_type="level_start", event_name=None,
        player_id=player, session_id=session, event_time=at, received_at=T0, source="live", platform=None,
        os=None, app_version=None, country=None, revenue_usd=Decimal(0), properties=b"{}", context=b"{}",
    )


def key(player: str) -> PlayerKey:
    return (TENANT, GAME, player)


def nested(known: dict[PlayerKey, PlayerState]) -> dict[GameKey, dict[str, PlayerState]]:
    """Players' states as `stitch` takes them: per (tenant, game), by player id."""
    games: dict[GameKey, dict[str, PlayerState]] = {}
    for (tenant, game, player), state in known.items():
        games.setdefault((tenant, game), {})[player] = state
    return games


def derived(player: str, at: datetime) -> str:
    return str(uuid.uuid5(TENANT, f"{player}@{at.isoformat()}"))


def test_an_unknown_players_events_within_the_gap_share_one_session() -> None:
    rows = [row("p", T0), row("p", T0 + timedelta(minutes=10)), row("p", T0 + timedelta(minutes=35))]
    stitch(by_game(rows), {}, GAP)
    assert {r.session_id for r in rows} == {derived("p", T0)}
    assert [r.is_new_player for r in rows] == [True, False, False]


def test_a_new_session_starts_after_the_gap() -> None:
    rows = [row("p", T0), row("p", T0 + GAP), row("p", T0 + 2 * GAP + timedelta(microseconds=1))]
    stitch(by_game(rows), {}, GAP)
    assert rows[0].session_id == rows[1].session_id == derived("p", T0)  # exactly the gap still joins
    assert rows[2].session_id == derived("p", rows[2].event_time)


def test_a_known_player_continues_their_stored_session_within_the_gap() -> None:
    known = {key("p"): PlayerState(T0, "stored-session")}
    rows = [row("p", T0 + timedelta(minutes=20))]
    stitch(by_game(rows), nested(known), GAP)
    assert rows[0].session_id == "stored-session"
    assert not rows[0].is_new_player


def test_a_known_player_back_after_the_gap_opens_a_session_and_is_not_new() -> None:
    known = {key("p"): PlayerState(T0, "stored-session")}
    later = T0 + GAP + timedelta(seconds=1)
    rows = [row("p", later)]
    stitch(by_game(rows), nested(known), GAP)
    assert rows[0].session_id == derived("p", later)
    assert not rows[0].is_new_player


def test_a_known_player_without_a_session_opens_one() -> None:
    rows = [row("p", T0 + timedelta(seconds=5))]
    stitch(by_game(rows), nested({key("p"): PlayerState(T0, None)}), GAP)
    assert rows[0].session_id == derived("p", rows[0].event_time)


def test_events_are_stitched_in_time_order_whatever_order_they_arrive_in() -> None:
    late, early = row("p", T0 + timedelta(minutes=5)), row("p", T0)
    stitch(by_game([late, early]), {}, GAP)
    assert early.is_new_player and not late.is_new_player
    assert late.session_id == early.session_id == derived("p", T0)


def test_sent_session_ids_are_kept_and_followed() -> None:
    rows = [row("p", T0, "game-session"), row("p", T0 + timedelta(minutes=1)), row("q", T0 + timedelta(minutes=2))]
    stitch(by_game(rows), {}, GAP)
    assert rows[0].session_id == rows[1].session_id == "game-session"
    assert rows[2].session_id == derived("q", rows[2].event_time)  # players do not share sessions
    assert rows[0].is_new_player and rows[2].is_new_player and not rows[1].is_new_player


def test_players_of_other_games_and_tenants_are_other_players() -> None:
    known = {key("p"): PlayerState(T0, "s")}
    other_game = row("p", T0 + timedelta(minutes=1))
    other_game.game_id = uuid.uuid4()
    stitch(by_game([other_game]), nested(known), GAP)
    assert other_game.is_new_player and other_game.session_id != "s"


def test_a_late_event_does_not_move_the_players_current_session() -> None:
    # The store keeps the session of the player's latest event; a late event with a session id of
    # its own must not steer the events after it, or one batch and two batches would disagree.
    known = {key("p"): PlayerState(T0, "current")}
    late = row("p", T0 - timedelta(hours=2), "old-session")
    fresh = row("p", T0 + timedelta(minutes=1))
    stitch(by_game([late, fresh]), nested(known), GAP)
    assert late.session_id == "old-session"
    assert fresh.session_id == "current"


def test_each_players_latest_event_carries_their_profile_from_the_latest_event_with_each_field() -> None:
    first, middle, last = row("p", T0), row("p", T0 + timedelta(minutes=1)), row("p", T0 + timedelta(minutes=2))
    first.platform, first.os, first.country, first.app_version = "ios", "ios", "DE", "1.0"
    middle.platform, middle.app_version = "android", "1.1"
    last.country = "JP"  # the latest event carries only a country: the other fields come from before it
    other = row("q", T0 + timedelta(minutes=1))
    stitch(by_game([last, other, middle, first]), {}, GAP)
    assert last.profile == ("android", "ios", "JP", "1.1")
    assert other.profile == (None, None, None, None)  # a latest event without context still marks the player
    assert first.profile is None and middle.profile is None


def test_stitching_a_part_of_a_batch_again_marks_only_that_parts_latest_events() -> None:
    # The worker writes a batch the store refused in halves, and each half is stitched on its own.
    rows = [row("p", T0 + timedelta(minutes=i)) for i in range(4)]
    for i, r in enumerate(rows):
        r.platform = f"v{i}"
    stitch(by_game(rows), {}, GAP)
    stitch(by_game(rows[:2]), {}, GAP)
    assert [r.profile for r in rows[:2]] == [None, ("v1", None, None, None)]


def test_derived_session_ids_are_the_uuid5_of_the_player_and_time() -> None:
    # Sessions stored before the fast derivation keep their ids: a replay must derive the same ones.
    for name in ("p@2026-11-25T12:00:00+00:00", "", "ünïcödé@x", "x" * 500):
        assert session_id(TENANT.bytes, name) == str(uuid.uuid5(TENANT, name))


def test_replaying_the_same_batch_gives_the_same_ids() -> None:
    rows = [row(f"p{i % 3}", T0 + timedelta(minutes=7 * i)) for i in range(30)]
    again = copy.deepcopy(rows)
    stitch(by_game(rows), {}, GAP)
    stitch(by_game(again), {}, GAP)
    assert [(r.session_id, r.is_new_player) for r in rows] == [(r.session_id, r.is_new_player) for r in again]


# ---------------------------------------------------------------- properties


def stored_state(known: dict[PlayerKey, PlayerState], rows: list[EventRow]) -> dict[PlayerKey, PlayerState]:
    """What the sink leaves in `players` after `rows`: the latest time and that event's session."""
    state = dict(known)
    for r in rows:
        k = (r.tenant_id, r.game_id, r.player_id)
        if k not in state or r.event_time >= state[k].last_seen:
            state[k] = PlayerState(r.event_time, r.session_id)
    return state


players = st.sampled_from(["a", "b", "c"])
minutes = st.integers(min_value=0, max_value=600)
events = st.lists(
    st.tuples(players, minutes, st.one_of(st.none(), st.sampled_from(["s1", "s2"]))), min_size=1, max_size=25,
    unique_by=lambda e: e[1],  # distinct times: the store's choice among equal times is not part of the contract
)
known_states = st.dictionaries(
    players, st.tuples(minutes, st.one_of(st.none(), st.just("stored"))), max_size=3
)


def build(spec: list[tuple[str, int, str | None]]) -> list[EventRow]:
    return [row(p, T0 + timedelta(minutes=m), s) for p, m, s in spec]


def as_known(spec: dict[str, tuple[int, str | None]]) -> dict[PlayerKey, PlayerState]:
    return {key(p): PlayerState(T0 + timedelta(minutes=m), s) for p, (m, s) in spec.items()}


@settings(max_examples=300, deadline=None)
@given(spec=events, known_spec=known_states)
def test_every_event_gets_a_session_and_each_unknown_player_one_first_event(
    spec: list[tuple[str, int, str | None]], known_spec: dict[str, tuple[int, str | None]]
) -> None:
    rows, known = build(spec), as_known(known_spec)
    stitch(by_game(rows), nested(known), GAP)
    assert all(r.session_id for r in rows)
    for player in {r.player_id for r in rows}:
        flagged = [r for r in rows if r.player_id == player and r.is_new_player]
        if key(player) in known:
            assert flagged == []
        else:
            assert flagged == [min((r for r in rows if r.player_id == player), key=lambda r: r.event_time)]


@settings(max_examples=300, deadline=None)
@given(spec=events, known_spec=known_states, split=minutes)
def test_one_batch_or_two_in_time_order_stitch_alike(
    spec: list[tuple[str, int, str | None]], known_spec: dict[str, tuple[int, str | None]], split: int
) -> None:
    # A restart can cut the same records into different batches; the stored result must not change.
    whole, known = build(spec), as_known(known_spec)
    stitch(by_game(whole), nested(known), GAP)
    parts = build(spec)
    first = [r for r in parts if r.event_time <= T0 + timedelta(minutes=split)]
    second = [r for r in parts if r.event_time > T0 + timedelta(minutes=split)]
    stitch(by_game(first), nested(known), GAP)
    stitch(by_game(second), nested(stored_state(known, sorted(first, key=lambda r: r.event_time))), GAP)
    assert [(r.session_id, r.is_new_player) for r in whole] == [(r.session_id, r.is_new_player) for r in parts]
