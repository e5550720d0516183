"""`gamemetrics notifications outbox | dlq | replay`: what the embedded default delivered, what was
given up, and sending a given-up delivery again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gamemetrics.cli.database import with_pool
from gamemetrics.cli.output import fail, print_json
from gamemetrics.settings import Settings

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

app = typer.Typer(no_args_is_help=True, help="Notifications: the outbox, the dead-letter queue, replays.")
AsJson = Annotated[bool, typer.Option("--json", help="One JSON object per line on stdout.")]
Limit = Annotated[int, typer.Option(min=1, max=10_000, help="At most this many, the newest.")]


def _show(rows: list[dict[str, Any]], as_json: bool, title: str, columns: list[str]) -> None:
    if as_json:
        for row in rows:
            print_json(row)
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row[column]) for column in columns))
    Console().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


@app.command("outbox")
def outbox(as_json: AsJson = False, limit: Limit = 50) -> None:
    """What the embedded default delivered: channel, recipient, subject or title, body, time."""
    from gamemetrics.adapters.mail.outbox import recent_outbox

    async def work(settings: Settings, pool: AsyncConnectionPool) -> list[dict[str, Any]]:
        return await recent_outbox(pool, limit)

    rows = with_pool(work)
    _show(rows, as_json, f"outbox: the newest {len(rows)} messages",
          ["created_at", "channel", "recipient", "subject", "body"])


@app.command("dlq")
def dlq(as_json: AsJson = False, limit: Limit = 50) -> None:
    """Deliveries given up, with the reason (also on the notifications.dlq topic)."""
    from gamemetrics.services.notifier.store import given_up

    async def work(settings: Settings, pool: AsyncConnectionPool) -> list[dict[str, Any]]:
        async with pool.connection() as conn:
            return await given_up(conn, limit)

    rows = with_pool(work)
    _show(rows, as_json, f"given up: {len(rows)} deliveries",
          ["updated_at", "notification_id", "channel", "attempts", "reason"])


@app.command("replay")
def replay(notification_id: Annotated[str, typer.Argument(help="The notification's id.")],
           channel: Annotated[str | None, typer.Option(help="Only this channel.")] = None) -> None:
    """Queue a notification's given-up deliveries again; the worker sends them from the first attempt."""
    from gamemetrics.services.notifier.store import replay as queue_again

    try:
        wanted = uuid.UUID(notification_id)
    except ValueError:
        fail(f"{notification_id!r} is not a notification id (a UUID)")

    async def work(settings: Settings, pool: AsyncConnectionPool) -> int:
        async with pool.connection() as conn:
            return await queue_again(conn, wanted, channel)

    queued = with_pool(work)
    if queued == 0:
        fail(f"notification {wanted} has no given-up delivery{f' on {channel}' if channel else ''} to replay")
    typer.echo(f"queued {queued} deliveries of {wanted} again")
