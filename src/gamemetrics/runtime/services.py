"""Builds the registry's services on adapters made from the settings, and runs their workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import structlog

from gamemetrics.audit import AuditLog
from gamemetrics.auth.secret import platform_secret
from gamemetrics.events.gdpr_requests import RequestCodec
from gamemetrics.gdpr.consumer import ErasureConsumer
from gamemetrics.gdpr.erasers import expected_stores
from gamemetrics.gdpr.tombstones import Tombstones
from gamemetrics.observability import tracing
from gamemetrics.registry import ServiceSpec
from gamemetrics.runtime.adapters import connect
from gamemetrics.service import Adapters, Service, Worker
from gamemetrics.settings import Settings

log = structlog.get_logger("runtime")


@asynccontextmanager
async def running(
    specs: Sequence[ServiceSpec], settings: Settings, url: str, *, on_failure: Callable[[], None] | None = None,
) -> AsyncIterator[dict[str, Service]]:
    """Each service built on adapters of its own, its workers running as tasks until the context ends.

    A worker that returns or raises is logged and `on_failure` is called: a process whose worker
    stopped must stop too, so its supervisor (`gamemetrics up`, Kubernetes) starts it again.
    """
    async with AsyncExitStack() as stack:
        services: dict[str, Service] = {}
        workers: dict[str, Mapping[str, Worker]] = {}
        for spec in specs:
            adapters = await stack.enter_async_context(
                connect(settings, url, name=spec.name, pool_size=spec.pool_size(settings)))
            service = services[spec.name] = await stack.enter_async_context(spec.load()(adapters, settings))
            workers[spec.name] = {**service.workers, **erasure_workers(spec, service, adapters, settings)}
        tasks: list[asyncio.Task[None]] = []
        for name, named in workers.items():
            for worker_name, worker in named.items():
                # The task's spans belong to its service (`service.name`), whichever process runs it.
                task = asyncio.create_task(worker(), name=f"{name}.{worker_name}", context=tracing.context_of(name))
                task.add_done_callback(lambda done: _stopped(done, on_failure))
                tasks.append(task)
        stack.push_async_callback(_cancel, tasks)
        yield services


def erasure_workers(spec: ServiceSpec, service: Service, adapters: Adapters,
                    settings: Settings) -> dict[str, Worker]:
    """A consumer of `gdpr.requests` for each of the service's erasers, in a group of its own.

    The stores its erasers confirm must be the ones its registry entry declares: an erasure waits
    for every declared store, so one no eraser confirms would leave every erasure pending."""
    confirmed = expected_stores(service.erasers)
    if sorted(confirmed) != sorted(spec.gdpr_stores):
        raise RuntimeError(f"{spec.name}'s erasers confirm {sorted(confirmed)} but its registry entry declares"
                           f" {sorted(spec.gdpr_stores)}; make the two agree")
    if not service.erasers:
        return {}
    secret = platform_secret(settings)
    codec, tombstones, audit = RequestCodec(secret), Tombstones(secret), AuditLog(secret)
    return {
        f"erasure.{eraser.name}": ErasureConsumer(
            adapters.pool, adapters.bus, eraser, expected=adapters.player_data_stores, codec=codec,
            tombstones=tombstones, audit=audit,
        ).run
        for eraser in service.erasers
    }


def _stopped(task: asyncio.Task[None], on_failure: Callable[[], None] | None) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is None:
        log.error("worker stopped on its own", worker=task.get_name())
    else:
        log.error("worker failed", worker=task.get_name(), exc_info=error)
    if on_failure is not None:
        on_failure()


async def _cancel(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel the workers and wait until each has finished what it holds."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
