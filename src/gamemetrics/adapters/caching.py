"""The Cache port's adapters for one process, chosen by the settings: Redis when GAMEMETRICS_REDIS_URL
is set, else in this process's memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from gamemetrics.adapters.memory.cache import MemoryCache
from gamemetrics.adapters.memory.ratelimit import TokenBucketLimiter
from gamemetrics.ports.cache import Cache, CacheError, RateLimiter
from gamemetrics.settings import CacheSettings

if TYPE_CHECKING:
    from redis.asyncio import Redis


class Caching:
    """Makes the caches and rate limiters a process's services are built with; one Redis client for all."""

    def __init__(self, settings: CacheSettings) -> None:
        self._settings = settings
        self._redis: Redis | None = None
        if settings.redis_url:  # the client is imported only where it is used
            from redis.asyncio import Redis

            timeout = settings.redis_timeout_seconds
            self._redis = Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._caches: dict[str, Cache] = {}

    @property
    def shared(self) -> bool:
        """Whether caches and limits are shared with other processes (Redis)."""
        return self._redis is not None

    def cache(self, namespace: str) -> Cache:
        """The cache of `namespace`; the same one for every caller of this process."""
        cache = self._caches.get(namespace)
        if cache is None:
            if self._redis is not None:
                from gamemetrics.adapters.redis.cache import RedisCache

                cache = RedisCache(self._redis, f"{self._settings.redis_namespace}:{namespace}")
            else:
                cache = MemoryCache(self._settings.cache_max_bytes)
            self._caches[namespace] = cache
        return cache

    def limiter(self, name: str, rate: float, burst: float) -> RateLimiter:
        """`rate` tokens a second per key up to `burst`; `name` keeps each limiter's buckets apart."""
        if self._redis is not None:
            from gamemetrics.adapters.redis.ratelimit import RedisRateLimiter

            return RedisRateLimiter(self._redis, f"{self._settings.redis_namespace}:limit:{name}", rate, burst)
        return TokenBucketLimiter(rate, burst, max_keys=self._settings.rate_limit_max_keys)

    async def ping(self) -> None:
        """Raise if the shared backend cannot be reached (a readiness check); in-process always answers."""
        if self._redis is not None:
            from redis.exceptions import RedisError

            try:
                await self._redis.ping()
            except RedisError as exc:
                raise CacheError(f"Redis does not answer: {exc}") from exc

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


@asynccontextmanager
async def open_caching(settings: CacheSettings) -> AsyncIterator[Caching]:
    """The process's caching, closed on exit. Connections to Redis are made when first used."""
    caching = Caching(settings)
    try:
        yield caching
    finally:
        await caching.close()
