"""Players' latent tastes: the item categories and price levels each prefers, drifting slowly, so
that what a simulated player acquires has structure a recommender can learn (pure, seeded)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

CATEGORIES = ("weapon", "armour", "potion", "skin", "booster", "pet")
PRICE_LEVELS = 4
ITEMS_PER_CATEGORY = 8
# A player's two favourite categories take most of their picks; the rest share what is left.
FAVOURITE_WEIGHTS = (6.0, 3.0)
DRIFT = 0.03
"""Share of a player's category weights that moves towards a random category each day."""


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    item_id: str
    category: str
    price_level: int

    @property
    def price_usd(self) -> float:
        return (0.99, 2.99, 4.99, 9.99)[self.price_level - 1]


CATALOGUE = tuple(
    CatalogueItem(f"{category}_{n}", category, 1 + n % PRICE_LEVELS)
    for category in CATEGORIES for n in range(ITEMS_PER_CATEGORY)
)


@dataclass(slots=True)
class Taste:
    """How much a player likes each category, and the price level they prefer."""

    categories: list[float]
    price_level: float
    structured: bool = True

    def pick(self, rng: random.Random) -> CatalogueItem:
        """An item this player goes for (any item alike when the taste has no structure)."""
        if not self.structured:
            return rng.choice(CATALOGUE)
        weights = [self.categories[CATEGORIES.index(item.category)]
                   * math.exp(-abs(item.price_level - self.price_level)) for item in CATALOGUE]
        return rng.choices(CATALOGUE, weights=weights)[0]

    def drift(self, rng: random.Random) -> None:
        """A day's slow change: some weight moves to one category, the preferred price wanders."""
        target = rng.randrange(len(CATEGORIES))
        total = sum(self.categories)
        self.categories = [w * (1 - DRIFT) + (DRIFT * total if i == target else 0.0)
                           for i, w in enumerate(self.categories)]
        self.price_level = min(PRICE_LEVELS, max(1.0, self.price_level + rng.uniform(-0.1, 0.1)))


def taste_of(rng: random.Random, *, structured: bool = True) -> Taste:
    """A player's taste at arrival: two favourite categories and a preferred price level."""
    categories = [0.5] * len(CATEGORIES)
    for favourite, weight in zip(rng.sample(range(len(CATEGORIES)), 2), FAVOURITE_WEIGHTS, strict=True):
        categories[favourite] = weight
    return Taste(categories, rng.uniform(1, PRICE_LEVELS), structured)
