"""`gamemetrics retention`: set and show retention policies, and run the archive once."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gamemetrics.cli.database import cli_actor, cli_pool, run_admin, with_database, with_pool
from gamemetrics.cli.output import fail, print_json
from gamemetrics.settings import Settings

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from gamemetrics.services.retention.archiver import RunReport
    from gamemetrics.services.retention.policy import Policy

app = typer.Typer(no_args_is_help=True, help="Retention policies and archive runs.")

Days = Annotated[int | None, typer.Option(min=0, help="Days.")]


@app.command("set")
def retention_set(
    tenant: Annotated[uuid.UUID | None, typer.Option(help="Tenant id (or give --game).")] = None,
    game: Annotated[uuid.UUID | None, typer.Option(help="A game of the tenant: its own policy.")] = None,
    events_online_days: Days = None, archive_days: Days = None,
    dead_letter_days: Days = None, notification_days: Days = None,
) -> None:
    """Change a tenant's (or one game's) policy; the fields not given keep their values."""
    from gamemetrics.audit import AuditEntry, AuditLog
    from gamemetrics.auth.secret import platform_secret
    from gamemetrics.services.retention.policy import PolicyError, PolicyStore
    from gamemetrics.tenancy.store import NotFound

    changes = {name: value for name, value in (
        ("events_online_days", events_online_days), ("archive_days", archive_days),
        ("dead_letter_days", dead_letter_days), ("notification_days", notification_days)) if value is not None}
    if not changes:
        fail("give at least one of --events-online-days, --archive-days, --dead-letter-days, --notification-days")
    if tenant is None and game is None:
        fail("give --tenant, or --game for one game's policy")

    async def work(settings: Settings, pool: AsyncConnectionPool) -> tuple[uuid.UUID, Policy]:
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT tenant_id FROM games WHERE game_id = %s" if game else
                "SELECT tenant_id FROM tenants WHERE tenant_id = %s", (game or tenant,))
            row = await cur.fetchone()
            if row is None or (tenant is not None and row[0] != tenant):
                raise NotFound(f"no game {game} in tenant {tenant}" if game and tenant else
                               f"no game {game}" if game else f"no tenant {tenant}")
            try:
                policy = await PolicyStore(pool).put(conn, row[0], game, changes)
            except PolicyError as exc:
                fail(exc)
            await AuditLog(platform_secret(settings)).append(conn, AuditEntry(
                cli_actor(), "retention.policy_set", row[0], str(game) if game else None, policy.as_dict()))
            return row[0], policy

    owner, policy = run_admin(work)
    print_json({"tenant_id": owner, "game_id": game, **policy.as_dict()})


@app.command("show")
def retention_show(
    tenant: Annotated[uuid.UUID | None, typer.Option(help="Only this tenant's policies.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines on stdout.")] = False,
) -> None:
    """The defaults and every stored policy (a game without one follows its tenant)."""
    from rich.console import Console
    from rich.table import Table

    from gamemetrics.services.retention.policy import Policy, PolicyStore

    async def work(settings: Settings, pool: AsyncConnectionPool) -> list[tuple[Any, Any, Policy]]:
        return await PolicyStore(pool).listed(tenant)

    rows: list[tuple[Any, Any, Policy]] = [("(default)", None, Policy()), *with_pool(work)]
    if as_json:
        for owner, game, policy in rows:
            print_json({"tenant_id": owner, "game_id": game, **policy.as_dict()})
        return
    table = Table("tenant", "game", "events online", "archives", "dead letters", "notifications", "audit log")
    for owner, game, policy in rows:
        table.add_row(str(owner), str(game) if game else "(all)", *(f"{d} days" for d in policy.as_dict().values()),
                      "for ever")
    Console().print(table)


@app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say which days would be archived; change nothing.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout instead of the table.")] = False,
) -> None:
    """Archive every event day past its game's online window now; exit 1 if a day failed."""
    from rich.console import Console
    from rich.progress import Progress

    from gamemetrics.adapters.objects.store import make_objects
    from gamemetrics.adapters.pglog import PgLogBus
    from gamemetrics.audit import AuditLog
    from gamemetrics.auth.secret import platform_secret
    from gamemetrics.runtime.adapters import topic_partitions
    from gamemetrics.services.retention.archiver import Archiver, DayJob, RunBusy
    from gamemetrics.services.retention.trim import Trimmer

    console = Console(stderr=True)

    async def work(settings: Settings, url: str) -> RunReport:
        async with cli_pool(url) as pool:
            return await run_on(settings, url, pool)

    async def run_on(settings: Settings, url: str, pool: AsyncConnectionPool) -> RunReport:
        options, objects = settings.retention, make_objects(settings.objects, settings.data_dir)
        audit = AuditLog(platform_secret(settings))
        # The embedded log's batches are trimmed by the processor and by this run; Kafka trims its own.
        bus = None if settings.kafka.bootstrap else PgLogBus(url, pool, topic_partitions(settings))
        trimmer = Trimmer(pool, objects, audit, bus, bus_retention_hours=settings.bus.retention_hours,
                          refusal_days=settings.retention.retention_refusal_days, actor=cli_actor())
        archiver = Archiver(pool, objects, audit, part_rows=options.retention_part_rows,
                            zstd_level=options.retention_zstd_level, actor=cli_actor(), trimmer=trimmer)
        with Progress(console=console, disable=as_json) as progress:
            tasks: dict[DayJob, Any] = {}

            def planned(jobs: list[DayJob]) -> None:
                for job in jobs:
                    tasks[job] = progress.add_task(f"{job.game_id} {job.day}", total=4)

            def step(name: str, job: DayJob) -> None:
                progress.update(tasks[job], advance=1, description=f"{job.game_id} {job.day} {name}")

            try:
                report = await archiver.run(dry_run=dry_run, step=step, planned=planned)
            except RunBusy as exc:
                fail(exc)
            for job in tasks:
                progress.update(tasks[job], completed=4)
        return report

    report = with_database(work)
    if as_json:
        print_json({"dry_run": report.dry_run, "days": [
            {"tenant_id": d.job.tenant_id, "game_id": d.job.game_id, "day": d.job.day, "state": d.state,
             "online_rows": d.job.online_rows, "rows_archived": d.rows_archived, "rows_deleted": d.rows_deleted,
             "partition_dropped": d.partition_dropped, "error": d.error} for d in report.days],
            "trimmed": asdict(report.trimmed) if report.trimmed else None})
    else:
        _summary(report)
    if report.failed:
        raise typer.Exit(1)


def _summary(report: RunReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("game", "day", "state", "online rows", "archived", "deleted", "partition dropped", "error",
                  title="retention run (dry run)" if report.dry_run else "retention run")
    for d in report.days:
        table.add_row(str(d.job.game_id), str(d.job.day), d.state, str(d.job.online_rows), str(d.rows_archived),
                      str(d.rows_deleted), "yes" if d.partition_dropped else "no", d.error or "")
    Console().print(table if report.days else "nothing to archive: no event day is past its online window")
    if report.trimmed:
        trimmed = Table("dead letters", "notifications", "bus messages", "archived days expired",
                        "retired signing keys", "ingest refusal rows", title="trimmed by policy")
        trimmed.add_row(*(str(v) for v in (report.trimmed.dead_letters, report.trimmed.notifications,
                                           report.trimmed.bus_messages, report.trimmed.archived_days_expired,
                                           report.trimmed.signing_keys, report.trimmed.ingest_refusals)))
        Console().print(trimmed)
