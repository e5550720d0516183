"""Schema history (Alembic). `gamemetrics migrate` applies it; `up` applies it on start."""

from __future__ import annotations

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config

_HERE = Path(__file__).parent


def sqlalchemy_url(url: str) -> str:
    """The same libpq URL, spelled for SQLAlchemy's psycopg 3 dialect."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at this package's scripts and at `url`."""
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


# The processor's rollups read the old and new versions of upserted rows (`RETURNING old.*`).
MIN_SERVER_VERSION = 180000


class UnsupportedServer(RuntimeError):
    """The database server is older than the schema needs."""


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`."""
    with psycopg.connect(url) as conn:
        version = conn.info.server_version
    if version < MIN_SERVER_VERSION:
        raise UnsupportedServer(f"GameMetrics needs PostgreSQL {MIN_SERVER_VERSION // 10000} or later; the server"
                                f" at the database URL is"
                                f" {version // 10000}.{version % 10000}")
    command.upgrade(alembic_config(url), revision)
