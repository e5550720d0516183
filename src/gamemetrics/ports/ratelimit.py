"""The rate-limit side of the Cache port."""

from __future__ import annotations

from typing import Protocol


class RateLimiter(Protocol):
    def take(self, key: str, amount: float) -> float:
        """Take `amount` tokens for `key`: 0.0 when allowed, else the seconds to wait before retrying."""
        ...
