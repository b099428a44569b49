"""The product catalogue: a few hundred products, so it is built on the driver and its prices
travel into Spark expressions as literal arrays (no join per event)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from seglake.demo.vocabulary import BRANDS, CATEGORIES, PRODUCT_QUALIFIERS

PRODUCTS_PER_CATEGORY = 60


@dataclass(frozen=True)
class Product:
    index: int            # category * PRODUCTS_PER_CATEGORY + price rank (cheapest first)
    product_id: str
    sku: str
    name: str
    category: str         # slug
    category_label: str
    brand: str
    price: float          # list price in euros, incl. VAT
    markdown: float       # reduction during the soldes (0: not on sale)
    created: str          # ISO date the product entered the catalogue


def catalogue(seed: int) -> list[Product]:
    rng = random.Random(f"catalogue:{seed}")
    products: list[Product] = []
    for c, (slug, label, median, sigma, nouns) in enumerate(CATEGORIES):
        prices = sorted(_shop_price(median * math.exp(rng.gauss(0, sigma)))
                        for _ in range(PRODUCTS_PER_CATEGORY))
        for rank, price in enumerate(prices):
            index = c * PRODUCTS_PER_CATEGORY + rank
            noun, brand = rng.choice(nouns), rng.choice(BRANDS)
            name = f"{noun} {brand}"
            if rng.random() < 0.4:
                name += f" – {rng.choice(PRODUCT_QUALIFIERS)}"
            products.append(Product(
                index=index, product_id=f"P{index + 1:05d}", sku=f"SKU-{rng.randrange(16**6):06X}",
                name=name, category=slug, category_label=label, brand=brand,
                price=price, markdown=rng.choice((0.0, 0.0, 0.3, 0.4, 0.5)),
                created=f"20{rng.randint(19, 24)}-{rng.randint(1, 12):02d}"
                        f"-{rng.randint(1, 28):02d}",
            ))
    return products


def _shop_price(raw: float) -> float:
    """French shop prices end in ,90 or ,99 (or round euros above 100)."""
    raw = max(raw, 3.0)
    if raw >= 100:
        return float(round(raw / 5) * 5) - 0.01
    return math.floor(raw) + (0.9 if raw % 1 < 0.6 else 0.99)
