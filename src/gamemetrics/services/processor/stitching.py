"""Session stitching and the new-player flag, from each player's state before the batch."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter

from gamemetrics.services.processor.decode import EventRow

PlayerKey = tuple[uuid.UUID, uuid.UUID, str]
GameKey = tuple[uuid.UUID, uuid.UUID]
_EVENT_TIME = attrgetter("event_time")


@dataclass(slots=True)
class PlayerState:
    """What the processor needs to know about a player it has seen before."""

    last_seen: datetime
    session_id: str | None


def stitch(games: Mapping[GameKey, Sequence[EventRow]], known: Mapping[GameKey, Mapping[str, PlayerState]],
           gap: timedelta) -> None:
    """Fill missing session ids, mark each new player's first event, and give each player's latest
    event of the batch the profile it leaves them with; all in event-time order.

    `games` holds the batch's rows grouped by (tenant, game) (`by_game`), and `known`, per (tenant,
    game), the players seen before the batch. An event without a
    session id joins the player's current session when it comes within `gap` of their previous
    event, otherwise it opens a session whose id is derived from the player and time, so replaying
    the same events always gives the same ids.
    """
    for (tenant_id, game_id), game_rows in games.items():
        seen = known.get((tenant_id, game_id), {})
        namespace = tenant_id.bytes
        # Within one game a player is their id: one string hash per lookup, where a key holding
        # the game's UUIDs would call their Python-level __hash__ on every lookup. Each player's
        # latest (time, session) is a tuple: the loop makes one per event.
        latest: dict[str, tuple[datetime, str | None]] = {}
        profiles: dict[str, _Profile] = {}
        for row in sorted(game_rows, key=_EVENT_TIME):
            current = latest.get(row.player_id)
            if current is None:
                before = seen.get(row.player_id)
                if before is None:
                    row.is_new_player = True
                else:
                    current = (before.last_seen, before.session_id)
            if row.session_id is None:
                if current is not None and current[1] and row.event_time - current[0] <= gap:
                    row.session_id = current[1]
                else:
                    row.session_id = session_id(namespace, f"{row.player_id}@{row.event_time.isoformat()}")
            # Like the players row the sink writes, the state follows the player's latest event: a late
            # event must not steer the events after it, or cutting a batch in two would change the result.
            if current is None or row.event_time >= current[0]:
                latest[row.player_id] = (row.event_time, row.session_id)
            row.profile = None  # set again below on the player's latest event (a batch may be stitched twice)
            profile = profiles.get(row.player_id)
            if profile is None:
                profile = profiles[row.player_id] = _Profile(row)
            else:
                profile.follow(row)
        for profile in profiles.values():
            profile.mark()


class _Profile:
    """A player's context as of their latest event in the batch: each field from the latest event
    that carried it. Kept on that event (`EventRow.profile`), so the players upsert reads one row
    per player instead of sorting all their events for each field."""

    __slots__ = ("app_version", "country", "os", "platform", "row")

    def __init__(self, row: EventRow) -> None:
        self.row = row
        self.platform, self.os, self.country, self.app_version = row.platform, row.os, row.country, row.app_version

    def follow(self, row: EventRow) -> None:
        """`row` comes at or after every event followed so far."""
        self.row = row
        if row.platform is not None:
            self.platform = row.platform
        if row.os is not None:
            self.os = row.os
        if row.country is not None:
            self.country = row.country
        if row.app_version is not None:
            self.app_version = row.app_version

    def mark(self) -> None:
        self.row.profile = (self.platform, self.os, self.country, self.app_version)


def by_game(rows: Sequence[EventRow]) -> dict[GameKey, list[EventRow]]:
    """`rows` grouped by (tenant, game), in their order. Grouped on the ids' integers, which hash in C."""
    groups: dict[tuple[int, int], list[EventRow]] = {}
    for row in rows:
        group = groups.get((row.tenant_id.int, row.game_id.int))
        if group is None:
            group = groups[(row.tenant_id.int, row.game_id.int)] = []
        group.append(row)
    return {(group[0].tenant_id, group[0].game_id): group for group in groups.values()}


def session_id(namespace: bytes, name: str) -> str:
    """`str(uuid.uuid5(UUID(bytes=namespace), name))`, without building two UUID objects per call."""
    digest = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
