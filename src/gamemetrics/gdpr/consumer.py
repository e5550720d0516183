"""One eraser in its own consumer group of `gdpr.requests`: erase, confirm its stores, commit.

The confirmation that leaves no expected store pending completes the erasure and writes its
`erasure.completed` audit entry, in the same transaction, so the entry is written exactly once
whichever eraser finishes last.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from psycopg_pool import AsyncConnectionPool

from gamemetrics.audit import AuditEntry, AuditLog
from gamemetrics.consuming.backoff import Backoff
from gamemetrics.consuming.loop import ConsumerLoop
from gamemetrics.events.gdpr_requests import RequestCodec
from gamemetrics.gdpr.erasers import PlayerEraser, group_of
from gamemetrics.gdpr.ledger import complete, confirm, record_request
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.ports.bus import GDPR_REQUESTS, Bus, Record

BATCH_SIZE = 50
log = structlog.get_logger("erasure")


class ErasureConsumer:
    """Runs `eraser` for every request on `gdpr.requests`, in the group `gdpr-<name>`."""

    def __init__(self, pool: AsyncConnectionPool, bus: Bus, eraser: PlayerEraser, *, expected: Sequence[str],
                 codec: RequestCodec, tombstones: Tombstones, audit: AuditLog, poll_timeout: float = 0.5,
                 backoff: Backoff | None = None) -> None:
        missing = set(eraser.stores) - set(expected)
        if missing:
            raise ValueError(f"eraser {eraser.name!r} confirms stores no erasure waits for: {sorted(missing)}")
        self._pool = pool
        self._eraser = eraser
        self._expected = tuple(expected)
        self._codec = codec
        self._tombstones = tombstones
        self._audit = audit
        self._loop: ConsumerLoop[tuple[Record, ...]] = ConsumerLoop(
            bus, group_of(eraser), [GDPR_REQUESTS], prepare=tuple, sink=self._erase_all,
            batch_size=BATCH_SIZE, poll_timeout=poll_timeout, backoff=backoff,
        )

    @property
    def group(self) -> str:
        return self._loop.group

    def stop(self) -> None:
        """Finish the requests in hand, commit them, and return from `run`."""
        self._loop.stop()

    async def run(self) -> None:
        """Erase until stopped or cancelled; after a failure, read again from the committed offsets."""
        await self._loop.run()

    async def _erase_all(self, records: tuple[Record, ...]) -> None:
        for record in records:
            await self.handle(record)

    async def handle(self, record: Record) -> None:
        """Erase what one request asks, confirm the eraser's stores, and complete the erasure if it was the last."""
        try:
            erasure = self._codec.decode(record.value)
        except ValueError as exc:
            log.error("skipped an erasure request that cannot be read", group=self.group, topic=record.topic,
                      partition=record.partition, offset=record.offset, error=str(exc))
            return
        tenant, game, player = erasure.tenant_id, erasure.game_id, erasure.player_id
        if not 1 <= len(player) <= 256 or "\x00" in player:  # the route refuses these; a forged message may not
            log.error("skipped an erasure request for an impossible player id", group=self.group,
                      erasure_id=str(erasure.erasure_id), topic=record.topic, partition=record.partition,
                      offset=record.offset)
            return
        player_hash = self._tombstones.player_hash(tenant, game, player)
        states = await self._eraser.erase(erasure, player_hash)
        if set(states) != set(self._eraser.stores):
            raise ValueError(f"eraser {self._eraser.name!r} answered for {sorted(states)},"
                             f" not for its stores {sorted(self._eraser.stores)}")
        async with self._pool.connection() as conn, conn.transaction():
            # Recorded here too: the request may be on the bus while its route died before recording it.
            await record_request(conn, erasure, player_hash, self._expected)
            await confirm(conn, erasure.erasure_id, states)
            done = await complete(conn, erasure.erasure_id)
            if done is None:
                return
            rows = done.rows()
            await self._audit.append(conn, AuditEntry(
                self.group, "erasure.completed", tenant, str(erasure.erasure_id),
                {"game_id": str(game), "player_hash": player_hash.hex(), **{f"{s}_rows": n for s, n in rows.items()}}))
        log.info("player erased", erasure_id=str(erasure.erasure_id), tenant_id=str(tenant),
                 seconds=round(done.seconds, 3), completed_by=self.group, **rows)
