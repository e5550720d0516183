"""The events column spec: the batch table's DDL, the COPY's column list and types, and the row
each event becomes agree, column by column."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from psycopg import postgres
from psycopg.adapt import AdaptersMap, PyFormat, Transformer
from psycopg.pq import Format

from gamemetrics.services.processor.columns import (
    BATCH_COLUMNS,
    EVENT_COLUMNS,
    PROFILE_COLUMNS,
    Column,
    ColumnSet,
    _compile_rows,
    batch_rows,
)
from gamemetrics.services.processor.decode import EventRow
from gamemetrics.services.processor.sink import _NEW_EVENTS, _JsonbBytesDumper

# What the sink hands psycopg for each PostgreSQL type.
PYTHON_TYPES: dict[str, type] = {
    "uuid": uuid.UUID, "text": str, "timestamptz": datetime, "boolean": bool, "numeric": Decimal, "jsonb": bytes,
}


def _row(**override: object) -> EventRow:
    now = datetime.now(UTC)
    fields: dict[str, object] = dict(
        tenant_id=uuid.uuid4(), game_id=uuid.uuid4(), event_id=uuid.uuid4(), event_type="purchase",
        event_name="shop", player_id="p1", session_id="s1", event_time=now, received_at=now, source="api",
        platform="ios", os="iOS 18", app_version="1.2", country="JP", revenue_usd=Decimal("4.99"),
        properties=b'{"sku": "gems"}', context=b'{"ip": "x"}', is_new_player=True,
    )
    fields.update(override)
    return EventRow(**fields)


def _one(row: EventRow) -> tuple[object, ...]:
    (values,) = batch_rows([row])
    return values


def _dumped(values: tuple[object, ...]) -> list[bytes | None]:
    """The values dumped as the sink's binary COPY dumps them, each by its column's declared type."""
    adapters = AdaptersMap(psycopg.adapters)
    adapters.register_dumper(bytes, _JsonbBytesDumper)
    tx = Transformer(adapters)
    tx.set_dumper_types([postgres.types[t].oid for t in BATCH_COLUMNS.copy_types], Format.BINARY)
    return list(tx.dump_sequence(values, [PyFormat.BINARY] * len(values)))


def test_the_batch_table_declares_every_column_in_copy_order() -> None:
    declared = _NEW_EVENTS[_NEW_EVENTS.index("(") + 1:_NEW_EVENTS.rindex(")")]
    assert [d.split()[0] for d in declared.replace("(18, 6)", "").split(", ")] == list(BATCH_COLUMNS.names)
    assert BATCH_COLUMNS.names == (*EVENT_COLUMNS.names, *PROFILE_COLUMNS.names)
    assert len(BATCH_COLUMNS.copy_types) == len(BATCH_COLUMNS)
    assert set(EVENT_COLUMNS.names) <= set(EventRow.__struct_fields__)


@pytest.mark.parametrize("profile", [None, ("android", "Android 15", "DE", "2.0"), (None, None, None, None)])
def test_a_row_has_one_value_per_column_of_its_declared_type(
        profile: tuple[str | None, str | None, str | None, str | None] | None) -> None:
    row = _row(profile=profile)
    values = _one(row)
    assert len(values) == len(BATCH_COLUMNS)
    for column, value in zip(BATCH_COLUMNS, values, strict=True):
        if value is None:
            assert column.nullable, column.name
        else:
            assert isinstance(value, PYTHON_TYPES[column.copy_type]), (column.name, value)
    by_name = dict(zip(BATCH_COLUMNS.names, values, strict=True))
    assert {name: by_name[name] for name in EVENT_COLUMNS.names} == {
        name: getattr(row, name) for name in EVENT_COLUMNS.names}
    assert by_name["player_latest"] is (profile is not None)
    assert tuple(by_name[c] for c in PROFILE_COLUMNS.names[1:]) == (profile or (None,) * 4)
    dumped = _dumped(values)
    assert [d is None for d in dumped] == [v is None for v in values]


def test_a_value_of_another_type_does_not_dump() -> None:
    values = list(_one(_row()))
    # Two columns swapped (a uuid where text goes, text where a uuid goes) must not pass unnoticed.
    i, j = BATCH_COLUMNS.names.index("tenant_id"), BATCH_COLUMNS.names.index("player_id")
    values[i], values[j] = values[j], values[i]
    with pytest.raises((TypeError, AttributeError, psycopg.DataError)):
        _dumped(tuple(values))


def test_nulls_only_where_a_column_allows_them() -> None:
    row = _row(event_name=None, session_id=None, platform=None, os=None, app_version=None, country=None,
               revenue_usd=None)
    for column, value in zip(BATCH_COLUMNS, _one(row), strict=True):
        assert value is not None or column.nullable, column.name


def test_a_column_without_an_event_row_field_is_refused_when_the_rows_are_compiled() -> None:
    with pytest.raises(TypeError, match="player_level"):
        _compile_rows(EVENT_COLUMNS + ColumnSet(Column("player_level", "int")))
