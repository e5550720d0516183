"""One collection's points held in memory as arrays: the vectors as a matrix, each payload field as
a column of codes (exact matches) and numbers (ranges), so that a filtered search is a few numpy
operations over the rows instead of a filter evaluated in Python point by point.

The matching follows Qdrant's: an exact match never mixes bool, integer, float and string values
(and no float is matched exactly, only by a range), a range takes integers and floats but not
booleans, and a point without the field matches no condition on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gamemetrics.ports.vectors import Distance, Hit, Point, Range, Scalar, Where

_MISSING = -1
_INITIAL_ROWS = 64
Rows = npt.NDArray[np.intp]


def _key(value: object) -> tuple[str, Scalar] | None:
    """What an exact match compares: the value with its kind, or None for a value never matched exactly."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, str):
        return ("str", value)
    return None


def _number(value: Scalar) -> float:
    """The value as a range sees it: NaN for what no range takes."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


@dataclass(slots=True)
class _Column:
    """One payload field of every row: the code of its exact-match key, and its number."""

    codes: npt.NDArray[np.int32]
    numbers: npt.NDArray[np.float64]
    keys: dict[tuple[str, Scalar], int] = field(default_factory=dict)

    @classmethod
    def empty(cls, capacity: int) -> _Column:
        return cls(np.full(capacity, _MISSING, np.int32), np.full(capacity, np.nan, np.float64))

    def put(self, row: int, value: Scalar | None) -> None:
        if value is None:
            self.codes[row], self.numbers[row] = _MISSING, math.nan
            return
        key = _key(value)
        self.codes[row] = _MISSING if key is None else self.keys.setdefault(key, len(self.keys))
        self.numbers[row] = _number(value)

    def grow(self, capacity: int) -> None:
        grown = _Column.empty(capacity)
        grown.codes[:len(self.codes)], grown.numbers[:len(self.numbers)] = self.codes, self.numbers
        self.codes, self.numbers = grown.codes, grown.numbers


class PointIndex:
    """The points of one collection of vectors of `size` under `distance`, searched in memory."""

    def __init__(self, size: int, distance: Distance) -> None:
        self._size = size
        self._distance = distance
        self._matrix = np.zeros((_INITIAL_ROWS, size), np.float32)
        self._alive = np.zeros(_INITIAL_ROWS, bool)
        self._names: list[str | None] = []
        self._payloads: list[dict[str, Scalar]] = []
        self._rows: dict[str, int] = {}
        self._free: list[int] = []
        self._columns: dict[str, _Column] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def _vector(self, vector: Sequence[float]) -> npt.NDArray[np.float32]:
        array = np.asarray(vector, np.float32)
        if array.shape != (self._size,):
            raise ValueError(f"a vector of {self._size} numbers is expected, not {array.shape[0]}")
        if self._distance == "cosine":  # Qdrant keeps cosine vectors normalised, and answers them so
            norm = float(np.linalg.norm(array))
            if norm > 0:
                array = array / norm
        return array

    def _row_for(self, name: str) -> int:
        row = self._rows.get(name)
        if row is not None:
            return row
        if self._free:
            row = self._free.pop()
        else:
            row = len(self._names)
            self._names.append(None)
            self._payloads.append({})
            if row == len(self._alive):
                self._grow(2 * len(self._alive))
        self._rows[name] = row
        self._names[row] = name
        self._alive[row] = True
        return row

    def _grow(self, capacity: int) -> None:
        matrix = np.zeros((capacity, self._size), np.float32)
        matrix[:len(self._matrix)] = self._matrix
        alive = np.zeros(capacity, bool)
        alive[:len(self._alive)] = self._alive
        self._matrix, self._alive = matrix, alive
        for column in self._columns.values():
            column.grow(capacity)

    def _column(self, name: str) -> _Column:
        column = self._columns.get(name)
        if column is None:
            column = self._columns[name] = _Column.empty(len(self._alive))
        return column

    def _set_payload(self, row: int, payload: Mapping[str, Scalar], *, replace: bool) -> None:
        if replace:
            for gone in self._payloads[row].keys() - payload.keys():
                self._columns[gone].put(row, None)
            self._payloads[row] = dict(payload)
        else:
            self._payloads[row].update(payload)
        for key, value in payload.items():
            self._column(key).put(row, value)

    def upsert(self, points: Iterable[Point]) -> None:
        """Store the points, replacing those of the same names."""
        for point in points:
            vector = self._vector(point.vector)
            row = self._row_for(point.name)
            self._matrix[row] = vector
            self._set_payload(row, point.payload, replace=True)

    def _drop(self, rows: Sequence[int]) -> None:
        """Forget the rows' points: a whole model version's at once, so per row only what must be."""
        for row in rows:
            name = self._names[row]
            assert name is not None
            del self._rows[name]
            self._names[row] = None
            self._payloads[row] = {}
        self._alive[rows] = False
        for column in self._columns.values():
            column.codes[rows], column.numbers[rows] = _MISSING, math.nan
        self._free.extend(rows)

    def delete(self, names: Sequence[str] = (), where: Where | None = None) -> None:
        """Remove the points named, and those matching `where`."""
        self._drop([row for row in map(self._rows.get, set(names)) if row is not None])
        if where:
            self._drop(self.matching(where).tolist())

    def set_payload(self, payload: Mapping[str, Scalar], where: Where) -> None:
        """Set these payload fields on every point matching `where`."""
        for row in self.matching(where).tolist():
            self._set_payload(row, payload, replace=False)

    def matching(self, where: Where | None, exclude: Sequence[str] = ()) -> Rows:
        """The rows of the points matching `where`, none named in `exclude`."""
        mask = self._alive.copy()
        for name, wanted in (where or {}).items():
            column = self._columns.get(name)
            if column is None:
                return np.flatnonzero(False)
            if isinstance(wanted, Range | float):
                low, high = (wanted.gte, wanted.lte) if isinstance(wanted, Range) else (wanted, wanted)
                if low is None and high is None:
                    mask &= ~np.isnan(column.numbers)
                if low is not None:
                    mask &= column.numbers >= low  # NaN, what no range takes, compares false
                if high is not None:
                    mask &= column.numbers <= high
            elif isinstance(wanted, str | int | bool):
                code = column.keys.get(_key(wanted))  # type: ignore[arg-type]  # a str, int or bool has a key
                if code is None:
                    return np.flatnonzero(False)
                mask &= column.codes == code
            else:
                codes = {column.keys[k] for k in map(_key, wanted) if k is not None and k in column.keys}
                anyof = np.zeros_like(mask)
                for code in codes:
                    anyof |= column.codes == code
                mask &= anyof
        excluded = [row for row in map(self._rows.get, exclude) if row is not None]
        mask[excluded] = False
        return np.flatnonzero(mask)

    def search(self, vector: Sequence[float], *, limit: int, where: Where | None = None,
               exclude: Sequence[str] = ()) -> list[Hit]:
        """The `limit` points most similar to `vector` among those matching `where`, none named in `exclude`."""
        query = self._vector(vector)
        rows = self.matching(where, exclude)
        if not rows.size or limit < 1:
            return []
        if self._distance == "euclid":
            scores = np.sqrt(((self._matrix[rows] - query) ** 2).sum(axis=1))
            order = scores  # a smaller distance is nearer
        else:  # every row at once is cheaper than gathering the matching rows first
            scores = (self._matrix[:len(self._names)] @ query)[rows]
            order = -scores
        if len(rows) > limit:
            best = np.argpartition(order, limit - 1)[:limit]
            best = best[np.argsort(order[best], kind="stable")]
        else:
            best = np.argsort(order, kind="stable")
        hits = []
        for at in best.tolist():
            row = int(rows[at])
            name = self._names[row]
            assert name is not None
            hits.append(Hit(name, float(scores[at]), dict(self._payloads[row])))
        return hits

    def vectors(self, names: Sequence[str]) -> dict[str, list[float]]:
        """The vectors of the points named that exist."""
        found: dict[str, list[float]] = {}
        for name in names:
            row = self._rows.get(name)
            if row is not None:
                found[name] = [float(x) for x in self._matrix[row].tolist()]
        return found
