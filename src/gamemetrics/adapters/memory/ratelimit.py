"""Token buckets in process memory (the embedded default of the Cache port's rate limits)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cachetools import TTLCache


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """`rate` tokens a second per key, up to `burst` saved up, for at most `max_keys` keys at once.

    A bucket left alone for `burst / rate` seconds has filled up again, which is what a new bucket
    is: it is dropped then, so keys that stop coming (a typed e-mail address, a client id) cost
    nothing after that. Past `max_keys` keys seen within that time, the least recently used
    bucket goes first.
    """

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: TTLCache[str, _Bucket] = TTLCache(max_keys, burst / rate)

    async def take(self, key: str, amount: float) -> float:
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        # Put back on every take: the bucket's time to live counts from its last use.
        self._buckets[key] = bucket
        if amount > self._burst:
            return max((amount - bucket.tokens) / self._rate, 1.0)
        if bucket.tokens >= amount:
            bucket.tokens -= amount
            return 0.0
        return (amount - bucket.tokens) / self._rate
