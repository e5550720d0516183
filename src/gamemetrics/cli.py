"""The `gamemetrics` command: run the platform, its services, migrations and admin tasks."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from gamemetrics import registry
from gamemetrics.settings import Settings, get_settings

app = typer.Typer(no_args_is_help=True, help="GameMetrics Pro: real-time player analytics for game studios.")
admin = typer.Typer(no_args_is_help=True, help="Tenants, games, write keys and access tokens.")
app.add_typer(admin, name="admin")
kafka = typer.Typer(no_args_is_help=True, help="The Kafka bus: topics on a cluster, a local broker to try it.")
app.add_typer(kafka, name="kafka")

T = TypeVar("T")
SERVICES = registry.NAMES
HTTP_SERVICES = registry.HTTP_NAMES


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, default=str))


def _with_database(work: Callable[[Settings, str], Awaitable[T]], settings: Settings | None = None) -> T:
    """Run `work` against the configured (or embedded) database, migrated to head."""
    from gamemetrics.migrations import upgrade
    from gamemetrics.runtime import database_url

    settings = settings or get_settings()
    with database_url(settings) as url:
        upgrade(url)
        return asyncio.run(work(settings, url))


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
) -> None:
    """Start the whole platform on embedded defaults under one base URL; Ctrl-C or SIGTERM stops it."""
    from gamemetrics.platform import run_platform

    raise typer.Exit(run_platform(get_settings(), demo=demo, kafka=with_kafka))


@kafka.command("init")
def kafka_init() -> None:
    """Create the platform's topics on the settings' Kafka cluster (idempotent); exit 1 if existing ones drift."""
    from gamemetrics.adapters.kafka import KafkaBus
    from gamemetrics.ports.bus import BusError
    from gamemetrics.runtime import topic_partitions

    settings = get_settings()
    if not settings.kafka_bootstrap:
        typer.echo("error: set GAMEMETRICS_KAFKA_BOOTSTRAP to the cluster's host:port", err=True)
        raise typer.Exit(2)
    partitions = topic_partitions(settings)
    try:
        bus = KafkaBus(settings, partitions, client_id="gamemetrics-init")
        report = asyncio.run(bus.ensure_topics(partitions))
    except (BusError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _print_json({"bootstrap": settings.kafka_bootstrap, "topic_prefix": settings.kafka_topic_prefix,
                 "partitions": partitions, "replication_factor": settings.kafka_replication_factor,
                 **report.as_dict()})
    for topic, differences in report.drift.items():
        typer.echo(f"drift: {settings.kafka_topic_prefix}{topic}: {'; '.join(differences)}", err=True)
    if report.drift:
        raise typer.Exit(1)


@kafka.command("local")
def kafka_local(
    port: Annotated[int, typer.Option(help="Client port on 127.0.0.1.")] = 9092,
    directory: Annotated[Path, typer.Option("--dir", help="Data and log directory; kept between runs.")] = Path(
        ".kafka/local"),
    libs: Annotated[Path, typer.Option(help="The broker's jars (`make kafka-libs`).")] = Path(".kafka/libs"),
) -> None:
    """Run a single-node Kafka broker (KRaft) in the foreground to try the scaled bus; Ctrl-C stops it."""
    from gamemetrics.adapters.kafka.local import LocalBroker, LocalBrokerError

    _stop_on_sigterm()  # the broker runs in a session of its own: only this process can stop it
    broker = LocalBroker(directory, libs, port=port)
    try:
        with broker:
            typer.echo(
                f"Kafka is ready at {broker.bootstrap} (log: {broker.log_path}). To use it:\n"
                f"  export GAMEMETRICS_KAFKA_BOOTSTRAP={broker.bootstrap} GAMEMETRICS_KAFKA_REPLICATION_FACTOR=1"
                " GAMEMETRICS_KAFKA_MIN_INSYNC_REPLICAS=1\n  gamemetrics kafka init && gamemetrics up",
                err=True,
            )
            assert broker.process is not None
            code = broker.process.wait()
            typer.echo(f"the broker exited with code {code}:\n{broker.log_tail(2000)}", err=True)
            raise typer.Exit(1)
    except LocalBrokerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False) -> None:
    """Events stored and dead-lettered per game, and each consumer group's lag."""
    from gamemetrics.platform import local_broker_of
    from gamemetrics.status import collect_status, print_status

    settings = get_settings()
    bootstrap = None if settings.kafka_bootstrap else local_broker_of(settings.data_dir.resolve())
    if bootstrap:  # beside `up --kafka`: its lag is on the broker it started, not in the embedded log
        settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
    report = _with_database(collect_status, settings)
    if as_json:
        _print_json(report)
    else:
        print_status(report)


_URL_HELP = "Base URL of the platform; by default the settings' host and port."


def _base_url(url: str | None) -> str:
    if url:
        return url
    settings = get_settings()
    return f"http://{settings.host}:{settings.port}"


@app.command()
def simulate(
    write_key: Annotated[str, typer.Option("--write-key", envvar="GAMEMETRICS_WRITE_KEY",
                                           help="Key for today's live events (/v1/events).")],
    players: Annotated[int, typer.Option(min=1, help="Players in the simulated population.")] = 100,
    days: Annotated[int, typer.Option(min=0, help="Days of history before today, sent through /v1/import.")] = 7,
    rate: Annotated[float, typer.Option(min=0, help="Live events a second (0: as fast as accepted).")] = 200.0,
    url: Annotated[str | None, typer.Option(help=_URL_HELP)] = None,
    import_key: Annotated[str | None, typer.Option(
        "--import-key", help="Key made with --allow-import for the history; by default the --write-key.")] = None,
    forever: Annotated[bool, typer.Option("--forever", help="After the history, keep streaming live traffic.")] = False,
    seed: Annotated[int, typer.Option(help="Same seed, same day: the same players and events.")] = 1,
) -> None:
    """Send realistic player traffic through the public API: history, today so far, then optionally live."""
    from rich.console import Console

    from gamemetrics.simulator.run import SimulateOptions, print_summary, run_simulation
    from gamemetrics.simulator.sender import DeliveryError

    _stop_on_sigterm()
    options = SimulateOptions(url=_base_url(url), write_key=write_key, import_key=import_key or write_key,
                              players=players, days=days, rate=rate or None, seed=seed, forever=forever)
    try:
        report = run_simulation(options)
    except DeliveryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    print_summary(report, options, Console())
    if report.interrupted and not forever:
        raise typer.Exit(130)
    if report.rejected:
        raise typer.Exit(1)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="NDJSON of native events, or a Segment export (.gz read too).")],
    write_key: Annotated[str, typer.Option("--write-key", envvar="GAMEMETRICS_WRITE_KEY",
                                           help="A key made with --allow-import.")],
    url: Annotated[str | None, typer.Option(help=_URL_HELP)] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, ndjson or segment.")] = "auto",
) -> None:
    """Send a file of past events through /v1/import; importing it again stores nothing new."""
    from rich.console import Console

    from gamemetrics.importer import FORMATS, ImportFileError, import_file, print_report
    from gamemetrics.simulator.sender import DeliveryError

    if fmt not in FORMATS:
        raise typer.BadParameter(f"choose one of {', '.join(FORMATS)}", param_hint="--format")
    try:
        report = import_file(file, url=_base_url(url), write_key=write_key, fmt=fmt)  # type: ignore[arg-type]
    except (ImportFileError, DeliveryError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    print_report(report, Console())
    if report.rejected:
        raise typer.Exit(1)


def _stop_on_sigterm() -> None:
    """SIGTERM (from `gamemetrics up`) stops like Ctrl-C, so the summary is still printed."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@admin.command("create-tenant")
def create_tenant(name: str) -> None:
    """Create a tenant (a studio)."""
    from gamemetrics.tenancy.store import TenancyStore

    async def work(settings: Settings, url: str) -> uuid.UUID:
        async with _pool(url) as pool:
            return await TenancyStore(pool).create_tenant(name)

    _print_json({"tenant_id": _run_admin(work)})


@admin.command("create-game")
def create_game(name: str, tenant: Annotated[uuid.UUID, typer.Option(help="Tenant id.")]) -> None:
    """Create a game of a tenant."""
    from gamemetrics.tenancy.store import TenancyStore

    async def work(settings: Settings, url: str) -> uuid.UUID:
        async with _pool(url) as pool:
            return await TenancyStore(pool).create_game(tenant, name)

    _print_json({"tenant_id": tenant, "game_id": _run_admin(work)})


@admin.command("create-write-key")
def create_write_key(
    game: Annotated[uuid.UUID, typer.Option(help="Game id.")],
    environment: Annotated[str, typer.Option(help="e.g. production, staging, dev")] = "production",
    allow_import: Annotated[bool, typer.Option("--allow-import", help="May send history to /v1/import.")] = False,
) -> None:
    """Create a write key for a game; the key is shown once, only its hash is kept."""
    from gamemetrics.audit import AuditEntry
    from gamemetrics.identity_cli import audited, cli_actor
    from gamemetrics.tenancy.store import TenancyStore

    async def work(settings: Settings, url: str) -> Any:
        return await audited(
            url, settings,
            lambda conn: TenancyStore(None).create_write_key(  # type: ignore[arg-type]
                game, environment=environment, allow_import=allow_import, conn=conn),
            lambda key: AuditEntry(cli_actor(), "write_key.created", key.tenant_id, str(key.key_id),
                                   {"game_id": str(game), "environment": environment, "allow_import": allow_import}))

    created = _run_admin(work)
    _print_json({"tenant_id": created.tenant_id, "game_id": created.game_id, "key_id": created.key_id,
                 "write_key": created.write_key})


@admin.command("revoke-write-key")
def revoke_write_key(key_id: uuid.UUID) -> None:
    """Revoke a write key by its id; ingest refuses it within the key cache time."""
    from gamemetrics.audit import AuditEntry
    from gamemetrics.identity_cli import audited, cli_actor
    from gamemetrics.tenancy.store import TenancyStore

    async def work(settings: Settings, url: str) -> None:
        await audited(url, settings,
                      lambda conn: TenancyStore(None).revoke_write_key(key_id, conn=conn),  # type: ignore[arg-type]
                      lambda tenant: AuditEntry(cli_actor(), "write_key.revoked", tenant, str(key_id)))

    _run_admin(work)
    _print_json({"key_id": key_id, "revoked": True})


def _run_admin(work: Callable[[Settings, str], Awaitable[T]]) -> T:
    from gamemetrics.tenancy.store import NotFound

    try:
        return _with_database(work)
    except NotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _pool(url: str) -> Any:
    from psycopg.rows import tuple_row
    from psycopg_pool import AsyncConnectionPool

    return AsyncConnectionPool(url, min_size=1, max_size=2, kwargs={"autocommit": True, "row_factory": tuple_row})


def _register_identity_commands() -> None:
    from gamemetrics.identity_cli import register

    register(app, admin)


_register_identity_commands()

if __name__ == "__main__":
    app()
