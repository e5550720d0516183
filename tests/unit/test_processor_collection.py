"""The processor's after-batch hook collects garbage once every few batches, not after each one."""

from __future__ import annotations

import gc

import pytest

from gamemetrics.services.processor import main


def test_the_hook_collects_on_every_nth_call(monkeypatch: pytest.MonkeyPatch) -> None:
    collected: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *args: collected.append(len(calls)) or 0)
    hook = main._collect_every(3)
    calls: list[None] = []
    for _ in range(7):
        calls.append(None)
        hook()
    assert collected == [3, 6]
