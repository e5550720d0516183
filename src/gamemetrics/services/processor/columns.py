"""The `events` table's columns, declared once: the sink's column lists, COPY types, the batch
table's DDL and its row builder all come from here.

An event column's value is the `EventRow` attribute of the same name. The batch table adds the
profile columns stitching works out: true and `EventRow.profile` on a player's latest event of the
batch, false and NULLs on the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from gamemetrics.services.processor.decode import EventRow


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name, its PostgreSQL type as a table declares it, and whether it may be NULL."""

    name: str
    type: str
    nullable: bool = True

    @property
    def copy_type(self) -> str:
        """The type's name as binary COPY needs it: without its modifiers (`numeric(18, 6)` is `numeric`)."""
        return self.type.partition("(")[0]

    @property
    def ddl(self) -> str:
        """The column's definition in a CREATE TABLE."""
        return f"{self.name} {self.type}" + ("" if self.nullable else " NOT NULL")


class ColumnSet:
    """Columns in table order."""

    def __init__(self, *columns: Column) -> None:
        self.columns = columns
        self.names = tuple(c.name for c in columns)
        self.copy_types = tuple(c.copy_type for c in columns)

    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __add__(self, other: ColumnSet) -> ColumnSet:
        return ColumnSet(*self.columns, *other.columns)

    @property
    def sql_list(self) -> str:
        """The names, comma-separated, as a statement lists them."""
        return ", ".join(self.names)

    @property
    def ddl(self) -> str:
        """The column definitions of a CREATE TABLE."""
        return ", ".join(c.ddl for c in self.columns)


# As in the `events` table (migrations 0001): tests compare the two.
EVENT_COLUMNS = ColumnSet(
    Column("tenant_id", "uuid", nullable=False),
    Column("game_id", "uuid", nullable=False),
    Column("event_id", "uuid", nullable=False),
    Column("event_type", "text", nullable=False),
    Column("event_name", "text"),
    Column("player_id", "text", nullable=False),
    Column("session_id", "text"),
    Column("event_time", "timestamptz", nullable=False),
    Column("received_at", "timestamptz", nullable=False),
    Column("source", "text", nullable=False),
    Column("platform", "text"),
    Column("os", "text"),
    Column("app_version", "text"),
    Column("country", "text"),
    Column("is_new_player", "boolean", nullable=False),
    Column("revenue_usd", "numeric(18, 6)"),
    Column("properties", "jsonb", nullable=False),
    Column("context", "jsonb", nullable=False),
)
# On each player's latest event of the batch only, the profile stitching worked out (in the order
# of `EventRow.profile`), so the players upsert reads one row per player.
PROFILE_COLUMNS = ColumnSet(
    Column("player_latest", "boolean", nullable=False),
    Column("latest_platform", "text"),
    Column("latest_os", "text"),
    Column("latest_country", "text"),
    Column("latest_app_version", "text"),
)
BATCH_COLUMNS = EVENT_COLUMNS + PROFILE_COLUMNS

_NO_PROFILE: tuple[object, ...] = (False, *(None,) * (len(PROFILE_COLUMNS) - 1))


def _compile_rows(columns: ColumnSet) -> Callable[[Iterable[EventRow]], Iterator[tuple[object, ...]]]:
    """The batch rows' generator, compiled from the event columns' names (as dataclasses compiles
    its `__init__`): attribute loads written out run at the interpreter's specialised speed, where
    `operator.attrgetter` looks each name up anew, and this runs once per event."""
    unknown = [name for name in columns.names if name not in EventRow.__struct_fields__]
    if unknown:
        raise TypeError(f"event columns without an EventRow field of the same name: {', '.join(unknown)}")
    values = "".join(f"row.{name}, " for name in columns.names)
    source = (
        "def batch_rows(rows):\n"
        '    """The values of each of `rows` for the batch table, in `BATCH_COLUMNS` order."""\n'
        "    for row in rows:\n"
        "        profile = row.profile\n"
        f"        yield ({values}*(NO_PROFILE if profile is None else (True, *profile)))\n"
    )
    namespace: dict[str, Any] = {"NO_PROFILE": _NO_PROFILE}
    exec(compile(source, "<batch rows>", "exec"), namespace)
    compiled: Callable[[Iterable[EventRow]], Iterator[tuple[object, ...]]] = namespace["batch_rows"]
    return compiled


batch_rows = _compile_rows(EVENT_COLUMNS)
