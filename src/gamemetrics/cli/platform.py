"""Running the platform: `up`, `serve`, `migrate` and `status`."""

from __future__ import annotations

import contextlib
import functools
from typing import Annotated, Any

import typer

from gamemetrics import registry
from gamemetrics.cli.database import with_database
from gamemetrics.cli.output import print_json
from gamemetrics.settings import get_settings

app = typer.Typer()
SERVICES = registry.NAMES
HTTP_SERVICES = registry.HTTP_NAMES


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
def serve(
    service: Annotated[str, typer.Argument(
        help=f"One of {', '.join(SERVICES)}; HTTP services joined by commas ({','.join(HTTP_SERVICES)}) share one"
             " process and port")],
    health_port: Annotated[int | None, typer.Option(
        "--health-port", help="For a worker service: also answer /healthz, /readyz and /metrics on this port.")] = None,
    peers: Annotated[list[str] | None, typer.Option(
        "--peer", metavar="NAME=URL",
        help="Include in /readyz the checks of service NAME reported at URL (another process's /readyz);"
             " repeat for each process.")] = None,
) -> None:
    """Run a service in the foreground until SIGTERM or SIGINT."""
    from gamemetrics.observability.logging import configure_logging
    from gamemetrics.runtime import database_url
    from gamemetrics.runtime.host import serve as serve_services

    names = service.split(",")
    try:
        specs = [registry.service(name) for name in names]
    except KeyError:
        raise typer.BadParameter(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}, or HTTP"
                                 " services joined by commas") from None
    if len(specs) > 1 and not all(spec.serves_http for spec in specs):
        raise typer.BadParameter(f"only HTTP services ({', '.join(HTTP_SERVICES)}) share a process; not {service!r}")
    if health_port is not None and any(spec.serves_http for spec in specs):
        raise typer.BadParameter("HTTP services answer probes on their own port", param_hint="--health-port")
    peer_urls: dict[str, list[str]] = {}
    for peer in peers or ():
        name, _, url = peer.partition("=")
        if name not in SERVICES or not url:
            raise typer.BadParameter(f"{peer!r} is not NAME=URL of a service", param_hint="--peer")
        peer_urls.setdefault(name, []).append(url)
    settings = get_settings()
    configure_logging(settings.log_level, service=service)
    with database_url(settings) as url:
        code = serve_services(names, settings, url, health_port=health_port, peers=peer_urls)
    raise typer.Exit(code)


@app.command()
def up(
    demo: Annotated[bool, typer.Option("--demo", help="Create a demo game and stream simulated traffic.")] = False,
    with_kafka: Annotated[bool, typer.Option(
        "--kafka", help="Run the bus on a local Kafka broker (jars from `make kafka-libs`) in the data dir.")] = False,
    kafka_via: Annotated[list[str] | None, typer.Option(
        "--kafka-via", metavar="SERVICE=HOST:PORT",
        help="With --kafka: SERVICE (or one worker member, 'processor 1') reaches the broker only through"
             " HOST:PORT (a proxy forwarding to the listener the broker advertises there, named in"
             " kafka/running.json). Repeatable.")] = None,
) -> None:
    """Start the whole platform on embedded defaults under one base URL; Ctrl-C or SIGTERM stops it."""
    from gamemetrics.platform import run_platform

    routes: dict[str, str] = {}
    for route in kafka_via or ():
        name, _, address = route.partition("=")
        host, _, port = address.rpartition(":")
        if name.split(" ")[0] not in SERVICES or not host or not port.isdigit():
            raise typer.BadParameter(f"{route!r} is not SERVICE=HOST:PORT of a service", param_hint="--kafka-via")
        routes[name] = address
    if routes and not with_kafka:
        raise typer.BadParameter("routes to the local broker need --kafka", param_hint="--kafka-via")
    raise typer.Exit(run_platform(get_settings(), demo=demo, kafka=with_kafka, kafka_via=routes))


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout (a line each with --watch).")]
        = False,
    watch: Annotated[float | None, typer.Option(
        "--watch", min=0.1, help="A report every this many seconds, on one connection, until interrupted.")] = None,
    count: Annotated[int | None, typer.Option("--count", min=1, help="With --watch: stop after this many.")]
        = None,
) -> None:
    """Events stored and dead-lettered per game, each consumer group's lag, and the restarts of a running `up`."""
    from gamemetrics.platform import local_broker_of
    from gamemetrics.status import collect_status, print_status, watch_status
    from gamemetrics.supervision import supervised_processes

    settings = get_settings()
    bootstrap = None if settings.kafka.bootstrap else local_broker_of(settings.data_dir.resolve())
    if bootstrap:  # beside `up --kafka`: its lag is on the broker it started, not in the embedded log
        settings = settings.updated(kafka={"bootstrap": bootstrap})

    def emit(report: dict[str, Any]) -> None:
        # Beside a running `up`: its processes, with how often each was restarted.
        report["processes"] = supervised_processes(settings.data_dir.resolve()) or []
        if as_json:
            print_json(report)
        else:
            print_status(report)

    if watch is None:
        emit(with_database(collect_status, settings))
        return
    with contextlib.suppress(KeyboardInterrupt):
        with_database(functools.partial(watch_status, every=watch, count=count, emit=emit), settings)
