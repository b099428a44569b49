"""How far a distribution has moved from a reference one: the population stability index over
shared bins, the measure credit scoring uses to say when a model needs retraining."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import pyarrow as pa
from pyspark.sql import Column
from pyspark.sql import functions as F

# a bin empty on one side counts as this share, so one empty bin does not make the index infinite
EMPTY_SHARE = 1e-4


def population_stability(reference: Sequence[float], current: Sequence[float]) -> float:
    """PSI = sum over bins of (current - reference) * ln(current / reference), on shares;
    under 0.1 is usually read as stable, over 0.25 as a shift."""
    if len(reference) != len(current):
        raise ValueError(f"{len(reference)} reference bins against {len(current)} current ones")
    ref_total, cur_total = sum(reference), sum(current)
    if not ref_total or not cur_total:
        return 0.0
    psi = 0.0
    for r, c in zip(reference, current, strict=True):
        p, q = max(r / ref_total, EMPTY_SHARE), max(c / cur_total, EMPTY_SHARE)
        psi += (q - p) * math.log(q / p)
    return psi


def binned(values: pa.Array | pa.ChunkedArray, edges: Sequence[float]) -> list[int]:
    """``histogram``'s counts of values held in the driver (nulls in none, NaN in the last)."""
    counts = [0] * (len(edges) + 1)
    for v in values.to_pylist():
        if v is not None:
            counts[len(edges) if v != v else bisect.bisect_right(edges, v)] += 1
    return counts


def histogram(column: str, edges: Sequence[float]) -> list[Column]:
    """Aggregates counting the values of ``column`` in each bin: below the first edge, between
    each two edges, from the last edge up (len(edges) + 1 bins; nulls in none)."""
    value = F.col(column)
    bounds = [None, *edges, None]
    return [F.count(F.when((value >= lo if lo is not None else F.lit(True))
                           & (value < hi if hi is not None else F.lit(True)), 1))
            .alias(f"_bin{i}") for i, (lo, hi) in enumerate(zip(bounds, bounds[1:],
                                                                  strict=False))]
