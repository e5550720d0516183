"""The retention service's pure parts: policy checks, the content hashes, part names, the daily schedule."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import msgspec
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamemetrics.adapters.objects.store import local_objects
from gamemetrics.archive import parquet
from gamemetrics.archive.layout import ArchivedFile, ArchiveError, Manifest, next_part_number, part_key
from gamemetrics.services.retention.parts import read_part
from gamemetrics.services.retention.policy import Policy, PolicyError
from gamemetrics.services.retention.schedule import next_run, parse_time


def test_policies_are_checked() -> None:
    assert Policy().changed({"events_online_days": 30}) == Policy(events_online_days=30)
    for changes, message in [({"events_online_days": 0}, "from 1 to"), ({"archive_days": 10}, "at least"),
                             ({"dead_letter_days": True}, "whole number"), ({"x": 1}, "unknown policy fields x"),
                             ({"notification_days": 1.5}, "whole number")]:
        with pytest.raises(PolicyError, match=message):
            Policy().changed(changes)


_text = st.none() | st.text(max_size=8)


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, object]]:
    count = draw(st.integers(0, 6))
    return [{
        "tenant_id": "t", "game_id": "g", "event_id": f"e{n}", "event_type": draw(st.text(min_size=1, max_size=5)),
        "event_name": draw(_text), "player_id": draw(st.text(max_size=5)), "session_id": draw(_text),
        "event_time": datetime(2026, 1, 1, tzinfo=UTC), "received_at": datetime(2026, 1, 2, tzinfo=UTC),
        "source": "import", "platform": draw(_text), "os": None, "app_version": None, "country": draw(_text),
        "is_new_player": draw(st.booleans()),
        "revenue_usd": draw(st.none() | st.decimals(0, 1000, places=6, allow_nan=False)),
        "properties": "{}", "context": draw(st.text(max_size=4)),
    } for n in range(count)]


@settings(deadline=None)  # the first call loads pyarrow's compute kernels
@given(rows(), st.randoms())
def test_the_content_hash_follows_the_rows_not_their_order_or_storage(data: list[dict[str, object]],
                                                                      random: object) -> None:
    table = pa.Table.from_pylist(data, schema=parquet.SCHEMA)
    shuffled = list(data)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    again = pa.Table.from_pylist(shuffled, schema=parquet.SCHEMA)
    stored = parquet.from_parquet(parquet.to_parquet(again, zstd_level=1))
    assert parquet.content_hash(table) == parquet.content_hash(again) == parquet.content_hash(stored)
    if data:
        changed = [dict(data[0], revenue_usd=Decimal("1000.000001")), *data[1:]]
        assert parquet.content_hash(pa.Table.from_pylist(changed, schema=parquet.SCHEMA)) != \
            parquet.content_hash(table)


@settings(deadline=None)
@given(rows(), st.integers(1, 4))
def test_the_file_order_hash_follows_the_rows_in_order_not_their_chunks(data: list[dict[str, object]],
                                                                        size: int) -> None:
    table = pa.Table.from_pylist(data, schema=parquet.SCHEMA)
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=size), schema=parquet.SCHEMA)
    stored = parquet.from_parquet(parquet.to_parquet(chunked, zstd_level=1))
    assert parquet.rows_hash(table) == parquet.rows_hash(chunked) == parquet.rows_hash(stored)
    assert parquet.rows_hash(table.slice(1)) == parquet.rows_hash(chunked.slice(1))
    if len(data) > 1 and data[0] != data[-1]:
        assert parquet.rows_hash(pa.Table.from_pylist(data[::-1], schema=parquet.SCHEMA)) != \
            parquet.rows_hash(table)
    if data:
        changed = [*data[:-1], dict(data[-1], revenue_usd=Decimal("1000.000001"))]
        assert parquet.rows_hash(pa.Table.from_pylist(changed, schema=parquet.SCHEMA)) != parquet.rows_hash(table)


def test_a_manifest_of_parts_hashed_in_event_order_still_reads() -> None:
    """Parts listed before the file-order hash have no content_order: they are checked in event-id order."""
    when = datetime(2026, 3, 1, tzinfo=UTC)
    entry = {"key": "k", "rows": 1, "sha256": "s", "content_hash": "c", "min_event_time": when.isoformat(),
             "max_event_time": when.isoformat()}
    old = msgspec.json.encode({"tenant_id": str(uuid.uuid4()), "game_id": str(uuid.uuid4()), "day": "2026-03-01",
                               "schema_version": 1, "written_at": when.isoformat(), "files": [entry]})
    manifest = msgspec.json.decode(old, type=Manifest)
    assert manifest.files[0].content_order == "event_id"
    assert msgspec.json.decode(msgspec.json.encode(manifest), type=Manifest) == manifest


async def test_a_part_is_checked_with_the_hash_its_entry_names(tmp_path: Path) -> None:
    """A part of the event-order hash and one of the file-order hash both read back; a wrong hash of
    either kind is refused naming the file."""
    base = {name: None for name in parquet.SCHEMA.names} | {"is_new_player": False}
    rows = pa.Table.from_pylist([base | {"event_id": f"e{n}", "player_id": f"p{9 - n}"} for n in (3, 1, 2)],
                                schema=parquet.SCHEMA)
    objects = local_objects(tmp_path)
    data = parquet.to_parquet(rows, zstd_level=1)
    await objects.put("k.parquet", data)
    when = datetime(2026, 3, 1, tzinfo=UTC)
    entry = ArchivedFile("k.parquet", 3, hashlib.sha256(data).hexdigest(), parquet.content_hash(rows), when, when)
    assert (await read_part(objects, entry)).equals(rows)
    in_file_order = msgspec.structs.replace(entry, content_hash=parquet.rows_hash(rows), content_order="file")
    assert (await read_part(objects, in_file_order)).equals(rows)
    assert parquet.rows_hash(rows) != parquet.content_hash(rows)
    for wrong in (msgspec.structs.replace(entry, content_order="file"),
                  msgspec.structs.replace(in_file_order, content_order="event_id")):
        with pytest.raises(ArchiveError, match="k.parquet: its rows do not match the content hash"):
            await read_part(objects, wrong)


def test_a_null_and_an_empty_string_hash_apart() -> None:
    base = {name: None for name in parquet.SCHEMA.names} | {"event_id": "e", "is_new_player": False}
    null = pa.Table.from_pylist([base], schema=parquet.SCHEMA)
    empty = pa.Table.from_pylist([base | {"country": ""}], schema=parquet.SCHEMA)
    assert parquet.content_hash(null) != parquet.content_hash(empty)


def test_parts_are_numbered_past_every_listed_one() -> None:
    t, g, day = uuid.uuid4(), uuid.uuid4(), date(2026, 3, 1)
    when = datetime(2026, 3, 1, tzinfo=UTC)
    assert next_part_number(None) == 0
    files = tuple(ArchivedFile(part_key(t, g, day, n), 1, "", "", when, when) for n in (0, 3))
    assert next_part_number(Manifest(t, g, day, 1, files, when)) == 4
    assert part_key(t, g, day, 4) == f"events/tenant_id={t}/game_id={g}/dt=2026-03-01/part-0004.parquet"


def test_the_daily_run_is_next_at_its_time() -> None:
    at = parse_time("02:00")
    assert at == time(2, 0)
    assert next_run(datetime(2026, 3, 1, 1, 59, tzinfo=UTC), at) == datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    assert next_run(datetime(2026, 3, 1, 2, 0, tzinfo=UTC), at) == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
