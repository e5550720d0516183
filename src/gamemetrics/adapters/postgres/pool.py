"""Connection pools. Every service receives its pool when it is built; nothing connects at import."""

from __future__ import annotations

from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

# psycopg prepares a statement after a few runs, and PostgreSQL then may switch it to a generic plan.
# Our batch statements take arrays of thousands of keys: a generic plan cannot know their size nor
# hash them, and `player_id = ANY($1)` became a linear scan per row. Custom plans cost little to
# make and always see the real values.
CONNECTION_OPTIONS = "-c plan_cache_mode=force_custom_plan"


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
        kwargs={"autocommit": False, "row_factory": tuple_row, "application_name": name,
                "options": CONNECTION_OPTIONS},
        timeout=10.0,
    )
    await pool.open(wait=True, timeout=30.0)
    return pool
