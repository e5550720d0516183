"""Token buckets in process memory (the embedded default of the Cache port's rate limits)."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """`rate` tokens a second per key, up to `burst` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, amount: float) -> float:
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if amount > self._burst:
            return max((amount - bucket.tokens) / self._rate, 1.0)
        if bucket.tokens >= amount:
            bucket.tokens -= amount
            return 0.0
        return (amount - bucket.tokens) / self._rate
