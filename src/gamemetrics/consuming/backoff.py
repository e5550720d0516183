"""Exponential backoff with jitter, capped: how long a consumer waits before reading again."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from `initial` up to `cap`, each scaled by a random factor in [0.5, 1]
    so the members of a group that failed together do not retry together."""

    def __init__(self, initial: float = 0.1, cap: float = 5.0, *, rng: random.Random | None = None) -> None:
        if not 0 < initial <= cap:
            raise ValueError(f"backoff needs 0 < initial <= cap, got initial={initial}, cap={cap}")
        self._initial = initial
        self._cap = cap
        self._rng = rng or random.Random()
        self._failures = 0

    @property
    def failures(self) -> int:
        """Failures in a row since the last success."""
        return self._failures

    def next_delay(self) -> float:
        """The wait after one more failure."""
        ceiling = min(self._cap, self._initial * 2.0 ** min(self._failures, 64))
        self._failures += 1
        return ceiling * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        """A success: the next failure waits `initial` again."""
        self._failures = 0
