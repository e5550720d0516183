"""Sending player traffic through the public API: `simulate` and `import`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gamemetrics.cli.signals import stop_on_sigterm
from gamemetrics.settings import get_settings

app = typer.Typer()
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

    stop_on_sigterm()
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

    chosen = next((known for known in FORMATS if known == fmt), None)
    if chosen is None:
        raise typer.BadParameter(f"choose one of {', '.join(FORMATS)}", param_hint="--format")
    try:
        report = import_file(file, url=_base_url(url), write_key=write_key, fmt=chosen)
    except (ImportFileError, DeliveryError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    print_report(report, Console())
    if report.rejected:
        raise typer.Exit(1)
