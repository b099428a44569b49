"""Holdouts: which members of a segment are kept out of activation, so its lift can be measured.

The draw is a salted SHA-256 of ``salt|kind|segment|customer_key`` read as a number in [0, 1):
reproducible in any SQL engine, independent of segment sizes and row order. A member keeps the
group (and ``assigned_at``) it had at the previous publish; only new members are drawn.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

TREATMENT, HOLDOUT = "treatment", "holdout"
GROUPS = (TREATMENT, HOLDOUT)
_DIGITS = 13  # hex digits of the hash read as the draw: 52 bits, exact in a double


def holdout_draw(salt: str, kind: Column, segment: Column, customer_key: Column) -> Column:
    """A uniform number in [0, 1) fixed by the salt, the segment and the customer."""
    text = F.concat_ws("|", F.lit(salt), kind, F.coalesce(segment, F.lit("")), customer_key)
    digits = F.substring(F.sha2(text, 256), 1, _DIGITS)
    return F.conv(digits, 16, 10).cast("double") / float(16 ** _DIGITS)


def assignments(members: DataFrame, previous: DataFrame | None, shares: Mapping[str, float],
                salt: str, as_of: dt.date) -> DataFrame:
    """``members`` (customer_key, kind, segment) with ``group`` and ``assigned_at``.

    ``previous``: the assignments of the previous publish; a member found there keeps its
    group. A kind without a share has no holdout."""
    keys = ["customer_key", "kind", "segment"]
    share = F.coalesce(*[F.when(F.col("kind") == k, F.lit(float(v)))
                         for k, v in shares.items()], F.lit(0.0))
    drawn = F.when(holdout_draw(salt, F.col("kind"), F.col("segment"), F.col("customer_key"))
                   < share, HOLDOUT).otherwise(TREATMENT)
    out = members.select(*keys)
    if previous is not None:
        kept = previous.select(*keys, F.col("group").alias("_kept"),
                               F.col("assigned_at").alias("_since"))
        out = out.join(kept, keys, "left")
    else:
        out = out.withColumn("_kept", F.lit(None).cast("string")) \
            .withColumn("_since", F.lit(None).cast("date"))
    return out.select(*keys, F.coalesce("_kept", drawn).alias("group"),
                      F.coalesce("_since", F.lit(as_of)).alias("assigned_at"))
