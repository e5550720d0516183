"""Vectors in Qdrant through `qdrant-client`, in local mode (a directory under the data dir) or on
a Qdrant server (a URL).

One module with two constructors: the client is the same, and so are its calls; only where it
keeps the points differs. Qdrant identifies points by UUID, so each point's name is mapped to a
UUID (version 5, so the same name is always the same point) and kept in the payload to be read back.

Local mode is the client's own in-process implementation, which evaluates a filter in Python point
by point. Since one process alone holds a local directory, no other writer can change its points,
so that process also keeps each collection it reads in memory (`index.PointIndex`), loaded on the
first read and changed by every write after Qdrant took it: searches and reads are answered there,
and Qdrant's local mode stays the store of record on disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ApiException

from gamemetrics.adapters.qdrant.index import PointIndex
from gamemetrics.ports.vectors import Distance, Hit, Point, Range, Scalar, VectorStoreError, Where
from gamemetrics.settings import VectorSettings

_NAMES = uuid.UUID("5d3c1e0e-2b7e-4f57-9a44-6a1f0c7b9e21")
_NAME_FIELD = "_name"
_DISTANCES = {"cosine": models.Distance.COSINE, "dot": models.Distance.DOT, "euclid": models.Distance.EUCLID}
_DISTANCE_NAMES: dict[models.Distance, Distance] = {v: k for k, v in _DISTANCES.items()}  # type: ignore[misc]


def point_id(name: str) -> str:
    """Qdrant's id of the point named `name`."""
    return str(uuid.uuid5(_NAMES, name))


def _filter(where: Where) -> models.Filter:
    conditions: list[models.Condition] = []
    for key, value in where.items():
        if isinstance(value, Range):
            conditions.append(models.FieldCondition(key=key, range=models.Range(gte=value.gte, lte=value.lte)))
            continue
        match: models.MatchValue | models.MatchAny
        if isinstance(value, float):
            conditions.append(models.FieldCondition(key=key, range=models.Range(gte=value, lte=value)))
            continue
        if isinstance(value, str | int | bool):
            match = models.MatchValue(value=value)
        elif all(isinstance(v, str) for v in value):
            match = models.MatchAny(any=[str(v) for v in value])
        else:  # Qdrant matches any of strings or any of integers, not a mix
            match = models.MatchAny(any=[int(v) for v in value])
        conditions.append(models.FieldCondition(key=key, match=match))
    return models.Filter(must=conditions)


class QdrantVectors:
    """The Vectors port on one Qdrant client; `where` names it in errors."""

    def __init__(self, client: AsyncQdrantClient, where: str) -> None:
        self._client = client
        self._where = where

    async def ensure_collection(self, collection: str, size: int, distance: Distance = "cosine") -> None:
        try:
            if not await self._client.collection_exists(collection):
                await self._client.create_collection(
                    collection, vectors_config=models.VectorParams(size=size, distance=_DISTANCES[distance]))
        except (ApiException, OSError) as exc:
            raise VectorStoreError(f"could not make collection {collection} in {self._where}: {exc}") from exc

    async def upsert(self, collection: str, points: Sequence[Point]) -> None:
        if not points:
            return
        structs = [models.PointStruct(id=point_id(p.name), vector=list(p.vector),
                                      payload={**p.payload, _NAME_FIELD: p.name}) for p in points]
        try:
            await self._client.upsert(collection, points=structs, wait=True)
        except (ApiException, OSError, ValueError) as exc:
            raise VectorStoreError(f"could not store {len(points)} points in {collection} of {self._where}:"
                                   f" {exc}") from exc

    async def search(self, collection: str, vector: Sequence[float], *, limit: int,
                     where: Where | None = None, exclude: Sequence[str] = ()) -> list[Hit]:
        query_filter = _filter(where) if where else None
        if exclude:
            query_filter = query_filter or models.Filter()
            query_filter.must_not = [models.HasIdCondition(has_id=[point_id(name) for name in exclude])]
        try:
            found = await self._client.query_points(
                collection, query=list(vector), query_filter=query_filter, limit=limit, with_payload=True)
        except (ApiException, OSError, ValueError) as exc:
            raise VectorStoreError(f"could not search {collection} of {self._where}: {exc}") from exc
        hits = []
        for point in found.points:
            payload: dict[str, Scalar] = dict(point.payload or {})
            name = str(payload.pop(_NAME_FIELD, point.id))
            hits.append(Hit(name, point.score, payload))
        return hits

    async def vectors(self, collection: str, names: Sequence[str]) -> dict[str, list[float]]:
        try:
            points = await self._client.retrieve(collection, ids=[point_id(n) for n in names], with_payload=True,
                                                 with_vectors=True)
        except (ApiException, OSError, ValueError) as exc:
            raise VectorStoreError(f"could not read vectors of {collection} in {self._where}: {exc}") from exc
        found: dict[str, list[float]] = {}
        for point in points:
            if isinstance(point.vector, list) and point.payload is not None:
                found[str(point.payload[_NAME_FIELD])] = [float(x) for x in point.vector]  # type: ignore[arg-type]
        return found

    async def set_payload(self, collection: str, payload: Mapping[str, Scalar], *, where: Where) -> None:
        try:
            await self._client.set_payload(collection, payload=dict(payload),
                                           points=models.FilterSelector(filter=_filter(where)), wait=True)
        except (ApiException, OSError, ValueError) as exc:
            raise VectorStoreError(f"could not update payloads in {collection} of {self._where}: {exc}") from exc

    async def delete(self, collection: str, *, names: Sequence[str] = (), where: Where | None = None) -> None:
        try:
            if names:
                await self._client.delete(
                    collection, points_selector=models.PointIdsList(points=[point_id(n) for n in names]), wait=True)
            if where:
                await self._client.delete(
                    collection, points_selector=models.FilterSelector(filter=_filter(where)), wait=True)
        except (ApiException, OSError, ValueError) as exc:
            raise VectorStoreError(f"could not delete from {collection} of {self._where}: {exc}") from exc

    async def close(self) -> None:
        await self._client.close()


def _tune_storage(client: AsyncQdrantClient, collection: str | None = None) -> None:
    """Local mode keeps each collection in SQLite and commits every point on its own: in WAL mode
    with `synchronous=NORMAL` a commit no longer waits for the disk. A crash of the process loses
    nothing; a power loss may lose the last writes (vectors a training writes again)."""
    local = getattr(client, "_client", None)
    collections = getattr(local, "collections", None)
    if not isinstance(collections, dict):  # another client version: its own defaults stay
        return
    for name, kept in collections.items():
        connection = getattr(getattr(kept, "storage", None), "storage", None)
        if (collection is None or name == collection) and isinstance(connection, sqlite3.Connection):
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")


class LocalQdrantVectors(QdrantVectors):
    """Qdrant's local mode, with the collections this process reads also held in memory."""

    def __init__(self, client: AsyncQdrantClient, where: str) -> None:
        super().__init__(client, where)
        self._indexes: dict[str, PointIndex] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        _tune_storage(client)

    def _lock(self, collection: str) -> asyncio.Lock:
        return self._locks.setdefault(collection, asyncio.Lock())

    async def _index(self, collection: str) -> PointIndex:
        """The collection in memory, loaded from Qdrant on first use (writes wait meanwhile)."""
        index = self._indexes.get(collection)
        if index is not None:
            return index
        async with self._lock(collection):
            index = self._indexes.get(collection)
            if index is None:
                index = self._indexes[collection] = await self._load(collection)
        return index

    async def _load(self, collection: str) -> PointIndex:
        try:
            info = await self._client.get_collection(collection)
            params = info.config.params.vectors
            assert isinstance(params, models.VectorParams)  # the adapter makes only unnamed dense vectors
            index = PointIndex(params.size, _DISTANCE_NAMES[params.distance])
            # Local mode sorts every id of the collection for each page it scrolls: read it in one.
            page = max(info.points_count or 0, 1)
            offset: models.ExtendedPointId | None = None
            while True:
                records, offset = await self._client.scroll(collection, limit=page, offset=offset,
                                                            with_payload=True, with_vectors=True)
                points = []
                for record in records:
                    payload: dict[str, Scalar] = dict(record.payload or {})
                    name = str(payload.pop(_NAME_FIELD, record.id))
                    assert isinstance(record.vector, list)
                    points.append(Point(name, record.vector, payload))  # type: ignore[arg-type]
                index.upsert(points)
                if offset is None:
                    return index
        except (ApiException, OSError, ValueError) as exc:
            raise VectorStoreError(f"could not read {collection} of {self._where}: {exc}") from exc

    async def ensure_collection(self, collection: str, size: int, distance: Distance = "cosine") -> None:
        await super().ensure_collection(collection, size, distance)
        _tune_storage(self._client, collection)

    async def upsert(self, collection: str, points: Sequence[Point]) -> None:
        async with self._lock(collection):
            await super().upsert(collection, points)
            if collection in self._indexes:
                self._indexes[collection].upsert(points)

    async def search(self, collection: str, vector: Sequence[float], *, limit: int,
                     where: Where | None = None, exclude: Sequence[str] = ()) -> list[Hit]:
        index = await self._index(collection)
        try:
            return index.search(vector, limit=limit, where=where, exclude=exclude)
        except ValueError as exc:
            raise VectorStoreError(f"could not search {collection} of {self._where}: {exc}") from exc

    async def vectors(self, collection: str, names: Sequence[str]) -> dict[str, list[float]]:
        return (await self._index(collection)).vectors(names)

    async def set_payload(self, collection: str, payload: Mapping[str, Scalar], *, where: Where) -> None:
        async with self._lock(collection):
            await super().set_payload(collection, payload, where=where)
            if collection in self._indexes:
                self._indexes[collection].set_payload(payload, where)

    async def delete(self, collection: str, *, names: Sequence[str] = (), where: Where | None = None) -> None:
        async with self._lock(collection):
            await super().delete(collection, names=names, where=where)
            if collection in self._indexes:
                self._indexes[collection].delete(names, where)

    async def close(self) -> None:
        self._indexes.clear()
        await super().close()


def local_vectors(path: Path) -> QdrantVectors:
    """Qdrant's local mode on the directory `path` (one process at a time holds it)."""
    path.mkdir(parents=True, exist_ok=True)
    return LocalQdrantVectors(AsyncQdrantClient(path=str(path)), str(path))


def server_vectors(url: str, api_key: str | None = None) -> QdrantVectors:
    """A Qdrant server at `url`."""
    return QdrantVectors(AsyncQdrantClient(url=url, api_key=api_key), url)


def make_vectors(settings: VectorSettings, data_dir: Path) -> QdrantVectors:
    """The server when GAMEMETRICS_QDRANT_URL is set, else local mode in data_dir/qdrant."""
    if settings.qdrant_url:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return server_vectors(settings.qdrant_url, key)
    return local_vectors(data_dir / "qdrant")
