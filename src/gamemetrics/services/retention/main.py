"""Builds the retention service: the policy routes, the daily archive run and the archive's eraser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gamemetrics.audit import AuditLog
from gamemetrics.auth.secret import platform_secret
from gamemetrics.auth.verifier import token_verifier
from gamemetrics.service import Adapters, Service
from gamemetrics.services.retention.archiver import ACTOR, Archiver
from gamemetrics.services.retention.eraser import ArchiveEraser
from gamemetrics.services.retention.http import PolicyRoutes
from gamemetrics.services.retention.schedule import DailyRun, parse_time
from gamemetrics.services.retention.trim import Trimmer
from gamemetrics.settings import Settings
from gamemetrics.tenancy.store import TenancyStore
from gamemetrics.web.health import database_probe
from gamemetrics.web.principal import Guard
from gamemetrics.web.refusals import exception_handlers


@asynccontextmanager
async def build(adapters: Adapters, settings: Settings) -> AsyncIterator[Service]:
    """The retention service on `adapters`; it needs their object storage."""
    if adapters.objects is None:
        raise RuntimeError("the retention service needs object storage (Adapters.objects)")
    pool, objects, options = adapters.pool, adapters.objects, settings.retention
    audit = AuditLog(platform_secret(settings))
    tenancy = TenancyStore(pool)
    trimmer = Trimmer(pool, objects, audit, adapters.bus, bus_retention_hours=settings.bus.retention_hours,
                      refusal_days=settings.retention.retention_refusal_days, actor=ACTOR)
    archiver = Archiver(pool, objects, audit, part_rows=options.retention_part_rows,
                        zstd_level=options.retention_zstd_level, trimmer=trimmer)
    routes = PolicyRoutes(pool, Guard(token_verifier(settings, pool), tenancy), tenancy, audit).routes()
    daily = {} if options.retention_run_at == "off" else {
        "daily": DailyRun(archiver, parse_time(options.retention_run_at))}
    yield Service(
        routes=routes, exception_handlers=exception_handlers(),
        workers=daily,
        checks={"database": database_probe(pool)},
        erasers=[ArchiveEraser(pool, objects, zstd_level=options.retention_zstd_level)],
    )
