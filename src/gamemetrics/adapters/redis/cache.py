"""Bytes with a time to live in Redis, under a namespace of their own."""

from __future__ import annotations

import math
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gamemetrics.ports.cache import CacheError


class RedisCache:
    """Values under `namespace:` keys; Redis expires them, and its maxmemory policy bounds them."""

    def __init__(self, client: Redis, namespace: str) -> None:
        self._client = client
        self._prefix = f"{namespace}:"

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._client.get(self._prefix + key)
        except RedisError as exc:
            raise CacheError(f"Redis did not answer GET {self._prefix}{key}: {exc}") from exc
        return _as_bytes(value)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            values = await self._client.mget([self._prefix + key for key in keys])
        except RedisError as exc:
            raise CacheError(f"Redis did not answer MGET of {len(keys)} keys under {self._prefix}: {exc}") from exc
        return [_as_bytes(value) for value in values]

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        try:
            # Whole milliseconds, at least one: PX 0 is an error, and a shorter life is no life.
            await self._client.set(self._prefix + key, value, px=max(1, math.ceil(ttl_seconds * 1000)))
        except RedisError as exc:
            raise CacheError(f"Redis did not answer SET {self._prefix}{key}: {exc}") from exc

    async def delete(self, key: str) -> None:
        try:
            await self._client.delete(self._prefix + key)
        except RedisError as exc:
            raise CacheError(f"Redis did not answer DEL {self._prefix}{key}: {exc}") from exc


def _as_bytes(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    raise CacheError(f"Redis answered {type(value).__name__}, not bytes: the client must not decode responses")
