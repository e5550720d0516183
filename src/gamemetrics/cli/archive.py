"""`gamemetrics archive`: SQL over the archived events (DuckDB), and restores into the store."""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gamemetrics.cli.database import cli_actor, with_pool
from gamemetrics.cli.output import fail
from gamemetrics.settings import Settings, get_settings

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from gamemetrics.services.retention.restore import RestoredDay

app = typer.Typer(no_args_is_help=True, help="The archive of cold event days: query and restore.")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (YYYY-MM-DD)") from None


@app.command("query")
def archive_query(
    sql: Annotated[str, typer.Argument(help="SQL over the view `events` (DuckDB's dialect).")],
    tenant: Annotated[uuid.UUID | None, typer.Option(help="Only this tenant's archive.")] = None,
    game: Annotated[uuid.UUID | None, typer.Option(help="Only this game's (with --tenant).")] = None,
    first: Annotated[str | None, typer.Option("--from", help="First day (YYYY-MM-DD).")] = None,
    last: Annotated[str | None, typer.Option("--to", help="Last day (YYYY-MM-DD).")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per row on stdout.")] = False,
) -> None:
    """Run SQL over the archived events, locally or in the S3 bucket; a table, CSV or JSON lines."""
    import asyncio

    from gamemetrics.adapters.objects.store import make_objects
    from gamemetrics.ports.objects import ObjectStoreError
    from gamemetrics.services.retention.query import QueryResult, connect, fetch_archive, run_query

    settings = get_settings()
    objects = make_objects(settings.objects, settings.data_dir)
    with tempfile.TemporaryDirectory(prefix="gm-archive-") as scratch:
        try:
            files = asyncio.run(fetch_archive(objects, Path(scratch), tenant_id=tenant, game_id=game,
                                              first=_day(first) if first else None,
                                              last=_day(last) if last else None))
        except ObjectStoreError as exc:
            fail(exc)
        try:
            result: QueryResult = run_query(connect(files), sql)
        except ValueError as exc:
            fail(exc)
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    elif as_json:
        for row in result.rows:
            typer.echo(json.dumps(dict(zip(result.columns, row, strict=True)), default=_plain))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        Console().print(table)


def _plain(value: object) -> str:
    return value.isoformat() if isinstance(value, (date, datetime)) else str(value)


@app.command("restore")
def archive_restore(
    game: Annotated[uuid.UUID, typer.Option(help="Game id.")],
    first: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD).")],
    last: Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD).")],
) -> None:
    """Bring a game's archived days back into the store; rows already online and erased players are skipped."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from gamemetrics.adapters.objects.store import make_objects
    from gamemetrics.archive.layout import ArchiveError
    from gamemetrics.audit import AuditLog
    from gamemetrics.auth.secret import platform_secret
    from gamemetrics.gdpr.tombstones import Tombstones
    from gamemetrics.services.retention.restore import Restorer

    start, end = _day(first), _day(last)
    if end < start:
        fail(f"--to {end} is before --from {start}")

    async def work(settings: Settings, pool: AsyncConnectionPool) -> list[RestoredDay]:
        secret = platform_secret(settings)
        restorer = Restorer(pool, make_objects(settings.objects, settings.data_dir), Tombstones(secret),
                            AuditLog(secret), cli_actor())
        with Progress(console=Console(stderr=True)) as progress:
            task = progress.add_task("restoring", total=(end - start).days + 1)
            try:
                return await restorer.restore(game, start, end, lambda day: progress.advance(task))
            except (KeyError, ArchiveError) as exc:
                fail(exc.args[0] if exc.args else exc)

    days = with_pool(work)
    table = Table("day", "archived", "restored", "already online", "erased, skipped", title=f"restore of {game}")
    for d in days:
        table.add_row(str(d.day), str(d.archived), str(d.restored), str(d.already_online), str(d.erased_skipped))
    Console().print(table if days else f"no archived day of {game} between {start} and {end}")
