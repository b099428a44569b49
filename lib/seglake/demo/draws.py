"""Counter-based random draws as Spark columns.

Every draw is a hash of (seed, purpose, entity keys), so it does not depend on partitioning,
task order or the number of executors: the same seed gives the same world on a laptop and on a
cluster, and a longer run reproduces a shorter one day for day.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from itertools import accumulate
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

_MANTISSA = (1 << 53) - 1


class Draws:
    """Uniforms, choices and counts keyed by a seed; ``tag`` names what a draw is for."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def hash(self, tag: str, *keys: Column | str | int) -> Column:
        return F.xxhash64(F.lit(self.seed), F.lit(tag), *[_col(k) for k in keys])

    def uniform(self, tag: str, *keys: Column | str | int) -> Column:
        """U[0, 1) with 53 random bits."""
        return self.hash(tag, *keys).bitwiseAND(F.lit(_MANTISSA)).cast("double") / float(1 << 53)

    def normal(self, tag: str, *keys: Column | str | int) -> Column:
        """Standard normal (Box–Muller)."""
        u1 = self.uniform(tag + ":1", *keys)
        u2 = self.uniform(tag + ":2", *keys)
        return F.sqrt(-2.0 * F.log(1.0 - u1)) * F.cos(2 * math.pi * u2)

    def bernoulli(self, p: Column | float, tag: str, *keys: Column | str | int) -> Column:
        return self.uniform(tag, *keys) < _col(p)

    def geometric(self, mean: Column, tag: str, *keys: Column | str | int,
                  cap: int = 500) -> Column:
        """Count >= 0 with the given mean, geometric (overdispersed, as visit and page counts
        are): one closed-form expression, so it stays small inside generated code."""
        u = self.uniform(tag, *keys)
        ratio = mean / (mean + 1.0)
        count = F.floor(F.log(1.0 - u) / F.log(ratio))
        return F.when(mean <= 0, F.lit(0)).otherwise(F.least(count, F.lit(cap)).cast("int"))

    def index(self, weights: Sequence[float], tag: str, *keys: Column | str | int) -> Column:
        """Index drawn with the given relative weights (fixed, known on the driver)."""
        return index_below(self.uniform(tag, *keys), weights)

    def choice(self, values: Sequence[Any], weights: Sequence[float] | None, tag: str,
               *keys: Column | str | int) -> Column:
        weights = weights if weights is not None else [1.0] * len(values)
        return pick(values, self.index(weights, tag, *keys))


def index_below(u: Column, weights: Sequence[float]) -> Column:
    """Inverse CDF of a fixed discrete distribution: how many cumulative bounds ``u`` passes."""
    total = float(sum(weights))
    bounds = [c / total for c in accumulate(weights)][:-1]
    if len(bounds) <= 32:
        result = F.lit(0)
        for bound in bounds:
            result = result + F.when(u >= bound, 1).otherwise(0)
        return result
    return F.size(F.filter(literal_array(bounds), lambda b: b <= u))


def hex16(hash_value: Column) -> Column:
    """A 64-bit hash as 16 upper-case hex digits (negative hashes in two's complement)."""
    return F.lpad(F.hex(hash_value), 16, "0")


def pick(values: Sequence[Any], index: Column) -> Column:
    """``values[index]`` for a literal list (0-based)."""
    return F.element_at(literal_array(values), index.cast("int") + 1)


def literal_array(values: Sequence[Any]) -> Column:
    """An array literal, built once per distinct list: every ``F.lit`` is a round trip to the
    JVM, and the demo's plans pick from the same long lists (calendar, catalogue) many times."""
    return _literal_array(tuple((type(v), v) for v in values))  # 1 and 1.0 stay apart


@lru_cache(maxsize=512)
def _literal_array(typed: tuple[tuple[type, Any], ...]) -> Column:
    return F.array(*[F.lit(v) for _, v in typed])


def by_archetype(values: Sequence[float], archetype: Column) -> Column:
    return pick([float(v) for v in values], archetype)


def _col(value: Column | str | int | float) -> Column:
    return value if isinstance(value, Column) else F.lit(value)
