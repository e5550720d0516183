"""`gamemetrics backup`: dumps of the store (and the archive's manifests) in object storage."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer

from gamemetrics.cli.database import cli_actor
from gamemetrics.cli.output import fail, print_json
from gamemetrics.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Backups of the store: create, list, restore.")


@app.command("create")
def backup_create() -> None:
    """Write a consistent pg_dump of the store and a copy of the archive manifests, named by time."""
    from gamemetrics.adapters.objects.store import make_objects
    from gamemetrics.adapters.postgres.embedded import client_program
    from gamemetrics.audit import AuditEntry, AuditLog
    from gamemetrics.auth.secret import platform_secret
    from gamemetrics.cli.database import cli_pool, with_database
    from gamemetrics.services.retention import backups

    async def work(settings: object, url: str) -> backups.Backup:
        conf = get_settings()
        made = await backups.create(make_objects(conf.objects, conf.data_dir), url, client_program("pg_dump"))
        async with cli_pool(url) as pool:
            await AuditLog(platform_secret(conf)).record(pool, AuditEntry(
                cli_actor(), "backup.created", None, made.name, {"bytes": made.bytes}))
        return made

    try:
        made = with_database(work)
    except (backups.BackupError, FileNotFoundError) as exc:
        fail(exc)
    print_json({"name": made.name, "bytes": made.bytes})


@app.command("list")
def backup_list() -> None:
    """The backups in object storage, oldest first."""
    from gamemetrics.adapters.objects.store import make_objects
    from gamemetrics.services.retention import backups

    settings = get_settings()
    for made in asyncio.run(backups.listed(make_objects(settings.objects, settings.data_dir))):
        print_json({"name": made.name, "bytes": made.bytes, "created": made.created})


@app.command("restore")
def backup_restore(name: Annotated[str, typer.Argument(help="A name from `backup list`.")]) -> None:
    """Restore a backup into the configured database, which must be empty."""
    import psycopg

    from gamemetrics.adapters.objects.store import make_objects
    from gamemetrics.adapters.postgres.embedded import client_program
    from gamemetrics.audit import AuditEntry, AuditLog
    from gamemetrics.auth.secret import platform_secret
    from gamemetrics.cli.database import cli_pool
    from gamemetrics.runtime import database_url
    from gamemetrics.services.retention import backups

    settings = get_settings()
    started = time.monotonic()

    async def work(url: str) -> int:
        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            empty = (cur.fetchone() or (1,))[0] == 0
            if empty:
                conn.execute(backups.ROLES)
        size = await backups.restore(make_objects(settings.objects, settings.data_dir), name, url,
                                     client_program("pg_restore"), empty)
        async with cli_pool(url) as pool:
            await AuditLog(platform_secret(settings)).record(pool, AuditEntry(
                cli_actor(), "backup.restored", None, name, {"bytes": size}))
        return size

    with database_url(settings) as url:
        try:
            size = asyncio.run(work(url))
        except (backups.BackupError, FileNotFoundError) as exc:
            fail(exc)
    print_json({"name": name, "bytes": size, "seconds": round(time.monotonic() - started, 3)})
