"""Bots and outliers (gold.customer_flags): the signals on hand-made visitors, the robust z by
hand, the small world's injected cases found, flagged customers left out of fitting clusters
and flagged in exports."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil

import pytest
from pyspark.sql import functions as F

from seglake.behaviour import activity, silver_sources
from seglake.behaviour.flags import bot_flags, order_measures, outlier_flags, robust_z
from seglake.behaviour.inputs import SCHEMAS
from seglake.config import FlagsConfig
from seglake.declarations import CLUSTERS, FLAGS
from seglake.lakehouse import Lakehouse
from seglake.models import latest_model
from seglake.segments import run_segment
from seglake.segments.evaluation import archetype_ari, customer_archetypes
from seglake.truth import flagged_customers

AS_OF = dt.date(2025, 6, 1)
CONF = FlagsConfig()


def _events(spark, visitors: dict[str, list[tuple[str, str, float]]]):
    """Events of ``visitors``: key -> [(session, event_type, seconds after 2025-05-20)]."""
    start = dt.datetime(2025, 5, 20, 8)
    rows = [(f"{key}-{i}", "web", kind, start + dt.timedelta(seconds=at), None, None, session,
             None, "/", None, None, "desktop", 5, key)
            for key, events in visitors.items() for i, (session, kind, at) in enumerate(events)]
    return spark.createDataFrame(rows, SCHEMAS["events"] + ", customer_key STRING")


def test_bot_signals_on_hand_made_visitors(spark):
    person_kinds = ["page_view", "product_view", "search", "add_to_cart", "product_view"]
    visitors = {
        # a crawler: 40 category pages 10 s apart (jitter 0.3 s) in one session: all three
        "crawler": [("c1", "page_view", i * 10 + (0.3 if i % 2 else 0)) for i in range(40)],
        # an uptime monitor: 3 sessions of 12 home-page hits a minute apart; 12 events a
        # session is no volume, but clockwork with no product: two signals
        "monitor": [(f"m{s}", "page_view", s * 86_400 + i * 60) for s in range(3)
                    for i in range(12)],
        # a scraper of product pages: volume and regular, viewing products
        "scraper": [("x1", "product_view", i * 5.0) for i in range(30)],
        # a person: 30 events in one long session, gaps of 20-80 s, products viewed
        "person": [("p1", person_kinds[i % 5], sum(20 + (i * 37 % 61) for i in range(i)))
                   for i in range(30)],
        # regular and productless, but too few events to judge
        "short": [("s1", "page_view", i * 10.0) for i in range(10)],
        # a crawler whose visits are all older than the window
        "old": [("o1", "page_view", -100 * 86_400 + i * 10.0) for i in range(40)],
    }
    flags = {r["customer_key"]: r for r in bot_flags(_events(spark, visitors), AS_OF, CONF)
             .collect()}
    assert set(flags) == {"crawler", "monitor", "scraper"}
    assert flags["crawler"]["score"] == pytest.approx(1.0)
    assert flags["crawler"]["reason"].startswith("volume: 40.0 events per session; regular: "
                                                 "39 gaps of 10.0 s vary by 0.03; no_products")
    assert flags["monitor"]["score"] == pytest.approx(2 / 3)
    assert flags["monitor"]["reason"] == ("regular: 33 gaps of 60.0 s vary by 0.00; "
                                          "no_products: none among 36 events")
    assert flags["scraper"]["reason"].startswith("volume: 30.0 events per session; regular")
    # one signal is not enough; with the bar at one, the person's volume flags it
    one = bot_flags(_events(spark, {"person": visitors["person"]}), AS_OF,
                    CONF.model_copy(update={"bot_min_signals": 1})).collect()
    assert [r["reason"] for r in one] == ["volume: 30.0 events per session"]


def test_robust_z_by_hand(spark):
    values = [1.0, 1.0, 2.0, 2.0, 3.0, 4.0, 30.0]
    df = spark.createDataFrame([(f"c{i}", "m", v) for i, v in enumerate(values)],
                               "customer_key STRING, measure STRING, value DOUBLE")
    z = {r["customer_key"]: r for r in robust_z(df).collect()}
    logs = [math.log1p(v) for v in values]
    median = logs[3]  # log1p(2)
    mad = sorted(abs(x - median) for x in logs)[3]
    assert z["c6"]["z"] == pytest.approx((logs[6] - median) / (1.4826 * mad))
    assert z["c0"]["z"] == pytest.approx((logs[0] - median) / (1.4826 * mad))
    assert z["c6"]["median"] == pytest.approx(2.0)
    # more than half the values equal: the MAD is 0, the mean absolute deviation scales
    same = spark.createDataFrame([(f"c{i}", "m", v)
                                  for i, v in enumerate([1.0, 1.0, 1.0, 1.0, 9.0])],
                                 "customer_key STRING, measure STRING, value DOUBLE")
    z = {r["customer_key"]: r["z"] for r in robust_z(same).collect()}
    mean_ad = (math.log1p(9) - math.log1p(1)) / 5
    assert z["c4"] == pytest.approx((math.log1p(9) - math.log1p(1)) / (1.2533 * mean_ad))
    assert z["c0"] == pytest.approx(0.0)


def test_outliers_need_both_a_robust_z_and_a_multiple_of_the_median(spark):
    orders, lines = [], []
    # 36 buyers of 1 unit, 4 of 2, one of 4 units (robust z over 5 but 4x the median: not
    # an outlier), a bulk buyer of 60 units, and a cancelled bulk order that does not count
    for i in range(42):
        key, order = f"c{i}", f"o{i}"
        units = 60 if i == 40 else 4 if i == 41 else 2 if i >= 36 else 1
        orders.append((order, None, None, dt.datetime(2025, 5, 1), "completed", 40.0 * units,
                       None, key))
        lines.append((order, 1, "p", units, 40.0))
    orders.append(("o99", None, None, dt.datetime(2025, 5, 2), "cancelled", 4000.0, None, "c0"))
    lines.append(("o99", 1, "p", 100, 40.0))
    orders_df = spark.createDataFrame(orders, SCHEMAS["orders"] + ", customer_key STRING")
    lines_df = spark.createDataFrame(lines, "order_id STRING, line_no INT, product_id STRING, "
                                            "quantity INT, unit_price DOUBLE")
    flagged = outlier_flags(orders_df, lines_df, AS_OF, CONF).collect()
    assert [r["customer_key"] for r in flagged] == ["c40"]
    reason = flagged[0]["reason"]
    assert reason.startswith("order_value 2400.0 (60.0x the median 40.0, robust z ")
    assert "; units_per_line 60.0 (60.0x the median 1.0" in reason
    # the 4-unit buyer is far out by z alone
    measures = order_measures(orders_df, lines_df, AS_OF)
    z = {(r["customer_key"], r["measure"]): r["z"] for r in robust_z(measures).collect()}
    assert z[("c41", "units_per_line")] >= CONF.outlier_z
    assert z[("c41", "order_value")] >= CONF.outlier_z
    # without order lines only the order value is judged: the bulk buyer still stands out
    alone = outlier_flags(orders_df, None, AS_OF, CONF).collect()
    assert [(r["customer_key"], r["reason"].split()[0]) for r in alone] == \
        [("c40", "order_value")]


def _truth(spark, config, as_of):
    lake = Lakehouse.from_config(spark, config)
    act = activity(silver_sources(lake), as_of)
    window = act.events.where(F.col("event_ts") >= F.lit(
        as_of - dt.timedelta(days=config.flags.window_days)))
    buyers = act.orders.select("customer_key").distinct()
    truth = flagged_customers(spark, lake.read("silver.events"), window,
                              lake.read("silver.identity_map"), config.truth.root)
    # an outlier can only show in what it bought before as_of
    return truth.join(buyers.withColumn("_bought", F.lit(True)), "customer_key", "left") \
        .where((F.col("flag") == "bot") | F.col("_bought")).select("customer_key", "flag")


def test_small_world_bots_and_outliers_are_found(spark, config, featured):
    lake = Lakehouse.from_config(spark, config)
    flags = lake.read(FLAGS).where(F.col("as_of") == featured.as_of) \
        .select("customer_key", "flag")
    truth = _truth(spark, config, featured.as_of)
    for flag in ("bot", "outlier"):
        found = {r[0] for r in flags.where(F.col("flag") == flag).collect()}
        true = {r[0] for r in truth.where(F.col("flag") == flag).collect()}
        hits = len(found & true)
        precision, recall = hits / max(len(found), 1), hits / max(len(true), 1)
        print(f"{flag}: {len(true)} injected, {len(found)} flagged, precision "
              f"{precision:.3f}, recall {recall:.3f}")
        assert len(true) >= 5, flag
        assert precision >= 0.9 and recall >= 0.9, (flag, found ^ true)


def test_flagged_customers_are_not_fitted_on_and_clusters_hold(spark, config, segmented,
                                                             published, tmp_path):
    lake = Lakehouse.from_config(spark, config)
    as_of, c = segmented.as_of, segmented.clusters
    flagged = lake.read(FLAGS).where(F.col("as_of") == as_of)
    clustered = lake.read(CLUSTERS).where(F.col("as_of") == as_of)
    left_out = clustered.join(flagged.select("customer_key").distinct(), "customer_key").count()
    assert left_out >= 5  # the outliers are customers, so clustered (assigned)
    model = latest_model(lake, "clustering")
    metrics = json.loads(model["metrics"])
    assert metrics["fitted_on"] == metrics["customers"] - left_out
    archetypes = customer_archetypes(spark, lake.read("silver.identity_map"), config.truth.root)
    kept = archetype_ari(clustered.select("customer_key", "cluster"), archetypes)
    # the same clustering fitted on everyone, on a copy of the lakehouse
    shutil.copytree(config.lakehouse.root, tmp_path / "lakehouse")
    shutil.copytree(config.truth.root, tmp_path / "truth")
    copy = config.model_copy(update={
        "lakehouse": config.lakehouse.model_copy(update={"root": str(tmp_path / "lakehouse")}),
        "flags": config.flags.model_copy(update={"exclude_from_models": False}),
        "clustering": config.clustering.model_copy(update={
            "k_min": c.k, "k_max": c.k, "bootstrap_runs": 0})})
    run_segment(spark, copy, as_of=as_of)
    everyone = Lakehouse.from_config(spark, copy).read(CLUSTERS).where(
        F.col("as_of") == as_of)
    everyone = everyone.where(F.col("model_version") == everyone.agg(
        F.max("model_version")).first()[0])
    fitted_all = archetype_ari(everyone.select("customer_key", "cluster"), archetypes)
    print(f"archetype ARI: {kept:.3f} fitted without the flagged, {fitted_all:.3f} with")
    assert kept >= fitted_all - 0.01
    # exports say which exported customers are flagged
    exports = spark.read.parquet(f"{published.export_root}/rule/parquet")
    assert "flag" in exports.columns
    exported_flags = {r[0] for r in exports.select("flag").distinct().collect()}
    assert exported_flags <= {None, "outlier", "bot", "bot,outlier"}
