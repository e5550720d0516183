"""Running the platform: `up`, `serve`, `migrate` and `status`."""

from __future__ import annotations

import asyncio
import gc
from typing import Annotated

import typer

from gamemetrics.cli.database import with_database
from gamemetrics.cli.output import print_json
from gamemetrics.settings import get_settings

app = typer.Typer()
SERVICES = ("ingest", "processor", "analytics", "users")


@app.command()
def migrate() -> None:
    """Apply the schema migrations to the configured database."""
    from gamemetrics.migrations import UnsupportedServer, upgrade
    from gamemetrics.runtime import database_url

    with database_url(get_settings()) as url:
        try:
            upgrade(url)
        except UnsupportedServer as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
    typer.echo("database is at the latest schema")


@app.command()
def serve(service: Annotated[str, typer.Argument(
        help="ingest, processor, analytics or users; HTTP services joined by commas (ingest,analytics,users) share one"
             " process and port")]) -> None:
    """Run a service in the foreground."""
    from gamemetrics.observability.logging import configure_logging
    from gamemetrics.runtime import database_url

    names = service.split(",")
    if any(name not in SERVICES for name in names) or (len(names) > 1 and "processor" in names):
        raise typer.BadParameter(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}, or HTTP"
                                 " services joined by commas")
    settings = get_settings()
    configure_logging(settings.log_level, service=service)
    with database_url(settings) as url:
        if service != "processor":
            import uvicorn

            from gamemetrics.gateway import combined_app

            served = combined_app(settings, url, names)
            # The modules, schema and routes just built live as long as the process: out of the
            # collector's sight, a full collection scans only what serving made (at start it held
            # about 90,000 objects, a 20 ms pause in the middle of some request each time). Full
            # collections also come a hundred times more rarely: each one scans every cached answer,
            # and on bench/analytics.py they were the slow 1% of 90-day queries (retention p99 45-57 ms,
            # 17-20 ms without them). The young generations are still collected as usual.
            gc.collect()
            gc.freeze()
            gc.set_threshold(700, 10, 1000)
            uvicorn.run(
                served, host=settings.host, port=settings.port, log_config=None,
                access_log=False, loop="uvloop", http="httptools", timeout_graceful_shutdown=10,
            )
        else:
            from gamemetrics.services.processor.main import run_processor

            asyncio.run(run_processor(settings, url))


@app.command()
def up(
    demo: Annotated[bool, typer.Option("--demo", help="Create a demo game and stream simulated traffic.")] = False,
    with_kafka: Annotated[bool, typer.Option(
        "--kafka", help="Run the bus on a local Kafka broker (jars from `make kafka-libs`) in the data dir.")] = False,
) -> None:
    """Start the whole platform on embedded defaults under one base URL; Ctrl-C stops it."""
    from gamemetrics.platform import run_platform

    raise typer.Exit(run_platform(get_settings(), demo=demo, kafka=with_kafka))


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False) -> None:
    """Events stored and dead-lettered per game, and each consumer group's lag."""
    from gamemetrics.platform import local_broker_of
    from gamemetrics.status import collect_status, print_status

    settings = get_settings()
    bootstrap = None if settings.kafka_bootstrap else local_broker_of(settings.data_dir.resolve())
    if bootstrap:  # beside `up --kafka`: its lag is on the broker it started, not in the embedded log
        settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
    report = with_database(collect_status, settings)
    if as_json:
        print_json(report)
    else:
        print_status(report)
