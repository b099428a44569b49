"""RFM: recency, frequency, monetary of completed orders, their quintiles and the named map."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from seglake.behaviour.inputs import days_before, within
from seglake.config import FeaturesConfig

# Named RFM map: r_score -> segment for FM = 1..5, where FM is the mean of f_score and m_score
# rounded half up. Rows read from the most recent buyers (R 5) to the least (R 1).
RFM_MAP: dict[int, tuple[str, str, str, str, str]] = {
    5: ("New", "Potential loyalist", "Potential loyalist", "Champions", "Champions"),
    4: ("Promising", "Potential loyalist", "Potential loyalist", "Loyal", "Champions"),
    3: ("About to sleep", "About to sleep", "Need attention", "Loyal", "Loyal"),
    2: ("Hibernating", "Hibernating", "At risk", "At risk", "At risk"),
    1: ("Lost", "Lost", "At risk", "Can't lose them", "Can't lose them"),
}
QUINTILES = [0.2, 0.4, 0.6, 0.8]


def rfm_map_markdown() -> str:
    rows = ["| r_score \\ FM | 1 | 2 | 3 | 4 | 5 |", "|---|---|---|---|---|---|"]
    rows += [f"| {r} | " + " | ".join(RFM_MAP[r]) + " |" for r in sorted(RFM_MAP, reverse=True)]
    return "\n".join(rows)


def rfm_segment(r: Column, f: Column, m: Column) -> Column:
    """The RFM map as one lookup: element (r - 1) * 5 + FM of the flattened grid; null without
    scores (Spark 4.2's generated code for ``element_at`` of a literal array at a null index
    returns the last element, so a customer without completed orders became "Champions")."""
    grid = [F.lit(name) for r_score in sorted(RFM_MAP) for name in RFM_MAP[r_score]]
    fm = F.floor((f + m + 1) / 2)
    index = ((r - 1) * 5 + fm).cast("int")
    return F.when(index.isNotNull(), F.element_at(F.array(*grid), index))


def _rank_above(cuts: Column, value: Column) -> Column:
    """How many cut points lie strictly below ``value`` (0..4)."""
    return F.size(F.filter(cuts, lambda c: c < value))


def rfm(orders: DataFrame, as_of: dt.date, config: FeaturesConfig) -> DataFrame:
    """One row per customer with any order before ``as_of``; internal ``_first_order_at`` and
    ``_last_order_at`` (any status) feed tenure and activity recency."""
    done = F.col("status") == "completed"
    net = F.when(done, F.col("net_amount"))
    windowed = []
    for w in sorted(config.windows):
        recent = done & within(as_of, "ordered_at", w)
        windowed += [F.count(F.when(recent, True)).alias(f"frequency_{w}d"),
                     F.round(F.coalesce(F.sum(F.when(recent, F.col("net_amount"))),
                                        F.lit(0.0)), 2).alias(f"monetary_{w}d")]
    per = orders.where(F.col("customer_key").isNotNull()).groupBy("customer_key").agg(
        days_before(as_of, F.max(F.when(done, F.col("ordered_at")))).alias("recency_days"),
        *windowed,
        F.count(F.when(done, True)).alias("orders_total"),
        F.round(F.coalesce(F.sum(net), F.lit(0.0)), 2).alias("monetary_total"),
        F.round(F.avg(net), 2).alias("avg_basket"),
        F.count(F.when(F.col("status") == "returned", True)).alias("returned_orders_total"),
        F.count(F.when(F.col("status") == "cancelled", True)).alias("cancelled_orders_total"),
        (F.count(F.when(done & F.col("coupon_code").isNotNull(), True))
         / F.nullif(F.count(F.when(done, True)), F.lit(0))).alias("coupon_share"),
        F.min("ordered_at").alias("_first_order_at"),
        F.max("ordered_at").alias("_last_order_at"),
    )
    f_col, m_col = f"frequency_{config.rfm_window_days}d", f"monetary_{config.rfm_window_days}d"
    buyers = F.col("orders_total") > 0
    cuts = per.where(buyers).agg(*[
        F.percentile_approx(c, QUINTILES, config.quantile_accuracy).alias(f"_cut_{c}")
        for c in ("recency_days", f_col, m_col)])
    scored = per.crossJoin(F.broadcast(cuts)) \
        .withColumn("r_score", F.when(buyers, 5 - _rank_above(F.col("_cut_recency_days"),
                                                               F.col("recency_days")))) \
        .withColumn("f_score", F.when(buyers, 1 + _rank_above(F.col(f"_cut_{f_col}"),
                                                               F.col(f_col)))) \
        .withColumn("m_score", F.when(buyers, 1 + _rank_above(F.col(f"_cut_{m_col}"),
                                                               F.col(m_col))))
    return scored.withColumn("rfm_segment", rfm_segment(F.col("r_score"), F.col("f_score"),
                                                        F.col("m_score"))) \
        .drop(*[c for c in scored.columns if c.startswith("_cut_")])
