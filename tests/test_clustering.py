"""Clusters: the adjusted Rand index, centroid matching and names on hand-made inputs; the
stage on the small world (every customer once, profiles that add up, a persisted model that
reproduces the assignment, archetypes recovered better than chance, stable ids on a re-run)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError
from pyspark.ml import PipelineModel
from pyspark.sql import functions as F

from seglake.config import ClusteringConfig, SeglakeConfig
from seglake.declarations import CLUSTERS, FEATURES, PROFILES
from seglake.lakehouse import Lakehouse
from seglake.models import latest_model
from seglake.segments import SegmentError, checked_rules, run_segment
from seglake.segments.clustering import (
    RAW,
    adjusted_rand_index,
    bootstrap_ari,
    cluster_name,
    cluster_names,
    driver_kmeans,
    matched_ids,
    pair_agreement,
    relabelled,
    silhouette,
)
from seglake.segments.evaluation import archetype_ari, customer_archetypes

# archetype recovery on the small world 30 days before its end (60 days of data) with the
# default inputs: 0.22 measured (k = 7 kept by silhouette); a random labelling scores about 0.
# (0.63 on a 4,000-person 365-day world: bench/segments_bench.py)
MIN_ARCHETYPE_ARI = 0.15


@pytest.mark.parametrize("a, b, expected", [
    ([0, 0, 1, 1], [0, 0, 1, 2], 4 / 7),     # worked out in the module's formula
    ([0, 0, 1, 1], [5, 5, 3, 3], 1.0),       # a relabelling is the same partition
    ([0, 0, 1, 1], [0, 1, 0, 1], -0.5),      # worse than chance
])
def test_adjusted_rand_index_on_known_partitions(spark, a, b, expected):
    df = spark.createDataFrame(list(zip(a, b, strict=True)), "a INT, b INT")
    assert adjusted_rand_index(df, "a", "b") == pytest.approx(expected)
    assert pair_agreement(np.array(a), np.array(b)) == pytest.approx(expected)  # the driver's


def test_driver_k_search_finds_blobs_and_scores_as_spark_does(spark):
    from pyspark.ml.evaluation import ClusteringEvaluator
    from pyspark.ml.linalg import Vectors

    rng = np.random.default_rng(7)
    middles = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 1.0], [0.0, 6.0, -1.0]])
    truth = np.repeat(np.arange(3), [200, 120, 80])
    x = middles[truth] + rng.normal(scale=0.8, size=(len(truth), 3))
    labels, cost = driver_kmeans(x, 3, seed=1, max_iter=50)
    # the three blobs found: each found cluster is one blob
    assert len({(t, f) for t, f in zip(truth, labels, strict=True)}) == 3
    assert cost == pytest.approx(sum(((x[labels == j] - x[labels == j].mean(axis=0)) ** 2).sum()
                                     for j in range(3)))
    # the silhouette Spark's evaluator gives the same labelling (k = 3 and a worse k = 5)
    for k in (3, 5):
        found, _ = driver_kmeans(x, k, seed=2, max_iter=50)
        df = spark.createDataFrame([(Vectors.dense(v.tolist()), int(c))
                                    for v, c in zip(x, found, strict=True)], ["vector", "c"])
        expected = ClusteringEvaluator(featuresCol="vector", predictionCol="c").evaluate(df)
        assert silhouette(x, found) == pytest.approx(expected, abs=1e-9)
    assert silhouette(x, labels) > silhouette(x, driver_kmeans(x, 5, 2, 50)[0])
    # refits on bootstrap samples find the same three blobs; five clusters cut into one
    # round cloud are not stable
    conf = ClusteringConfig(bootstrap_runs=3, seed=3)
    assert all(a > 0.95 for a in bootstrap_ari(x, labels, conf, 3))
    cloud = rng.normal(size=(400, 3))
    unstable = bootstrap_ari(cloud, driver_kmeans(cloud, 5, 1, 50)[0], conf, 5)
    assert len(unstable) == 3 and min(unstable) < 0.9


def test_matched_ids_follow_the_nearest_previous_centroid():
    previous = {0: np.array([0.0, 0.0]), 1: np.array([5.0, 0.0]), 2: np.array([0.0, 5.0])}
    current = np.array([[0.2, 4.9], [0.1, -0.1], [5.1, 0.2], [9.0, 9.0]])  # + a new cluster
    assert matched_ids(current, previous) == [2, 0, 1, 3]
    assert matched_ids(current[:2], previous) == [2, 0]          # a cluster gone: ids kept
    assert matched_ids(current[:2], {}) == [0, 1]


def test_relabelled_maps_raw_indices_to_stable_ids(spark):
    df = spark.createDataFrame([(0,), (1,), (2,)], f"{RAW} INT")
    assert [r[0] for r in df.select(relabelled(RAW, [7, 3, 5])).collect()] == [7, 3, 5]


def test_cluster_names_read_the_strongest_traits_and_stay_distinct():
    assert cluster_name({"monetary_365d": 1.8, "frequency_90d": 1.2, "coupon_share": -0.5},
                        0.4) == "high-value, frequent buyers"
    assert cluster_name({"tenure_days": -2.0, "my_feature": 0.9}, 0.4) == "new, high my_feature"
    assert cluster_name({"monetary_365d": 0.1}, 0.4) == "average"
    same = [{"cluster": 0, "z": {"sessions_90d": 1.5, "orders_per_session": -1.0,
                                 "coupon_share": 0.6}},
            {"cluster": 1, "z": {"sessions_90d": 1.4, "orders_per_session": -0.9,
                                 "coupon_share": -0.5}},
            {"cluster": 2, "z": {"monetary_365d": 0.1}},
            {"cluster": 3, "z": {"avg_basket": 0.2}}]
    names = cluster_names(same, 0.4)
    assert names[0] == "heavy browsers, browsing without buying, discount-driven"
    assert names[1] == "heavy browsers, browsing without buying, full-price"
    assert names[2] == "average" and names[3] == "average (3)"


def test_clustering_config_is_checked_before_spark(tmp_path):
    with pytest.raises(ValidationError, match="k_min"):
        ClusteringConfig(k_min=6, k_max=4)
    with pytest.raises(ValidationError, match="log_features"):
        ClusteringConfig(features={"a": "sessions_90d"}, log_features=["b"])
    cfg = SeglakeConfig.model_validate({"clustering": {
        "features": {"spend": "monetary_365d", "bad": "sesions_90d / 2"}, "log_features": []}})
    with pytest.raises(SegmentError, match=r"clustering.features.bad.*sesions_90d.*sessions_90d"):
        checked_rules(cfg)


def test_cluster_stage_on_the_small_world(spark, config, world, segmented):
    lake = Lakehouse.from_config(spark, config)
    c, as_of = segmented.clusters, segmented.as_of
    conf = config.clustering
    features = lake.read(FEATURES).where((F.col("as_of") == as_of) & ~F.col("is_anonymous"))
    out = lake.read(CLUSTERS).where((F.col("as_of") == as_of)
                                    & (F.col("model_version") == c.model_version))
    n = features.count()
    # every known customer exactly once, in one of k clusters with ids by size on a first run
    assert out.count() == n == out.select("customer_key").distinct().count()
    assert out.join(features, "customer_key", "left_anti").count() == 0
    assert sorted(c.names) == list(range(c.k))
    sizes = [c.sizes[i] for i in range(c.k)]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == n
    assert {r["cluster"]: r["count"] for r in out.groupBy("cluster").count().collect()} \
        == c.sizes
    # k by silhouette over the configured range
    assert [s.k for s in c.k_scores] == list(range(conf.k_min, conf.k_max + 1))
    assert c.k == max(c.k_scores, key=lambda s: s.silhouette).k
    # mixture probabilities per cluster id sum to 1; PCA coordinates everywhere
    checked = out.select(
        F.aggregate(F.map_values("probabilities"), F.lit(0.0), lambda a, x: a + x).alias("p"),
        F.array_sort(F.map_keys("probabilities")).alias("ids"), "pca_x", "pca_y")
    assert checked.where(F.abs(F.col("p") - 1) > 1e-6).count() == 0
    assert checked.where(F.col("ids") != F.array(*[F.lit(i) for i in range(c.k)])).count() == 0
    assert checked.where(F.col("pca_x").isNull() | F.col("pca_y").isNull()).count() == 0
    # profiles add up and name each cluster distinctly
    profiles = lake.read(PROFILES).where(F.col("as_of") == as_of).collect()
    assert {p["cluster"]: p["customers"] for p in profiles} == c.sizes
    assert sum(p["revenue_share"] for p in profiles) == pytest.approx(1.0)
    revenue = {r["cluster"]: r["revenue"] for r in out.join(features, "customer_key")
               .groupBy("cluster").agg(F.sum("monetary_365d").alias("revenue")).collect()}
    for p in profiles:
        assert p["revenue"] == pytest.approx(revenue[p["cluster"]] or 0.0)
        assert set(p["z"]) == set(conf.features)
    assert len({p["cluster_name"] for p in profiles}) == c.k
    # the recorded, persisted pipeline reproduces the written assignment
    model = latest_model(lake, "clustering")
    assert model["version"] == c.model_version
    metrics, artifact = json.loads(model["metrics"]), json.loads(model["artifact"])
    assert metrics["k"] == c.k and len(metrics["k_scores"]) == len(c.k_scores)
    assert json.loads(model["data_versions"]) == {FEATURES: lake.version(FEATURES)}
    assert len(metrics["bootstrap_ari"]) == conf.bootstrap_runs
    assert all(-1 <= a <= 1 for a in metrics["bootstrap_ari"])
    from seglake.segments.clustering import inputs

    again = PipelineModel.load(artifact["pipeline"]).transform(
        inputs(lake.read(FEATURES).where((F.col("as_of") == as_of) & ~F.col("is_anonymous")),
               conf)).select("customer_key", relabelled(RAW, artifact["ids"]).alias("again"))
    assert out.join(again, "customer_key").where(F.col("cluster") != F.col("again")).count() == 0
    # the latent archetypes are recovered better than chance
    archetypes = customer_archetypes(spark, lake.read("silver.identity_map"),
                                     config.truth.root)
    assert archetype_ari(out, archetypes) >= MIN_ARCHETYPE_ARI


def test_cluster_rerun_keeps_ids_and_records_stability(spark, config, segmented):
    c, as_of = segmented.clusters, segmented.as_of
    lake = Lakehouse.from_config(spark, config)
    before = lake.read(CLUSTERS).where(F.col("as_of") == as_of) \
        .select("customer_key", F.col("cluster").alias("before")).collect()
    quick = config.model_copy(update={"clustering": config.clustering.model_copy(
        update={"k_min": c.k, "k_max": c.k, "bootstrap_runs": 0})})
    again = run_segment(spark, quick, as_of=as_of).clusters
    assert again.model_version == c.model_version + 1
    assert again.stability_ari == pytest.approx(1.0)
    assert json.loads(latest_model(lake, "clustering")["metrics"])["previous_version"] \
        == c.model_version
    after = lake.read(CLUSTERS).where(F.col("as_of") == as_of)
    assert after.count() == len(before)  # the date's rows replaced, not added
    moved = after.join(spark.createDataFrame(before), "customer_key") \
        .where(F.col("cluster") != F.col("before"))
    assert moved.count() == 0
