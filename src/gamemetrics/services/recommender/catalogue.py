"""The catalogue: a game's items, learnt from events and described by the studio."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

MAX_TAGS = 32


class ItemDocument(msgspec.Struct, forbid_unknown_fields=True):
    """What a studio says of an item (`PUT .../items/{item_id}`)."""

    category: str | None = None
    price: Decimal | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    available: bool = True


class InvalidItem(ValueError):
    """An item document that cannot be kept; the message says why."""


_decoder = msgspec.json.Decoder(ItemDocument)


def read_item(body: bytes) -> ItemDocument:
    """The document `body` holds, checked; InvalidItem says what is wrong."""
    try:
        item = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidItem(f"not an item document: {exc}") from None
    if item.price is not None and (not item.price.is_finite() or item.price < 0):
        raise InvalidItem("price must be a number of at least 0")
    if item.category is not None and not 1 <= len(item.category) <= 128:
        raise InvalidItem("category has 1-128 characters")
    if len(item.tags) > MAX_TAGS or any(not 1 <= len(tag) <= 64 for tag in item.tags):
        raise InvalidItem(f"at most {MAX_TAGS} tags of 1-64 characters each")
    return item


def check_item_id(item_id: str) -> str:
    """An item id has 1-256 characters and no NUL, like the events that name it."""
    if not 1 <= len(item_id) <= 256 or "\x00" in item_id:
        raise InvalidItem("an item id has 1-256 characters and no NUL")
    return item_id


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_after: str | None


_COLUMNS = "item_id, category, price, tags, available, first_seen, described_at"


async def tenant_transaction(conn: AsyncConnection, tenant_id: uuid.UUID) -> None:
    """Name the transaction's tenant, so row-level security shows and takes that tenant's rows only."""
    await conn.execute("SELECT set_config('gamemetrics.tenant_id', %s, true)", (str(tenant_id),))


class Catalogue:
    """A game's items in the database."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def put(self, tenant_id: uuid.UUID, game_id: uuid.UUID, item_id: str,
                  item: ItemDocument) -> tuple[bool, dict[str, Any]]:
        """Describe the item; (whether it was new, the item as kept)."""
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant_id)
            cur = await conn.cursor(row_factory=dict_row).execute(
                "INSERT INTO rec_items (tenant_id, game_id, item_id, category, price, tags, available, described_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, now())"
                " ON CONFLICT (tenant_id, game_id, item_id) DO UPDATE SET category = excluded.category,"
                " price = excluded.price, tags = excluded.tags, available = excluded.available,"
                f" described_at = now() RETURNING {_COLUMNS}, (xmax = 0) AS created",
                (tenant_id, game_id, item_id, item.category, item.price, item.tags, item.available),
            )
            row = await cur.fetchone()
        assert row is not None
        created = bool(row.pop("created"))
        return created, row

    async def get(self, tenant_id: uuid.UUID, game_id: uuid.UUID, item_id: str) -> dict[str, Any] | None:
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant_id)
            cur = await conn.cursor(row_factory=dict_row).execute(
                f"SELECT {_COLUMNS} FROM rec_items WHERE tenant_id = %s AND game_id = %s AND item_id = %s",
                (tenant_id, game_id, item_id))
            return await cur.fetchone()

    async def delete(self, tenant_id: uuid.UUID, game_id: uuid.UUID, item_id: str) -> bool:
        """Forget the item; whether it was there. An event naming it later adds it again, undescribed."""
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant_id)
            cur = await conn.execute(
                "DELETE FROM rec_items WHERE tenant_id = %s AND game_id = %s AND item_id = %s",
                (tenant_id, game_id, item_id))
            return cur.rowcount > 0

    async def page(self, tenant_id: uuid.UUID, game_id: uuid.UUID, *, after: str, limit: int,
                   category: str | None = None) -> Page:
        """Items in id order after `after`."""
        async with self._pool.connection() as conn, conn.transaction():
            await tenant_transaction(conn, tenant_id)
            cur = await conn.cursor(row_factory=dict_row).execute(
                f"SELECT {_COLUMNS} FROM rec_items WHERE tenant_id = %s AND game_id = %s AND item_id > %s"
                " AND (%s::text IS NULL OR category = %s) ORDER BY item_id LIMIT %s",
                (tenant_id, game_id, after, category, category, limit + 1))
            rows = await cur.fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, rows[-1]["item_id"] if more and rows else None)

    @staticmethod
    async def payloads(conn: AsyncConnection, tenant_id: uuid.UUID, game_id: uuid.UUID,
                       item_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Category, price and availability of the items named (those kept)."""
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT item_id, category, price, available FROM rec_items"
            " WHERE tenant_id = %s AND game_id = %s AND item_id = ANY(%s)", (tenant_id, game_id, item_ids))
        return {row["item_id"]: row for row in await cur.fetchall()}
