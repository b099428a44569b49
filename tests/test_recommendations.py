"""Next best category and send time (gold.customer_recommendations): interaction strengths by
hand, own categories before the model's, the first order after a date, send times in local
time with their fallbacks, and on the small world: beating the most popular categories on the
month the model did not see, send times where the demo's people open and visit, exports."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pyspark.sql import functions as F

from seglake.behaviour.inputs import SCHEMAS
from seglake.config import RecommendationsConfig
from seglake.declarations import FEATURES, RECOMMENDATIONS
from seglake.lakehouse import Lakehouse
from seglake.models import latest_model
from seglake.scoring import recommend as rec

AS_OF = dt.date(2025, 6, 1)
CONF = RecommendationsConfig()


def _events(spark, rows):
    """rows: (customer, session, event_type, category, UTC time)."""
    return spark.createDataFrame(
        [(f"e{i}", "web", kind, dt.datetime.fromisoformat(at), None, None, session, None, "/",
          None, category, "desktop", 5, key)
         for i, (key, session, kind, category, at) in enumerate(rows)],
        SCHEMAS["events"] + ", customer_key STRING")


def _orders(spark, rows):
    """rows: (order, customer, status, UTC time)."""
    return spark.createDataFrame(
        [(order, None, None, dt.datetime.fromisoformat(at), status, 10.0, None, key)
         for order, key, status, at in rows], SCHEMAS["orders"] + ", customer_key STRING")


def test_interaction_strengths_by_hand(spark):
    events = _events(spark, [
        ("a", "s1", "product_view", "mode", "2025-05-31 10:00"),   # 1 day before: 1 x 0.5^(1/60)
        ("a", "s1", "add_to_cart", "mode", "2025-04-02 10:00"),    # 60 days: 2 x 0.5
        ("a", "s1", "page_view", "sport", "2025-05-31 10:00"),     # browse 0.5 x 0.5^(1/60)
        ("a", "s1", "checkout_start", None, "2025-05-31 10:00"),   # no category: nothing
        ("a", "s1", "product_view", "sport", "2025-06-01 10:00"),  # at as_of: not yet
        ("a", "s1", "product_view", "sport", "2024-05-01 10:00"),  # outside the 365-day window
    ])
    orders = _orders(spark, [("o1", "a", "completed", "2025-04-02 09:00"),
                             ("o2", "a", "cancelled", "2025-05-30 09:00")])
    lines = spark.createDataFrame([("o1", "p1"), ("o1", "p2"), ("o2", "p1")],
                                  "order_id STRING, product_id STRING")
    products = spark.createDataFrame([("p1", "mode"), ("p2", "enfant")],
                                     "product_id STRING, category STRING")
    got = {r["category"]: r["strength"] for r in
           rec.interactions(events, orders, lines, products, AS_OF, CONF).collect()}
    day = 0.5 ** (1 / 60)
    assert got == pytest.approx({"mode": 1 * day + 2 * 0.5 + 3 * 0.5, "sport": 0.5 * day,
                                 "enfant": 3 * 0.5})


def test_own_categories_come_first_then_the_model_then_the_popular(spark):
    strengths = spark.createDataFrame([
        *[(f"c{i}", cat, 1.0) for i in range(20) for cat in ("mode", "sport")],
        *[(f"d{i}", cat, 1.0) for i in range(20) for cat in ("mode", "sport", "enfant")],
        ("solo", "enfant", 5.0), ("solo", "mode", 1.0),
        ("flagged", "beaute", 9.0)], "customer_key STRING, category STRING, strength DOUBLE")
    fit_on = strengths.where("customer_key != 'flagged'")
    model, users, categories = rec.fit_categories(fit_on, CONF, 42)
    assert categories == ["enfant", "mode", "sport"]
    customers = spark.createDataFrame([("solo",), ("flagged",), ("nobody",)], "customer_key "
                                                                              "STRING")
    got = {r["customer_key"]: (r["categories"], r["category_basis"]) for r in
           rec.recommended(customers, strengths, model, users, categories, 3).collect()}
    # solo's own two by strength, then the one category it never touched
    assert got["solo"] == (["enfant", "mode", "sport"], "als")
    # not fitted: its own, then the most popular (by summed strength: mode 41, sport 40)
    assert got["flagged"] == (["beaute", "mode", "sport"], "history")
    assert got["nobody"] == (["mode", "sport", "enfant"], "popular")


def test_next_categories_are_those_of_the_first_order_after_the_date(spark):
    orders = _orders(spark, [("o1", "a", "completed", "2025-05-20 10:00"),   # before
                             ("o2", "a", "cancelled", "2025-06-02 10:00"),   # cancelled
                             ("o3", "a", "completed", "2025-06-03 10:00"),   # the first
                             ("o4", "a", "completed", "2025-06-04 10:00"),   # later
                             ("o5", "b", "returned", "2025-06-10 10:00")])
    lines = spark.createDataFrame([("o1", "p1"), ("o2", "p2"), ("o3", "p3"), ("o3", "p1"),
                                   ("o4", "p2"), ("o5", "p2")],
                                  "order_id STRING, product_id STRING")
    products = spark.createDataFrame([("p1", "mode"), ("p2", "sport"), ("p3", "enfant")],
                                     "product_id STRING, category STRING")
    got = rec.next_categories(orders, lines, products, AS_OF, dt.date(2025, 7, 1)).collect()
    assert sorted((r[0], r[1]) for r in got) == [("a", "enfant"), ("a", "mode"), ("b", "sport")]
    recs = spark.createDataFrame([("a", ["mode"]), ("b", ["enfant"])],
                                 "customer_key STRING, categories ARRAY<STRING>")
    nxt = rec.next_categories(orders, lines, products, AS_OF, dt.date(2025, 7, 1))
    assert rec.hit_rate(recs, nxt) == (0.5, 2)


def test_send_times_in_local_time_with_fallbacks(spark):
    # Paris is UTC+2 in May: opens at 08:xx UTC are 10:xx local; Thursday 2025-05-29
    events = _events(spark, [
        ("a", f"s{i}", "page_view", None, f"2025-05-{20 + i} 18:30") for i in range(2)])
    emails = spark.createDataFrame(
        [(f"m{i}", "c1", "h", "open", dt.datetime(2025, 5, 29, 8, 5 + i), "a") for i in range(3)]
        + [("m9", "c1", "h", "open", dt.datetime(2025, 5, 28, 17, 0), "b")],
        SCHEMAS["email_events"] + ", customer_key STRING")
    customers = spark.createDataFrame([("a",), ("b",), ("c",)], "customer_key STRING")
    groups = spark.createDataFrame([("a", "g1"), ("b", "g1"), ("c", "g2")],
                                   "customer_key STRING, group STRING")
    got = {r["customer_key"]: (r["send_hour"], r["send_weekday"], r["send_basis"]) for r in
           rec.send_times(events, emails, groups, customers, AS_OF, CONF, "Europe/Paris")
           .collect()}
    # a: 3 opens (weight 2 each) at 10h on Thursday, 2 visits at 20h: 8 >= 5, own
    assert got["a"] == (10, 4, "own")
    # b: one open (weight 2 < 5): its segment's (g1 pools a and b: 10h, Thursday)
    assert got["b"] == (10, 4, "segment")
    # c: its segment has nobody seen: everyone's
    assert got["c"] == (10, 4, "everyone")


def test_small_world_recommendations(spark, config, scored, published):
    lake = Lakehouse.from_config(spark, config)
    as_of = scored.as_of
    model = latest_model(lake, "recommendation")
    metrics = json.loads(model["metrics"])
    print(f"next categories as of {metrics['trained_as_of']}: hit rate at {metrics['top_k']} "
          f"{metrics['hit_rate']:.3f} on {metrics['judged']} customers; own history "
          f"{metrics['hit_rate_history']:.3f}, most popular {metrics['hit_rate_popular']:.3f}")
    assert metrics["judged"] >= 100
    assert metrics["hit_rate"] >= metrics["hit_rate_popular"] + 0.15
    assert metrics["hit_rate"] >= metrics["hit_rate_history"] - 0.01
    recs = lake.read(RECOMMENDATIONS).where(F.col("as_of") == as_of)
    known = lake.read(FEATURES).where((F.col("as_of") == as_of) & ~F.col("is_anonymous"))
    assert recs.count() == known.count()
    assert recs.join(known, "customer_key", "left_anti").count() == 0
    assert recs.where(F.size("categories") != metrics["top_k"]).count() == 0
    # the demo sends campaigns at 10:00 on one weekday and people open within hours: customers
    # with their own send time mostly get the morning after a send and that weekday
    own = recs.where(F.col("send_basis") == "own")
    n = own.count()
    morning = own.where(F.col("send_hour").between(10, 14)).count() / n
    weekday = own.groupBy("send_weekday").count().orderBy(F.desc("count")).first()
    print(f"send times: {n} own, {morning:.2f} at 10-14h, {weekday['count'] / n:.2f} on "
          f"weekday {weekday['send_weekday']}")
    assert n > 0.4 * recs.count() and morning > 0.45 and weekday["count"] / n > 0.5
    # exports carry them
    exports = spark.read.parquet(f"{published.export_root}/rule/parquet")
    assert {"next_categories", "send_hour", "send_weekday"} <= set(exports.columns)
    assert exports.where(F.col("next_categories").isNull()).count() == 0


def test_no_category_anywhere_gives_send_times_only(spark):
    strengths = spark.createDataFrame([], "customer_key STRING, category STRING, "
                                          "strength DOUBLE")
    customers = spark.createDataFrame([("a",)], "customer_key STRING")
    got = rec.recommended(customers, strengths, None, None, [], 3).collect()
    assert [(r["categories"], r["category_basis"]) for r in got] == [([], "none")]
