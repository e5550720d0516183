"""SQL over the archive with DuckDB: a view per archived table over the files the manifests list.

Only files a manifest lists are read (a part a killed run left behind is not part of the archive).
The files are fetched through the Objects port into a local directory first, so the same query
runs over a local archive and an S3 bucket without DuckDB's own S3 extension.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from gamemetrics.archive.layout import MANIFEST, TABLE, load_manifest
from gamemetrics.ports.objects import Objects

EMPTY_EVENTS = ("SELECT NULL::VARCHAR AS tenant_id, NULL::VARCHAR AS game_id, NULL::VARCHAR AS event_id,"
                " NULL::VARCHAR AS event_type, NULL::VARCHAR AS player_id, NULL::TIMESTAMPTZ AS event_time,"
                " NULL::DATE AS dt WHERE false")


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


async def fetch_archive(objects: Objects, into: Path, *, tenant_id: uuid.UUID | None = None,
                        game_id: uuid.UUID | None = None, first: date | None = None,
                        last: date | None = None) -> list[Path]:
    """Download the parts the manifests list (of one tenant, game or day range when given) under `into`,
    keeping their Hive-style paths; the local files."""
    prefix = f"{TABLE}/" + (f"tenant_id={tenant_id}/" if tenant_id else "")
    prefix += f"game_id={game_id}/" if tenant_id and game_id else ""
    files: list[Path] = []
    for info in await objects.list(prefix):
        if not info.key.endswith("/" + MANIFEST):
            continue
        if game_id and f"/game_id={game_id}/" not in info.key:
            continue
        day = date.fromisoformat(info.key.rsplit("dt=", 1)[1].split("/")[0])
        if (first and day < first) or (last and day > last):
            continue
        manifest = await load_manifest(objects, info.key)
        for file in manifest.files if manifest else ():
            local = into / file.key
            local.parent.mkdir(parents=True, exist_ok=True)
            await objects.download(file.key, local)
            files.append(local)
    return files


def connect(files: list[Path]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the view `events` over `files` (tenant_id, game_id and dt from their paths)."""
    db = duckdb.connect(":memory:")
    if files:
        listed = ", ".join("'" + str(path).replace("'", "''") + "'" for path in files)
        db.execute(f"CREATE VIEW {TABLE} AS SELECT * FROM read_parquet([{listed}], hive_partitioning = true,"
                   " hive_types = {'dt': DATE})")
    else:
        db.execute(f"CREATE VIEW {TABLE} AS {EMPTY_EVENTS}")
    return db


def run_query(db: duckdb.DuckDBPyConnection, sql: str) -> QueryResult:
    """The query's columns and rows; ValueError with DuckDB's message when it is not valid."""
    try:
        cursor = db.execute(sql)
        columns = [d[0] for d in cursor.description or ()]
        return QueryResult(columns, [tuple(row) for row in cursor.fetchall()])
    except duckdb.Error as exc:
        raise ValueError(str(exc)) from None
