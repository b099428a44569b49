"""Next best category and send time (``gold.customer_recommendations``).

Categories: a customer's own strongest categories first, then the rest ranked by an
implicit-feedback ALS model (Spark ML) of customer x category, the strength of a pair being its
purchases, carts, product views and category browsing, each weighted and halved every
``half_life_days``. ALS scores every category for every fitted customer, those never touched
included (through customers like them), from browsing alone as well as from purchases;
docs/recommendations.md says why ALS and not FPGrowth, and why own history comes first.
Customers the model did not fit (flagged) get their own ranking filled with the most popular
categories, customers with no interaction the most popular.

Send time: the local hour and weekday with most of a customer's email opens (weighted) and
session starts; the customer's rule segment's when they have fewer than
``send_min_observations``, everyone's when the segment has none.
"""

from __future__ import annotations

import datetime as dt

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from seglake.behaviour.inputs import cutoff, days_before, not_cancelled, within
from seglake.config import RecommendationsConfig
from seglake.models import fitting_layout

BROWSE_EVENTS = ("page_view", "search")
CART_EVENTS = ("add_to_cart",)


def interactions(events: DataFrame, orders: DataFrame, lines: DataFrame | None,
                 products: DataFrame, as_of: dt.date, conf: RecommendationsConfig) -> DataFrame:
    """``customer_key``, ``category``, ``strength`` of every pair with something before
    ``as_of`` in the window."""
    w = conf.weights
    decay = F.pow(F.lit(0.5), days_before(as_of, "ts") / conf.half_life_days)
    kind = F.col("event_type")
    weight = F.when(kind == "product_view", w["product_view"]) \
        .when(kind.isin(*CART_EVENTS), w["add_to_cart"]) \
        .when(kind.isin(*BROWSE_EVENTS), w["browse"])
    browsed = events.where(F.col("customer_key").isNotNull() & F.col("category").isNotNull()) \
        .select("customer_key", "category", F.col("event_ts").alias("ts"),
                weight.alias("weight")).where(F.col("weight").isNotNull())
    df = browsed
    if lines is not None:
        df = df.unionByName(
            orders.where(F.col("customer_key").isNotNull() & not_cancelled())
            .select("customer_key", "order_id", F.col("ordered_at").alias("ts"))
            .join(lines.select("order_id", "product_id"), "order_id")
            .join(products.select("product_id", "category"), "product_id")
            .select("customer_key", "category", "ts", F.lit(w["purchase"]).alias("weight")))
    df = df.where((F.col("ts") < cutoff(as_of)) & within(as_of, "ts", conf.window_days))
    return df.groupBy("customer_key", "category").agg(
        F.sum(F.col("weight") * decay).alias("strength"))


def customer_index(keys: DataFrame) -> DataFrame:
    """``customer_key`` -> ``user`` (0..n-1, an int as ALS needs), without a driver collect;
    the same numbering on any cluster (the keys are laid out by their hash first)."""
    spark = keys.sparkSession
    distinct = keys.select("customer_key").distinct()
    laid_out = fitting_layout(distinct, distinct.count())
    return spark.createDataFrame(
        laid_out.rdd.zipWithIndex().map(lambda pair: (pair[0][0], int(pair[1]))),
        "customer_key STRING, user INT")


def fit_categories(strengths: DataFrame, conf: RecommendationsConfig, seed: int
                   ) -> tuple[ALSModel, DataFrame, list[str]]:
    """The ALS model of ``strengths``, its customer index and its categories (item i)."""
    categories = sorted(r[0] for r in strengths.select("category").distinct().collect())
    users = customer_index(strengths).persist()
    items = strengths.sparkSession.createDataFrame(
        list(enumerate(categories)), "item INT, category STRING")
    rows = strengths.join(users, "customer_key").join(F.broadcast(items), "category")
    rows = fitting_layout(rows, rows.count())  # the same blocks, so the same factors, anywhere
    als = ALS(rank=conf.rank, maxIter=conf.max_iter, regParam=conf.reg_param,
              alpha=conf.alpha, implicitPrefs=True, nonnegative=True, seed=seed,
              userCol="user", itemCol="item", ratingCol="strength", coldStartStrategy="drop")
    return als.fit(rows), users, categories


def ranked(strengths: DataFrame, k: int) -> DataFrame:
    """``customer_key``, ``categories``: each customer's own ``k`` strongest categories."""
    order = Window.partitionBy("customer_key").orderBy(F.desc("strength"), "category")
    return strengths.withColumn("_r", F.row_number().over(order)).where(F.col("_r") <= k) \
        .groupBy("customer_key").agg(F.sort_array(F.collect_list(F.struct("_r", "category")))
                                     .alias("_top")) \
        .select("customer_key", F.col("_top.category").alias("categories"))


def popular(strengths: DataFrame, k: int) -> list[str]:
    """The ``k`` categories with most customers' strength in all."""
    return [r[0] for r in strengths.groupBy("category").agg(F.sum("strength").alias("s"))
            .orderBy(F.desc("s"), "category").limit(k).collect()]


def recommended(customers: DataFrame, strengths: DataFrame, model: ALSModel | None,
                users: DataFrame | None, categories: list[str], k: int) -> DataFrame:
    """``customer_key``, ``categories`` (k), ``category_basis`` of every customer in
    ``customers``: their own strongest categories first, the rest by the ALS model's score
    (``als``); without a model fit, their own and then the most popular (``history``); with no
    interaction, the most popular (``popular``); none anywhere, none (``none``)."""
    pairs = strengths.withColumn("_als_rank", F.lit(None).cast("int"))
    if model is not None and users is not None:
        # one row per (customer, category) with its rank by the model
        scored = model.recommendForUserSubset(users, len(categories)).join(users, "user") \
            .select("customer_key", F.posexplode("recommendations").alias("_als_rank", "_r")) \
            .select("customer_key", "_als_rank", F.element_at(
                F.array(*[F.lit(c) for c in categories]), F.col("_r.item") + 1)
                .alias("category"))
        pairs = scored.join(strengths, ["customer_key", "category"], "full")
    order = Window.partitionBy("customer_key").orderBy(
        F.desc_nulls_last("strength"), F.asc_nulls_last("_als_rank"), "category")
    top = pairs.withColumn("_n", F.row_number().over(order)).where(F.col("_n") <= k) \
        .groupBy("customer_key").agg(
            F.sort_array(F.collect_list(F.struct("_n", "category"))).alias("_top"),
            F.max(F.col("_als_rank").isNotNull()).alias("_fitted"))
    fallback = F.array(*[F.lit(c) for c in popular(strengths, k)]).cast("array<string>")
    own = F.col("_top.category")
    # a customer not fitted with fewer than k categories of their own: the popular ones fill in
    filled = F.slice(F.array_distinct(F.concat(own, fallback)), 1, k)
    df = customers.select("customer_key").join(top, "customer_key", "left")
    return df.select(
        "customer_key",
        F.when(F.col("_fitted"), own).when(own.isNotNull(), filled).otherwise(fallback)
        .alias("categories"),
        F.when(F.col("_fitted"), "als").when(own.isNotNull(), "history")
        .when(F.size(fallback) > 0, "popular").otherwise("none").alias("category_basis"))


def next_categories(orders: DataFrame, lines: DataFrame, products: DataFrame, start: dt.date,
                    end: dt.date) -> DataFrame:
    """``customer_key``, ``category``: the categories of each customer's first order (not
    cancelled) on or after ``start`` and before ``end`` — what a recommendation made at
    ``start`` should have named."""
    window = orders.where(F.col("customer_key").isNotNull()
                          & (F.col("ordered_at") >= cutoff(start))
                          & (F.col("ordered_at") < cutoff(end)) & not_cancelled())
    first = window.withColumn("_r", F.row_number().over(
        Window.partitionBy("customer_key").orderBy("ordered_at", "order_id"))).where("_r = 1")
    return first.select("customer_key", "order_id").join(lines.select("order_id", "product_id"),
                                                        "order_id") \
        .join(products.select("product_id", "category"), "product_id") \
        .select("customer_key", "category").distinct()


def hit_rate(recs: DataFrame, actual: DataFrame) -> tuple[float, int]:
    """Share of the customers in ``actual`` whose next order holds a category of their
    ``categories`` (no recommendation: a miss), and how many customers."""
    hits = actual.join(recs.select("customer_key", "categories"), "customer_key", "left") \
        .groupBy("customer_key").agg(F.max(F.coalesce(
            F.array_contains("categories", F.col("category")), F.lit(False))).alias("hit"))
    row = hits.agg(F.avg(F.col("hit").cast("double")), F.count(F.lit(1))).first()
    return float(row[0] or 0.0), int(row[1])


def send_times(events: DataFrame, email_events: DataFrame, groups: DataFrame | None,
               customers: DataFrame, as_of: dt.date, conf: RecommendationsConfig,
               timezone: str) -> DataFrame:
    """``customer_key``, ``send_hour`` (0-23), ``send_weekday`` (1 = Monday), ``send_basis``
    (own, segment, everyone) of every customer in ``customers``; ``groups`` (customer_key,
    ``group``) gives the fallback's group."""
    sessions = events.where(F.col("customer_key").isNotNull()) \
        .groupBy("customer_key", "session_id").agg(F.min("event_ts").alias("ts")) \
        .select("customer_key", "ts", F.lit(1.0).alias("weight"))
    opens = email_events.where(F.col("customer_key").isNotNull()
                               & F.col("event").isin("open", "click")) \
        .select("customer_key", F.col("event_ts").alias("ts"),
                F.lit(conf.send_open_weight).alias("weight"))
    local = F.from_utc_timestamp("ts", timezone)
    seen = sessions.unionByName(opens).where(within(as_of, "ts", conf.window_days)).select(
        "customer_key", "weight", F.hour(local).alias("hour"),
        ((F.dayofweek(local) + 5) % 7 + 1).alias("weekday"))

    def best(df: DataFrame, by: str, column: str) -> DataFrame:
        sums = df.groupBy(by, column).agg(F.sum("weight").alias("_w"))
        return sums.groupBy(by).agg(F.max_by(column, F.struct("_w", F.lit(0) - F.col(column)))
                                    .alias(column), F.sum("_w").alias("_n"))

    own = best(seen, "customer_key", "hour").join(best(seen, "customer_key", "weekday")
                                                  .drop("_n"), "customer_key") \
        .where(F.col("_n") >= conf.send_min_observations).drop("_n")
    everyone = seen.withColumn("_all", F.lit(1))
    overall = best(everyone, "_all", "hour").join(best(everyone, "_all", "weekday").drop("_n"),
                                                  "_all").first()
    df = customers.select("customer_key").join(own, "customer_key", "left")
    basis = F.when(F.col("hour").isNotNull(), "own")
    if groups is not None:
        grouped = seen.join(groups, "customer_key")
        by_group = best(grouped, "group", "hour").join(best(grouped, "group", "weekday")
                                                       .drop("_n"), "group").drop("_n") \
            .withColumnRenamed("hour", "_g_hour").withColumnRenamed("weekday", "_g_weekday")
        df = df.join(groups, "customer_key", "left").join(by_group, "group", "left")
        basis = basis.when(F.col("_g_hour").isNotNull(), "segment")
        hour, weekday = F.coalesce("hour", "_g_hour"), F.coalesce("weekday", "_g_weekday")
    else:
        hour, weekday = F.col("hour"), F.col("weekday")
    if overall is not None:
        hour = F.coalesce(hour, F.lit(overall["hour"]))
        weekday = F.coalesce(weekday, F.lit(overall["weekday"]))
        basis = basis.otherwise("everyone")
    return df.select("customer_key", hour.cast("int").alias("send_hour"),
                     weekday.cast("int").alias("send_weekday"), basis.alias("send_basis"))
