"""The archive run: each event day past its game's online window goes to object storage as
Parquet, is read back and verified, and only then leaves the database.

Per game and day: the parts the manifest lists are read and checked; online rows not yet in them
become new parts (uploaded, read back); the manifest is written last; then the verified rows are
deleted online and an emptied day partition is dropped, in one transaction with its audit entry.
A run killed anywhere leaves either parts no manifest lists (written again under the same names
next time), or a manifest whose rows are still online (deleted next time): never a lost row, and
never a row in both places once a run has finished.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import Counter
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from gamemetrics.archive import parquet
from gamemetrics.archive.layout import (
    ArchiveError,
    Manifest,
    load_manifest,
    manifest_key,
    next_part_number,
    store_manifest,
)
from gamemetrics.audit import AuditEntry, AuditLog
from gamemetrics.ports.objects import Objects, ObjectStoreError
from gamemetrics.services.retention.online import (
    OnlineDay,
    Readers,
    count_moved,
    day_bounds,
    ids_digest_sql,
    partition_name,
    read_online_day,
)
from gamemetrics.services.retention.parts import EncodedPart, encode_part, read_day, store_part
from gamemetrics.services.retention.policy import Policy, PolicyStore
from gamemetrics.services.retention.trim import Trimmer, TrimReport

RUN_LOCK = 0x676D5F726574656E  # "gm_reten"
ACTOR = "retention"
DAYS = Counter("gamemetrics_retention_days_total", "Event days handled by retention runs", ["outcome"])
ROWS_ARCHIVED = Counter("gamemetrics_retention_rows_archived_total", "Event rows archived and deleted online")


class RunBusy(RuntimeError):
    """Another retention run holds the lock."""


@dataclass(frozen=True, slots=True)
class DayJob:
    """One game's day due for the archive."""

    tenant_id: uuid.UUID
    game_id: uuid.UUID
    day: date
    online_rows: int


@dataclass(slots=True)
class DayOutcome:
    job: DayJob
    state: str
    """archived, planned (dry run) or failed."""
    rows_archived: int = 0
    rows_deleted: int = 0
    partition_dropped: bool = False
    error: str | None = None


@dataclass(slots=True)
class RunReport:
    dry_run: bool
    days: list[DayOutcome] = field(default_factory=list)
    trimmed: TrimReport | None = None

    @property
    def failed(self) -> list[DayOutcome]:
        return [day for day in self.days if day.state == "failed"]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A day read, checked against its manifest (`manifest`, None when there is none yet) and its new
    parts encoded: what is left is to store them, switch the manifest and delete online."""

    job: DayJob
    key: str
    manifest: Manifest | None
    read: OnlineDay
    fresh_rows: int
    parts: list[EncodedPart]


_T = TypeVar("_T")
Step = Callable[[str, DayJob], None]
"""Told of each step of a day as it completes: `read`, `uploaded`, `manifest`, `deleted`."""


class Archiver:
    """Runs archive passes over the store into `objects`."""

    def __init__(self, pool: AsyncConnectionPool, objects: Objects, audit: AuditLog, *, part_rows: int,
                 zstd_level: int, actor: str = ACTOR, trimmer: Trimmer | None = None) -> None:
        if not isinstance(pool.conninfo, str):
            raise TypeError("the archive reads online rows on connections of its own: give its pool a URL")
        self._pool = pool
        self._url = pool.conninfo
        self._objects = objects
        self._audit = audit
        self._part_rows = part_rows
        self._zstd_level = zstd_level
        self._actor = actor
        self._trimmer = trimmer

    async def due(self, today: date) -> list[DayJob]:
        """Every game's day, still online, that is past its game's online window."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'events'::regclass ORDER BY c.relname")
            names = [row[0] for row in await cur.fetchall()]
            # No game's window is shorter than this: the partitions inside it (most of them) are not counted.
            cur = await conn.execute("SELECT min(events_online_days) FROM retention_policies")
            stored = (await cur.fetchone() or (None,))[0]
            shortest = min(Policy().events_online_days, stored if stored is not None else Policy().events_online_days)
            jobs: list[DayJob] = []
            for name in names:
                day = datetime.strptime(name.removeprefix("events_"), "%Y%m%d").date()
                if day >= today - timedelta(days=max(1, shortest)):
                    continue
                cur = await conn.execute(
                    f'SELECT tenant_id, game_id, count(*) FROM "{name}" GROUP BY 1, 2 ORDER BY 1, 2')
                for tenant_id, game_id, rows in await cur.fetchall():
                    policy = await PolicyStore.effective_in(conn, tenant_id, game_id)
                    if day < today - timedelta(days=policy.events_online_days):
                        jobs.append(DayJob(tenant_id, game_id, day, rows))
        return jobs

    async def run(self, *, today: date | None = None, dry_run: bool = False, step: Step | None = None,
                  planned: Callable[[list[DayJob]], None] | None = None) -> RunReport:
        """One pass; RunBusy when another run holds the lock. A failed day is reported, the others go on."""
        today = today or datetime.now(UTC).date()
        report = RunReport(dry_run)
        async with self._pool.connection() as lock:
            cur = await lock.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK,))
            row = await cur.fetchone()
            if not row or not row[0]:
                raise RunBusy("another retention run is in progress (it holds the retention lock); try again later")
            try:
                jobs = await self.due(today)
                if planned:
                    planned(jobs)
                if dry_run:
                    report.days += [DayOutcome(job, "planned") for job in jobs]
                else:
                    report.days += await self._days(jobs, step)
                if self._trimmer and not dry_run:
                    report.trimmed = await self._trimmer.trim(today)
                if not dry_run:
                    await self._audit.record(self._pool, AuditEntry(
                        self._actor, "retention.run", None, today.isoformat(),
                        {"days": len(report.days), "failed": len(report.failed),
                         "rows_archived": sum(d.rows_archived for d in report.days)}))
            finally:
                await lock.execute("SELECT pg_advisory_unlock(%s)", (RUN_LOCK,))
        return report

    async def _days(self, jobs: list[DayJob], step: Step | None) -> list[DayOutcome]:
        """Archive `jobs` in order as a pipeline of three days: while one day's parts are uploaded,
        verified and its rows deleted, the next day's are encoded and the one after is read (the
        store's work, the reading thread's and the encoding's run beside the verification)."""
        tell = step or (lambda name, job: None)
        readers = Readers(self._url)
        outcomes: list[DayOutcome] = []
        ahead: asyncio.Task[OnlineDay] | None = None
        committing: asyncio.Task[DayOutcome] | None = None
        try:
            for n, job in enumerate(jobs):
                online = ahead or asyncio.ensure_future(self._read(job, readers))
                ahead = asyncio.ensure_future(self._read(jobs[n + 1], readers)) if n + 1 < len(jobs) else None
                try:
                    prepared = await self._guarded(job, self._prepare(job, tell, online))
                finally:
                    _discard(online)
                if committing is not None:
                    outcomes.append(await committing)
                    committing = None
                if isinstance(prepared, DayOutcome):
                    outcomes.append(prepared)
                else:
                    committing = asyncio.ensure_future(self._guarded(job, self._commit(prepared, tell)))
            if committing is not None:
                outcomes.append(await committing)
                committing = None
        finally:
            if ahead is not None:
                _discard(ahead)
            if committing is not None:
                committing.cancel()
            readers.close()
        return outcomes

    async def _read(self, job: DayJob, readers: Readers | None = None) -> OnlineDay:
        return await read_online_day(readers or self._url, job.tenant_id, job.game_id, job.day, self._part_rows)

    async def _guarded(self, job: DayJob, work: Awaitable[_T]) -> _T | DayOutcome:
        """`work`'s result, or the day's failure reported (metric and audit entry) when it cannot be trusted."""
        try:
            return await work
        except (ArchiveError, ObjectStoreError) as exc:
            DAYS.labels("failed").inc()
            await self._audit.record(self._pool, AuditEntry(
                self._actor, "retention.day_failed", job.tenant_id, f"{job.game_id}/{job.day}", {"error": str(exc)}))
            return DayOutcome(job, "failed", error=str(exc))

    async def archive_day(self, job: DayJob, step: Step, online_day: Awaitable[OnlineDay] | None = None) -> DayOutcome:
        """Archive, verify and delete one game's day (see the module's docstring)."""
        return await self._commit(await self._prepare(job, step, online_day or self._read(job)), step)

    async def _prepare(self, job: DayJob, step: Step, online_day: Awaitable[OnlineDay]) -> _Prepared:
        """The day's online rows checked against what its manifest lists, and those not archived yet encoded."""
        tenant_id, game_id, day = job.tenant_id, job.game_id, job.day
        key = manifest_key(tenant_id, game_id, day)
        manifest = await load_manifest(self._objects, key)
        archived = await read_day(self._objects, manifest) if manifest else parquet.SCHEMA.empty_table()
        read = await online_day
        online = read.rows
        step("read", job)
        fresh, known, kept = await asyncio.to_thread(_split, online, archived)
        if not await asyncio.to_thread(_same_rows, known, kept):
            raise ArchiveError(f"online rows of {key.rsplit('/', 1)[0]} differ from their archived copies;"
                               " nothing was deleted")
        number = next_part_number(manifest)
        # Nothing of the day archived yet (the usual case): the parts' hashes were made as it was read.
        hashes = read.part_hashes if fresh is online else None
        parts = [await encode_part(tenant_id, game_id, day, number + n, fresh.slice(start, self._part_rows),
                                   zstd_level=self._zstd_level, content_hash=hashes[n] if hashes else None)
                 for n, start in enumerate(range(0, fresh.num_rows, self._part_rows))]
        return _Prepared(job, key, manifest, read, fresh.num_rows, parts)

    async def _commit(self, prepared: _Prepared, step: Step) -> DayOutcome:
        """Upload and verify the prepared parts, write the manifest, then delete the verified rows online."""
        job, manifest = prepared.job, prepared.manifest
        if prepared.parts:
            files = list(manifest.files if manifest else ())
            for part in prepared.parts:
                files.append(await store_part(self._objects, part))
                step("uploaded", job)
            manifest = Manifest(job.tenant_id, job.game_id, job.day, parquet.SCHEMA_VERSION, tuple(files),
                                datetime.now(UTC))
            await store_manifest(self._objects, manifest)
            step("manifest", job)
        assert manifest is not None  # online rows exist, so either they were archived or they are now
        deleted, dropped = await self._delete_online(job, prepared.read.rows["event_id"], prepared.read.ids_digest,
                                                     manifest, prepared.key)
        step("deleted", job)
        DAYS.labels("archived").inc()
        ROWS_ARCHIVED.inc(deleted)
        return DayOutcome(job, "archived", rows_archived=prepared.fresh_rows, rows_deleted=deleted,
                          partition_dropped=dropped)

    async def _delete_online(self, job: DayJob, ids: pa.ChunkedArray[Any], digest: str, manifest: Manifest,
                             key: str) -> tuple[int, bool]:
        """Delete exactly the verified rows; drop the day's partition if nothing else is left in it."""
        async with self._pool.connection() as conn, conn.transaction():
            deleted, dropped = await _delete_verified(conn, job, ids, digest)
            await count_moved(conn, job.tenant_id, job.game_id, deleted)
            await conn.execute(
                "INSERT INTO archived_days (tenant_id, game_id, day, rows, manifest_key) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (tenant_id, game_id, day) DO UPDATE SET rows = excluded.rows, archived_at = now()",
                (job.tenant_id, job.game_id, job.day, manifest.rows, key))
            await self._audit.append(conn, AuditEntry(
                self._actor, "retention.day_archived", job.tenant_id, f"{job.game_id}/{job.day}",
                {"rows_deleted": deleted, "rows_archived": manifest.rows, "manifest": key,
                 "partition_dropped": dropped}))
        return deleted, dropped


def _split(online: pa.Table, archived: pa.Table) -> tuple[pa.Table, pa.Table, pa.Table]:
    """The online rows not archived yet, those archived already, and the archived copies of the latter."""
    if not archived.num_rows:  # the usual case: a day archived for the first time
        return online, online.slice(0, 0), archived
    known = pc.is_in(online["event_id"], value_set=archived["event_id"])
    return (online.filter(pc.invert(known)), online.filter(known),
            archived.filter(pc.is_in(archived["event_id"], value_set=online["event_id"])))


def _same_rows(online: pa.Table, archived: pa.Table) -> bool:
    """Whether two tables hold the same rows, whatever their order."""
    return bool(parquet.in_event_order(online).equals(parquet.in_event_order(archived)))


def _discard(task: asyncio.Task[OnlineDay]) -> None:
    """Cancel a read nobody awaits any more, or take its failure (a day that failed first reports its own)."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


async def _delete_verified(conn: AsyncConnection, job: DayJob, ids: pa.ChunkedArray[Any],
                           digest: str) -> tuple[int, bool]:
    """Delete the game's rows of the day whose ids are `ids` (`digest` the store's `ids_digest_sql` of them,
    taken as they were read); whether the day's partition was dropped.

    The partition is locked against writers first, so the rows compared are the rows deleted: when
    they are exactly the verified ones (the usual case) they go by the game's key alone, or with the
    whole partition when no other game has rows in it, instead of by a list of every id."""
    name = partition_name(job.day)
    row = await (await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))).fetchone()
    if not row or not row[0]:
        return 0, False
    await conn.execute(f'LOCK TABLE "{name}" IN SHARE ROW EXCLUSIVE MODE')
    cur = await conn.execute(
        f"SELECT {ids_digest_sql('mine')}, coalesce(bool_or(NOT mine), false) FROM (SELECT event_id,"
        f' tenant_id = %s AND game_id = %s AS mine FROM "{name}") AS day', (job.tenant_id, job.game_id))
    online, online_digest, others = await cur.fetchone() or (0, "", False)
    if online == len(ids) and online_digest == digest:
        if not others:
            await conn.execute(f'DROP TABLE "{name}"')
            return online, True
        cur = await conn.execute(f'DELETE FROM "{name}" WHERE tenant_id = %s AND game_id = %s',
                                 (job.tenant_id, job.game_id))
        return cur.rowcount, False
    # Rows came or went since they were read: delete the verified ones by id; the others wait for the next run.
    start, end = day_bounds(job.day)
    cur = await conn.execute(
        "DELETE FROM events WHERE tenant_id = %s AND game_id = %s AND event_time >= %s AND event_time < %s"
        " AND event_id = ANY(%s::uuid[])", (job.tenant_id, job.game_id, start, end, ids.to_pylist()))
    return cur.rowcount, await drop_if_empty(conn, job.day)


async def drop_if_empty(conn: AsyncConnection, day: date) -> bool:
    """Drop the day's partition of `events` when no tenant has rows left in it."""
    name = partition_name(day)
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    row = await cur.fetchone()
    if not row or not row[0]:
        return False
    cur = await conn.execute(f'SELECT EXISTS (SELECT 1 FROM "{name}")')
    row = await cur.fetchone()
    if row and row[0]:
        return False
    await conn.execute(f'DROP TABLE "{name}"')
    return True
