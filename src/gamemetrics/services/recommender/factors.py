"""Matrix factorisation of implicit feedback with the `implicit` library: pure work on arrays."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

Algorithm = Literal["als", "bpr"]
Progress = Callable[[int, int], object]
"""Called with (iterations done, iterations in all)."""


@dataclass(frozen=True, slots=True)
class Factors:
    """Trained vectors: a player's dot product with an item is how much they are expected to want it."""

    players: list[str]
    items: list[str]
    player_vectors: npt.NDArray[np.float32]
    item_vectors: npt.NDArray[np.float32]

    @property
    def size(self) -> int:
        return int(self.item_vectors.shape[1])


@dataclass(frozen=True, slots=True)
class Matrix:
    """Weighted interactions as a players × items sparse matrix, with the ids of its rows and columns."""

    players: list[str]
    items: list[str]
    weights: sp.csr_matrix


def matrix(triples: Sequence[tuple[str, str, float]]) -> Matrix:
    """(player, item, weight) triples summed into a matrix."""
    players: dict[str, int] = {}
    items: dict[str, int] = {}
    rows = np.fromiter((players.setdefault(p, len(players)) for p, _, _ in triples), np.int32, len(triples))
    cols = np.fromiter((items.setdefault(i, len(items)) for _, i, _ in triples), np.int32, len(triples))
    data = np.fromiter((w for _, _, w in triples), np.float32, len(triples))
    weights = sp.csr_matrix((data, (rows, cols)), shape=(len(players), len(items)), dtype=np.float32)
    weights.sum_duplicates()
    return Matrix(list(players), list(items), weights)


def fit(m: Matrix, *, algorithm: Algorithm, factors: int, iterations: int, regularization: float,
        progress: Progress | None = None, seed: int = 7) -> Factors:
    """Train `algorithm` on the matrix; `progress` hears of each iteration."""
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    done = 0

    def step(*_: object) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, iterations)

    # implicit's CPU solvers run threads of their own; BLAS threads beneath them only contend for the cores.
    with threadpool_limits(1, "blas"):
        model: AlternatingLeastSquares | BayesianPersonalizedRanking
        if algorithm == "als":
            model = AlternatingLeastSquares(factors=factors, iterations=iterations, regularization=regularization,
                                            random_state=seed)
        else:
            model = BayesianPersonalizedRanking(factors=factors, iterations=iterations,
                                                regularization=regularization, random_state=seed)
        model.fit(m.weights, show_progress=False, callback=step)
    return Factors(m.players, m.items, np.asarray(model.user_factors, np.float32),
                   np.asarray(model.item_factors, np.float32))


def top_items(factors: Factors, player_row: int, n: int, exclude: set[int]) -> list[int]:
    """The `n` best columns for a player row by dot product, none of `exclude` (for offline evaluation)."""
    scores = factors.item_vectors @ factors.player_vectors[player_row]
    if exclude:
        scores[list(exclude)] = -np.inf
    n = min(n, len(scores))
    best = np.argpartition(-scores, n - 1)[:n]
    return [int(i) for i in best[np.argsort(-scores[best])]]
