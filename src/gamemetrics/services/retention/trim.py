"""The other stores' retention, trimmed by the same runs: dead letters, notification history (the
outbox), ingest's refusal counts, the embedded bus's log, archived days past their archive window,
and the token signing keys retired long enough ago that no token they signed can still be presented.

Access tokens are JWTs, kept nowhere; dashboard sessions live in the cache with their own time
to live: neither leaves anything to trim."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from psycopg_pool import AsyncConnectionPool

from gamemetrics.archive.layout import load_manifest
from gamemetrics.audit import AuditEntry, AuditLog
from gamemetrics.ports.bus import Bus, Trimmable
from gamemetrics.ports.objects import Objects
from gamemetrics.services.retention.policy import Policy, PolicyStore


@dataclass(slots=True)
class TrimReport:
    dead_letters: int = 0
    notifications: int = 0
    bus_messages: int = 0
    archived_days_expired: int = 0
    archive_files_deleted: int = 0
    signing_keys: int = 0
    ingest_refusals: int = 0


RETIRED_KEYS_KEPT_DAYS = 30
"""A retired signing key verifies nothing (its last token expired before it was retired); its sealed
private key is kept this long for the record, then deleted."""


class Trimmer:
    """Deletes what each tenant's (or game's) policy no longer keeps."""

    def __init__(self, pool: AsyncConnectionPool, objects: Objects, audit: AuditLog, bus: Bus | None,
                 *, bus_retention_hours: float, actor: str, refusal_days: int = 90) -> None:
        self._pool = pool
        self._refusal_days = refusal_days
        self._objects = objects
        self._audit = audit
        self._bus = bus
        self._bus_retention_hours = bus_retention_hours
        self._actor = actor

    async def trim(self, today: date) -> TrimReport:
        report = TrimReport()
        async with self._pool.connection() as conn:
            games = await (await conn.execute("SELECT tenant_id, game_id FROM games ORDER BY 1, 2")).fetchall()
            tenants = sorted({tenant for tenant, _ in games})
            for tenant, game in games:
                policy = await PolicyStore.effective_in(conn, tenant, game)
                cur = await conn.execute(
                    "DELETE FROM dead_letters WHERE tenant_id = %s AND game_id = %s AND created_at < %s",
                    (tenant, game, today - timedelta(days=policy.dead_letter_days)))
                report.dead_letters += cur.rowcount
            # Dead letters that name no game (unreadable messages) follow the defaults.
            cur = await conn.execute("DELETE FROM dead_letters WHERE game_id IS NULL AND created_at < %s",
                                     (today - timedelta(days=Policy().dead_letter_days),))
            report.dead_letters += cur.rowcount
            for tenant in tenants:
                policy = await PolicyStore.effective_in(conn, tenant, None)
                cur = await conn.execute("DELETE FROM outbox WHERE tenant_id = %s AND created_at < %s",
                                         (tenant, today - timedelta(days=policy.notification_days)))
                report.notifications += cur.rowcount
            cur = await conn.execute("DELETE FROM signing_keys WHERE retired_at < %s",
                                     (today - timedelta(days=RETIRED_KEYS_KEPT_DAYS),))
            report.signing_keys = cur.rowcount
            # Counts of refused requests carry no player data: one window for every tenant.
            cur = await conn.execute("DELETE FROM ingest_refusals WHERE hour < %s",
                                     (today - timedelta(days=self._refusal_days),))
            report.ingest_refusals = cur.rowcount
        if isinstance(self._bus, Trimmable):
            report.bus_messages = await self._bus.trim(self._bus_retention_hours)
        await self._expire_archives(today, report)
        await self._audit.record(self._pool, AuditEntry(
            self._actor, "retention.trimmed", None, today.isoformat(),
            {"dead_letters": report.dead_letters, "notifications": report.notifications,
             "bus_messages": report.bus_messages, "archived_days_expired": report.archived_days_expired,
             "signing_keys": report.signing_keys, "ingest_refusals": report.ingest_refusals}))
        return report

    async def _expire_archives(self, today: date, report: TrimReport) -> None:
        """Delete archived days past their game's archive window: the parts, then the manifest, then the row."""
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT tenant_id, game_id, day, manifest_key FROM archived_days ORDER BY 1, 2, 3")).fetchall()
            expired = []
            for tenant, game, day, key in rows:
                policy = await PolicyStore.effective_in(conn, tenant, game)
                if day < today - timedelta(days=policy.archive_days):
                    expired.append((tenant, game, day, key))
        for tenant, game, day, key in expired:
            manifest = await load_manifest(self._objects, key)
            for file in manifest.files if manifest else ():
                await self._objects.delete(file.key)
                report.archive_files_deleted += 1
            await self._objects.delete(key)
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("DELETE FROM archived_days WHERE tenant_id = %s AND game_id = %s AND day = %s",
                                   (tenant, game, day))
                await self._audit.append(conn, AuditEntry(
                    self._actor, "retention.archive_expired", tenant, f"{game}/{day}",
                    {"files": len(manifest.files) if manifest else 0, "rows": manifest.rows if manifest else 0}))
            report.archived_days_expired += 1
