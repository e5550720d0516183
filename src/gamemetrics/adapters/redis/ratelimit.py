"""Token buckets kept in Redis and taken from by one Lua script, so every process shares each bucket."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gamemetrics.ports.cache import CacheError

# Runs atomically on the server, with the server's clock, so processes on machines whose clocks
# disagree still share one bucket. The same arithmetic as the in-process limiter. A bucket left
# alone for burst / rate seconds has filled up again, which is what a missing bucket is, so it
# expires then. The wait is returned as a string: Lua numbers become integers on the way out.
_TAKE = """
local rate, burst, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local wait = 0
if amount > burst then
    wait = math.max((amount - tokens) / rate, 1.0)
elseif tokens >= amount then
    tokens = tokens - amount
else
    wait = (amount - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'updated', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(burst / rate * 1000)))
return string.format('%.17g', wait)
"""


class RedisRateLimiter:
    """`rate` tokens a second per key, up to `burst` saved up, in buckets under `name:` keys."""

    def __init__(self, client: Redis, name: str, rate: float, burst: float) -> None:
        self._script = client.register_script(_TAKE)
        self._prefix = f"{name}:"
        self._args = (repr(float(rate)), repr(float(burst)))

    async def take(self, key: str, amount: float) -> float:
        try:
            wait = await self._script(keys=[self._prefix + key], args=[*self._args, repr(float(amount))])
        except RedisError as exc:
            raise CacheError(f"Redis did not answer the rate limit of {self._prefix}{key}: {exc}") from exc
        return float(wait)
