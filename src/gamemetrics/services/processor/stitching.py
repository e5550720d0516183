"""Session stitching and the new-player flag, from each player's state before the batch."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gamemetrics.services.processor.decode import EventRow

PlayerKey = tuple[uuid.UUID, uuid.UUID, str]


@dataclass(slots=True)
class PlayerState:
    """What the processor needs to know about a player it has seen before."""

    last_seen: datetime
    session_id: str | None


def stitch(rows: Sequence[EventRow], known: Mapping[PlayerKey, PlayerState], gap: timedelta) -> None:
    """Fill missing session ids and mark each new player's first event, in event-time order.

    An event without a session id joins the player's current session when it comes within `gap`
    of their previous event, otherwise it opens a session whose id is derived from the player and
    time, so replaying the same events always gives the same ids.
    """
    state: dict[PlayerKey, PlayerState] = {}
    for row in sorted(rows, key=lambda r: r.event_time):
        key = (row.tenant_id, row.game_id, row.player_id)
        current = state.get(key) or known.get(key)
        if current is None:
            row.is_new_player = True
        if row.session_id is None:
            if current is not None and current.session_id and row.event_time - current.last_seen <= gap:
                row.session_id = current.session_id
            else:
                row.session_id = str(uuid.uuid5(row.tenant_id, f"{row.player_id}@{row.event_time.isoformat()}"))
        # Like the players row the sink writes, the state follows the player's latest event: a late
        # event must not steer the events after it, or cutting a batch in two would change the result.
        if current is None or row.event_time >= current.last_seen:
            state[key] = PlayerState(row.event_time, row.session_id)
