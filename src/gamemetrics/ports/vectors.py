"""The Vectors port: collections of named vectors, each with a payload, searched by similarity
under an exact-match filter on the payload (the recommender's item and player vectors)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Range:
    """A numeric payload field between `gte` and `lte` (either bound may be open)."""

    gte: float | None = None
    lte: float | None = None


# Every field named must match: a scalar exactly, a sequence by any of its values, a Range by lying in it.
Where = Mapping[str, Scalar | Sequence[Scalar] | Range]
Distance = Literal["cosine", "dot", "euclid"]


class VectorStoreError(Exception):
    """The vector store refused or could not be reached; the caller retries later."""


@dataclass(frozen=True, slots=True)
class Point:
    """One vector under its name (an item id, a player id), with what filters and answers need."""

    name: str
    vector: Sequence[float]
    payload: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hit:
    """A point found by a search, most similar first."""

    name: str
    score: float
    payload: Mapping[str, Scalar]


class Vectors(Protocol):
    async def ensure_collection(self, collection: str, size: int, distance: Distance = "cosine") -> None:
        """Make the collection if it is missing (idempotent)."""
        ...

    async def upsert(self, collection: str, points: Sequence[Point]) -> None:
        """Store the points, replacing those of the same names; searchable once this returns."""
        ...

    async def search(self, collection: str, vector: Sequence[float], *, limit: int,
                     where: Where | None = None, exclude: Sequence[str] = ()) -> list[Hit]:
        """The `limit` points most similar to `vector` among those matching `where`, none named in `exclude`."""
        ...

    async def vectors(self, collection: str, names: Sequence[str]) -> dict[str, list[float]]:
        """The vectors of the points named that exist."""
        ...

    async def set_payload(self, collection: str, payload: Mapping[str, Scalar], *, where: Where) -> None:
        """Set these payload fields on every point matching `where`."""
        ...

    async def delete(self, collection: str, *, names: Sequence[str] = (), where: Where | None = None) -> None:
        """Remove the points named, and those matching `where` (a player's, for an erasure)."""
        ...

    async def close(self) -> None:
        """Release the client (local mode: its lock on the directory)."""
        ...
