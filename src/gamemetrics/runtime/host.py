"""`gamemetrics serve`: one process running registry services until SIGTERM or SIGINT.

HTTP services are served by uvicorn on the settings' host and port, their workers beside the
server. A worker service runs its workers alone, or with `health_port` also answers `/healthz`,
`/readyz` and `/metrics` there, for probes that need HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator, Sequence

import structlog
import uvicorn
import uvloop

from gamemetrics import registry
from gamemetrics.observability import tracing
from gamemetrics.readiness import Peers
from gamemetrics.runtime.services import running
from gamemetrics.runtime.signals import on_stop_signals
from gamemetrics.settings import Settings

log = structlog.get_logger("runtime")

# What uvicorn's own `run` exits with when the app's start-up failed.
_STARTUP_FAILED = 3


def serve(names: Sequence[str], settings: Settings, url: str, *, health_port: int | None = None,
          peers: Peers | None = None) -> int:
    """Run the services `names` in this process; the exit code (0 after a stop signal). Its `/readyz`
    includes what the `peers` report."""
    specs = [registry.service(name) for name in names]
    http = any(spec.serves_http for spec in specs)
    if tracing.configure_tracing(settings.tracing.traces_url):
        log.info("tracing", traces_url=settings.tracing.traces_url)
    try:
        # HTTP serving runs on uvloop, as uvicorn would pick; workers keep asyncio's own loop.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop if http else None) as runner:
            if http or health_port is not None:
                port = settings.port if http or health_port is None else health_port
                return runner.run(_serve_http(names, settings, url, port, peers))
            return runner.run(_run_workers(specs, settings, url))
    finally:
        tracing.shutdown_tracing()  # what is still queued is exported before the process ends


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ours stops it, and nothing is re-raised afterwards."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_http(names: Sequence[str], settings: Settings, url: str, port: int, peers: Peers | None) -> int:
    from gamemetrics.gateway import combined_app

    failed = False

    def fail() -> None:
        nonlocal failed
        failed = True
        server.should_exit = True

    app = combined_app(settings, url, names, on_failure=fail, peers=peers, on_started=_freeze_startup_objects)
    config = uvicorn.Config(app, host=settings.host, port=port, log_config=None, access_log=False,
                            http="httptools", lifespan="on", timeout_graceful_shutdown=10)
    server = _Server(config)
    on_stop_signals(lambda: setattr(server, "should_exit", True), lambda: setattr(server, "force_exit", True))
    _freeze_startup_objects()  # the modules; what the services build at start-up follows once they are built
    await server.serve()
    if not server.started:
        return _STARTUP_FAILED
    return 1 if failed else 0


async def _run_workers(specs: Sequence[registry.ServiceSpec], settings: Settings, url: str) -> int:
    stop = asyncio.Event()
    failed = False

    def fail() -> None:
        nonlocal failed
        failed = True
        stop.set()

    on_stop_signals(stop.set)
    async with running(specs, settings, url, on_failure=fail):
        log.info("started", services=[spec.name for spec in specs])
        await stop.wait()
    log.info("stopped", services=[spec.name for spec in specs])
    return 1 if failed else 0


def _freeze_startup_objects() -> None:
    """Move what start-up made out of the collector's sight, and make full collections rarer.

    The modules, schema and routes live as long as the process, and so do what services load at
    start-up (the recommender's vectors in memory, an object or more per point); a full
    collection would scan them all again each time, a pause in the middle of some request, and a
    full collection also walks every cached answer. The young generations are still collected as
    usual, and frozen objects without cycles are still freed when no longer referenced.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 1000)
