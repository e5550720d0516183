"""The processor's pure steps with plain data: a batch decoded from raw records, and what an
erasure seen by the sink takes out of what is published."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec

from gamemetrics.events.envelope import RawEnvelope, partition_key
from gamemetrics.events.validation import Limits
from gamemetrics.ports.bus import RAW_EVENTS, Record
from gamemetrics.services.processor.decode import DeadLetter
from gamemetrics.services.processor.sink import SinkResult
from gamemetrics.services.processor.worker import Batch, decode_batch, without_erased
from gamemetrics.settings import Settings

TENANT, GAME = uuid.uuid4(), uuid.uuid4()


def _record(offset: int, player: str, value: bytes | None = None) -> Record:
    event = {"event_id": str(uuid.uuid4()), "event_type": "level_start", "player_id": player,
             "timestamp": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(), "properties": {"level": 1}}
    envelope = RawEnvelope(TENANT, GAME, datetime.now(UTC), msgspec.Raw(msgspec.json.encode(event)))
    return Record(RAW_EVENTS, 0, offset, partition_key(TENANT, player), value or msgspec.json.encode(envelope), {})


def _batch() -> tuple[list[Record], Batch]:
    records = [_record(0, "kept"), _record(1, "erased"), _record(2, "kept", b"{broken"), _record(3, "erased")]
    return records, decode_batch(records, limits=Limits.from_settings(Settings()), rates={"USD": Decimal(1)})


def test_a_decoded_batch_holds_every_record_as_a_row_or_a_dead_letter() -> None:
    records, batch = _batch()
    assert batch.records is records and batch.result is None
    assert [r.player_id for r in batch.rows] == ["kept", "erased", "erased"]
    assert [d.record.offset for d in batch.dead] == [2]


def test_an_erased_players_rows_are_not_published_and_their_redacted_letters_are() -> None:
    records, batch = _batch()
    redacted = tuple(DeadLetter(r, "the player was erased", TENANT, GAME, payload=b"{}") for r in records[1::2])
    result = SinkResult(1, 0, 3, redacted, frozenset({(TENANT, GAME, "erased")}))
    without_erased(batch, result)
    assert [r.player_id for r in batch.rows] == ["kept"]
    assert [d.record.offset for d in batch.dead] == [2, 1, 3]
    untouched = _batch()[1]
    without_erased(untouched, SinkResult(3, 0, 1))
    assert len(untouched.rows) == 3 and len(untouched.dead) == 1
