"""The Kafka bus: topics on a cluster (`kafka init`), a local broker to try it (`kafka local`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from gamemetrics.cli.output import print_json
from gamemetrics.cli.signals import stop_on_sigterm
from gamemetrics.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="The Kafka bus: topics on a cluster, a local broker to try it.")


@app.command("init")
def kafka_init() -> None:
    """Create the platform's topics on the settings' Kafka cluster (idempotent); exit 1 if existing ones drift."""
    from gamemetrics.adapters.kafka import KafkaBus
    from gamemetrics.ports.bus import BusError
    from gamemetrics.runtime import topic_partitions

    settings = get_settings()
    if not settings.kafka.bootstrap:
        typer.echo("error: set GAMEMETRICS_KAFKA_BOOTSTRAP to the cluster's host:port", err=True)
        raise typer.Exit(2)
    partitions = topic_partitions(settings)
    try:
        bus = KafkaBus(settings, partitions, client_id="gamemetrics-init")
        report = asyncio.run(bus.ensure_topics(partitions))
    except (BusError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    print_json({"bootstrap": settings.kafka.bootstrap, "topic_prefix": settings.kafka.topic_prefix,
                 "partitions": partitions, "replication_factor": settings.kafka.replication_factor,
                 **report.as_dict()})
    for topic, differences in report.drift.items():
        typer.echo(f"drift: {settings.kafka.topic_prefix}{topic}: {'; '.join(differences)}", err=True)
    if report.drift:
        raise typer.Exit(1)


@app.command("local")
def kafka_local(
    port: Annotated[int, typer.Option(help="Client port on 127.0.0.1.")] = 9092,
    directory: Annotated[Path, typer.Option("--dir", help="Data and log directory; kept between runs.")] = Path(
        ".kafka/local"),
    libs: Annotated[Path, typer.Option(help="The broker's jars (`make kafka-libs`).")] = Path(".kafka/libs"),
) -> None:
    """Run a single-node Kafka broker (KRaft) in the foreground to try the scaled bus; Ctrl-C stops it."""
    from gamemetrics.adapters.kafka.local import LocalBroker, LocalBrokerError

    stop_on_sigterm()  # the broker runs in a session of its own: only this process can stop it
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
