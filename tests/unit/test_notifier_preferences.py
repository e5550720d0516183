"""Quiet hours in the player's time zone, across midnight and daylight saving, and the checks of
what the preferences API accepts."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gamemetrics.services.notifier.preferences import PreferencesInvalid, QuietHours, parse_preferences

HELSINKI = QuietHours(time(22), time(8), "Europe/Helsinki")


def test_overnight_quiet_hours_defer_to_the_local_morning() -> None:
    # 21:30 UTC in December is 23:30 in Helsinki (UTC+2): quiet until 08:00 local, 06:00 UTC.
    assert HELSINKI.until(datetime(2026, 12, 1, 21, 30, tzinfo=UTC)) == datetime(2026, 12, 2, 6, tzinfo=UTC)
    # 03:00 UTC is 05:00 local, the same night: quiet until 06:00 UTC that day.
    assert HELSINKI.until(datetime(2026, 12, 2, 3, tzinfo=UTC)) == datetime(2026, 12, 2, 6, tzinfo=UTC)
    assert HELSINKI.until(datetime(2026, 12, 2, 6, tzinfo=UTC)) is None  # 08:00 local: awake
    assert HELSINKI.until(datetime(2026, 12, 2, 12, tzinfo=UTC)) is None
    # In July Helsinki is UTC+3: 08:00 local is 05:00 UTC.
    assert HELSINKI.until(datetime(2026, 7, 1, 20, tzinfo=UTC)) == datetime(2026, 7, 2, 5, tzinfo=UTC)


def test_daytime_quiet_hours() -> None:
    school = QuietHours(time(9), time(15), "America/New_York")
    assert school.until(datetime(2026, 12, 1, 15, tzinfo=UTC)) == datetime(2026, 12, 1, 20, tzinfo=UTC)
    assert school.until(datetime(2026, 12, 1, 21, tzinfo=UTC)) is None


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
       st.times(), st.times())
def test_a_deferral_ends_after_the_moment_and_within_a_day(moment: datetime, start: time, end: time) -> None:
    until = QuietHours(start.replace(microsecond=0), end.replace(microsecond=0), "Europe/Helsinki").until(moment)
    if until is not None:
        assert moment < until and (until - moment).total_seconds() <= 25 * 3600


def test_bad_preferences_are_named() -> None:
    for body, says in [
        ({"quiet_hours": {"start": "25:00", "end": "08:00", "timezone": "UTC"}}, "HH:MM"),
        ({"quiet_hours": {"start": "22:00", "end": "08:00", "timezone": "Mars/Olympus"}}, "IANA"),
        ({"quiet_hours": {"start": "22:00"}}, "quiet_hours is"),
        ({"daily_cap": {"push": -1}}, "daily_cap"),
        ({"daily_cap": {"fax": 1}}, "daily_cap"),
        ({"categories": {"news": {"email": "no"}}}, "true or false"),
        ({"colour": "red"}, "send"),
    ]:
        with pytest.raises(PreferencesInvalid, match=says):
            parse_preferences(body)
    parsed = parse_preferences({"categories": {"news": {"email": False}}, "daily_cap": {"push": 3},
                                "quiet_hours": {"start": "22:00", "end": "08:00", "timezone": "Europe/Helsinki"}})
    assert parsed.json() == {"categories": {"news": {"email": False}}, "daily_cap": {"push": 3},
                             "quiet_hours": {"start": "22:00", "end": "08:00", "timezone": "Europe/Helsinki"}}
