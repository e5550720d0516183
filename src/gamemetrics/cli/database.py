"""The database a command works on: the configured (or embedded) one, migrated, with a pool of the
same recipe as the services', and audited changes."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from gamemetrics.cli.output import fail
from gamemetrics.settings import Settings, get_settings

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    from gamemetrics.audit import AuditEntry

T = TypeVar("T")
R = TypeVar("R")


def with_database(work: Callable[[Settings, str], Coroutine[Any, Any, T]], settings: Settings | None = None) -> T:
    """Run `work` against the configured (or embedded) database, migrated to head."""
    from gamemetrics.migrations import upgrade
    from gamemetrics.runtime import database_url

    settings = settings or get_settings()
    with database_url(settings) as url:
        upgrade(url)
        return asyncio.run(work(settings, url))


@asynccontextmanager
async def cli_pool(url: str) -> AsyncIterator[AsyncConnectionPool]:
    """A small pool to `url`, opened as every service opens its own."""
    from gamemetrics.adapters.postgres.pool import open_pool

    pool = await open_pool(url, max_size=2, name="gamemetrics-cli")
    try:
        yield pool
    finally:
        await pool.close()


def with_pool(work: Callable[[Settings, AsyncConnectionPool], Awaitable[T]]) -> T:
    """Run `work` on a pool of the migrated database."""
    async def pooled(settings: Settings, url: str) -> T:
        async with cli_pool(url) as pool:
            return await work(settings, pool)

    return with_database(pooled)


def run_admin(work: Callable[[Settings, AsyncConnectionPool], Awaitable[T]]) -> T:
    """`with_pool`, where a tenant, game or key that does not exist exits 1 naming it."""
    from gamemetrics.tenancy.store import NotFound

    try:
        return with_pool(work)
    except NotFound as exc:
        fail(exc)


def cli_actor() -> str:
    """How the audit log names the person at the console."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


async def audited(settings: Settings, pool: AsyncConnectionPool, change: Callable[[AsyncConnection], Awaitable[R]],
                  entry: Callable[[R], AuditEntry]) -> R:
    """Run `change` and append `entry(result)` to the audit log in one transaction."""
    from gamemetrics.audit import AuditLog
    from gamemetrics.auth.secret import platform_secret

    async with pool.connection() as conn, conn.transaction():
        result = await change(conn)
        await AuditLog(platform_secret(settings)).append(conn, entry(result))
    return result
