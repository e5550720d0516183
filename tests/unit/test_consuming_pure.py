"""The consumer loop's pure parts with plain data: jittered exponential backoff, and the context
a failed batch carries (group, stage, topic, partitions, offset ranges, reason)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gamemetrics.consuming.backoff import Backoff
from gamemetrics.consuming.failures import OffsetRange, failed, offset_ranges
from gamemetrics.ports.bus import RAW_EVENTS, Record


def _record(partition: int, offset: int, topic: str = RAW_EVENTS) -> Record:
    return Record(topic, partition, offset, b"k", b"v", {})


@given(st.floats(0.001, 1.0), st.floats(1.0, 60.0), st.integers(0, 2**32))
def test_backoff_doubles_up_to_its_cap_with_jitter_and_starts_over_after_a_success(
    initial: float, cap: float, seed: int
) -> None:
    backoff = Backoff(initial, cap, rng=random.Random(seed))
    for failure in range(80):
        ceiling = min(cap, initial * 2**failure)
        assert ceiling / 2 <= backoff.next_delay() <= ceiling
        assert backoff.failures == failure + 1
    backoff.reset()
    assert backoff.failures == 0 and initial / 2 <= backoff.next_delay() <= initial


def test_backoff_members_failing_together_do_not_retry_together() -> None:
    delays = {Backoff(1.0, 1.0, rng=random.Random(seed)).next_delay() for seed in range(20)}
    assert len(delays) == 20


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(0, 1)
    with pytest.raises(ValueError, match="cap"):
        Backoff(2, 1)


def test_a_failed_batch_names_each_partitions_offset_range() -> None:
    records = [_record(2, 17), _record(0, 5), _record(2, 15), _record(0, 9), _record(1, 3, "gdpr.requests")]
    assert offset_ranges(records) == (
        OffsetRange("gdpr.requests", 1, 3, 3), OffsetRange(RAW_EVENTS, 0, 5, 9), OffsetRange(RAW_EVENTS, 2, 15, 17),
    )
    error = failed("processor", [RAW_EVENTS], "handle", records[:4], ConnectionError("the store went away"))
    assert error.failure.reason == "ConnectionError: the store went away"
    assert "player.events.raw[0]@5..9" in str(error) and "player.events.raw[2]@15..17" in str(error)
    fields = error.failure.log_fields()
    assert fields["group"] == "processor" and fields["stage"] == "handle" and fields["topics"] == [RAW_EVENTS]
    assert fields["partitions"] == ["player.events.raw[0]", "player.events.raw[2]"]
    assert fields["offsets"] == [{"topic": RAW_EVENTS, "partition": 0, "first": 5, "last": 9},
                                 {"topic": RAW_EVENTS, "partition": 2, "first": 15, "last": 17}]


def test_a_failed_poll_names_the_topics_it_read() -> None:
    error = failed("gdpr-erasure", ["gdpr.requests"], "poll", [], OSError("refused"))
    assert error.failure.ranges == () and "(gdpr.requests)" in str(error)
