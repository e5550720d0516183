"""`gamemetrics audit verify`: walk the tamper-evident audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gamemetrics.cli.database import with_pool
from gamemetrics.cli.output import print_json
from gamemetrics.settings import Settings

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from gamemetrics.audit import Verification

app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")


@app.command("verify")
def audit_verify(as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False) -> None:
    """Walk the audit chain; exit 1 naming the first changed, removed or re-ordered entry."""
    from gamemetrics.audit import AuditLog
    from gamemetrics.auth.secret import platform_secret

    async def work(settings: Settings, pool: AsyncConnectionPool) -> Verification:
        async with pool.connection() as conn:
            return await AuditLog(platform_secret(settings)).verify(conn)

    report = with_pool(work)
    if as_json:
        print_json({"ok": report.ok, "entries": report.entries, "head_seq": report.head_seq,
                    "head_hash": report.head_hash, "problem_seq": report.problem_seq, "problem": report.problem})
    elif report.ok:
        typer.echo(f"audit log intact: {report.entries} entries; head {report.head_seq} {report.head_hash}")
    if not report.ok:
        typer.echo(f"audit log broken at entry {report.problem_seq}: {report.problem}", err=True)
        raise typer.Exit(1)
