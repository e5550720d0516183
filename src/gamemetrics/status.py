"""`gamemetrics status`: per-game counts and per-group lag, as JSON or a table, once or every few seconds."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from gamemetrics.runtime import Platform, connect
from gamemetrics.settings import Settings


async def collect_status(settings: Settings, url: str) -> dict[str, Any]:
    """Counts come from counters the processor keeps in its own transactions, so they are exact."""
    async with connect(settings, url, name="status", pool_size=2) as platform:
        return await _report(platform)


async def watch_status(settings: Settings, url: str, *, every: float, count: int | None,
                       emit: Callable[[dict[str, Any]], None]) -> None:
    """A report every `every` seconds (`count` of them, or until interrupted) on one connection, each
    stamped with its `time`; a report that cannot be made (a store away) is a line with the `error`
    instead, and the next is tried on time."""
    async with connect(settings, url, name="status", pool_size=2) as platform:
        made = 0
        while count is None or made < count:
            began = time.monotonic()
            try:
                # Bounded: a broker or database that does not answer must not stop the series.
                report = await asyncio.wait_for(_report(platform), timeout=max(10.0, 3 * every))
            except Exception as exc:  # noqa: BLE001 - any failure of a store is a line of the series
                emit({"time": time.time(), "error": f"{type(exc).__name__}: {exc}"})
            else:
                emit({"time": time.time(), **report})
            made += 1
            if count is None or made < count:
                await asyncio.sleep(max(0.0, every - (time.monotonic() - began)))


async def _report(platform: Platform) -> dict[str, Any]:
    async with platform.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT g.tenant_id, g.game_id, g.name, coalesce(c.events_stored, 0),"
            " coalesce(c.events_dead_lettered, 0) FROM games g"
            " LEFT JOIN game_counters c USING (tenant_id, game_id) ORDER BY g.created_at"
        )
        games = [
            {"tenant_id": str(t), "game_id": str(g), "name": n, "events_stored": s, "events_dead_lettered": d}
            for t, g, n, s, d in await cur.fetchall()
        ]
    lags = await platform.bus.lag()
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for lag in lags:
        groups[lag.group_id].append(
            {"topic": lag.topic, "partition": lag.partition, "committed": lag.committed, "end": lag.end,
             "lag": lag.lag}
        )
    return {
        "games": games,
        "consumer_groups": [
            {"group_id": group, "lag": sum(p["lag"] for p in parts), "partitions": parts}
            for group, parts in sorted(groups.items())
        ],
    }


def print_status(report: dict[str, Any]) -> None:
    console = Console()
    if "time" in report:  # one of a series
        console.rule(time.strftime("%H:%M:%S", time.localtime(report["time"])))
    if "error" in report:
        console.print(f"[red]no report: {report['error']}[/red]")
        return
    games = Table(title="Games")
    for column in ("game", "game id", "stored", "dead-lettered"):
        games.add_column(column)
    for game in report["games"]:
        games.add_row(game["name"], game["game_id"], str(game["events_stored"]), str(game["events_dead_lettered"]))
    console.print(games)
    groups = Table(title="Consumer groups")
    groups.add_column("group")
    groups.add_column("lag", justify="right")
    for group in report["consumer_groups"]:
        groups.add_row(group["group_id"], str(group["lag"]))
    console.print(groups)
    if report.get("processes"):
        processes = Table(title="Processes")
        for column in ("process", "pid", "state", "restarts", "last exit"):
            processes.add_column(column)
        for process in report["processes"]:
            last = f"{process['last_exit']} at {process['last_exit_at']}" if process["last_exit"] else ""
            processes.add_row(process["name"], str(process["pid"]), process["state"], str(process["restarts"]), last)
        console.print(processes)
