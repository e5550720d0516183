"""The embedded bus's record batch format: compressed entries, their keys kept apart and searchable."""

from __future__ import annotations

import uuid

import msgspec

from gamemetrics.adapters.pglog.batches import Entry, decode_batch, encode_batch, encode_entries


def _events(n: int) -> list[Entry]:
    """Similar JSON values, as a processor writes them: each with its own event id."""
    return [
        Entry(i, f"player-{i % 50}".encode(), msgspec.json.encode({
            "event_id": str(uuid.uuid4()), "event_type": "level_complete", "player_id": f"player-{i % 50}",
            "timestamp": f"2026-11-25T12:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "properties": {"level": i % 30, "score": i * 7, "duration_s": 95.5},
            "context": {"platform": "ios", "country": "DE", "app_version": "1.4.2"},
        }), {"schema_version": "1"})
        for i in range(n)
    ]


def test_a_batch_of_similar_values_is_stored_several_times_smaller_and_reads_back_whole() -> None:
    entries = _events(1000)
    keys, records = encode_batch(entries)
    raw = sum(len(e.key) + len(e.value) for e in entries)
    assert len(records) * 4 < raw, (len(records), raw)
    assert decode_batch(records) == entries
    # Each distinct key once, uncompressed, so `position(key IN keys)` finds it.
    assert keys == b"".join(f"player-{i}".encode() for i in range(50))


def test_rows_from_before_compression_still_read() -> None:
    entries = _events(3)
    assert decode_batch(encode_entries(entries)) == entries
    assert decode_batch(encode_batch([])[1]) == []
