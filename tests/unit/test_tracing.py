"""W3C traceparent handling: a valid parent's trace continues, anything else starts a new trace."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from gamemetrics.observability.tracing import child_of

VALID = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_child_keeps_the_trace_and_the_flags_with_a_new_span() -> None:
    child = child_of(PARENT)
    assert VALID.match(child)
    assert child.split("-")[1] == PARENT.split("-")[1]
    assert child.split("-")[2] != PARENT.split("-")[2]
    assert child_of(PARENT.replace("-01", "-00")).endswith("-00")


def test_unusable_parents_start_a_new_sampled_trace() -> None:
    for parent in (None, "", "garbage", PARENT.replace("4bf9", "zzzz"),
                   "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                   "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"):
        child = child_of(parent)
        assert VALID.match(child) and child.endswith("-01")
        assert child.split("-")[1] != PARENT.split("-")[1]


@given(st.text(max_size=80))
def test_any_header_value_gives_a_valid_traceparent(value: str) -> None:
    assert VALID.match(child_of(value))
