"""Builds the registry's services on adapters made from the settings, and runs their workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import structlog

from gamemetrics.registry import ServiceSpec
from gamemetrics.runtime.adapters import connect
from gamemetrics.service import Service
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
        for spec in specs:
            adapters = await stack.enter_async_context(
                connect(settings, url, name=spec.name, pool_size=spec.pool_size(settings)))
            services[spec.name] = await stack.enter_async_context(spec.load()(adapters, settings))
        tasks: list[asyncio.Task[None]] = []
        for name, service in services.items():
            for worker_name, worker in service.workers.items():
                task = asyncio.create_task(worker(), name=f"{name}.{worker_name}")
                task.add_done_callback(lambda done: _stopped(done, on_failure))
                tasks.append(task)
        stack.push_async_callback(_cancel, tasks)
        yield services


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
