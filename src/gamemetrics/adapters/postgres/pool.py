"""Connection pools. Every service receives its pool when it is built; nothing connects at import."""

from __future__ import annotations

from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool


async def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 8, name: str = "gamemetrics"
) -> AsyncConnectionPool:
    """Open an async pool to `url` and wait until the first connection works."""
    pool = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        name=name,
        kwargs={"autocommit": False, "row_factory": tuple_row, "application_name": name},
        timeout=10.0,
    )
    await pool.open(wait=True, timeout=30.0)
    return pool
