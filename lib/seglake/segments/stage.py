"""``seglake segment``: ``gold.customer_features`` at one ``as_of`` -> ``gold.rule_segments``,
then (``clustering.enabled``) ``gold.customer_clusters`` and ``gold.cluster_profiles``.

The rules file and the clustering inputs are checked against the feature catalogue (and, with
the table's schema, rules for being true/false) before any data is read. Each run replaces the
rows of its ``as_of`` in one commit per table. The fitted clustering pipeline is saved under
``<lakehouse>/_models/clustering/v<version>`` and recorded in ``ops.models``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from pyspark.ml import Pipeline
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from seglake.behaviour import feature_catalogue
from seglake.config import SeglakeConfig
from seglake.declarations import CLUSTERS, FEATURES, PROFILES, RULE_SEGMENTS, declared
from seglake.lakehouse import Lakehouse
from seglake.models import (
    fit_sample,
    fitting_layout,
    informative_columns,
    latest_version,
    model_path,
    record_model,
    unflagged,
)
from seglake.runlog import RunLog
from seglake.segments import clustering as cl
from seglake.segments.rules import (
    RuleError,
    RuleSet,
    check_boolean,
    check_rules,
    load_rules,
    rule_columns,
    rule_segments,
)

log = logging.getLogger(__name__)

MODEL_KIND = "clustering"


class SegmentError(RuntimeError):
    """Segments cannot be assigned: missing features, bad rules."""


@dataclass
class SegmentResult:
    run_id: str
    as_of: dt.date
    rows: int
    segments: dict[str, int]
    tags: dict[str, int]
    seconds: float
    clusters: ClusterResult | None = None


@dataclass
class ClusterResult:
    model_version: int
    k: int
    k_scores: list[cl.KScore]
    names: dict[int, str]
    sizes: dict[int, int]
    stability_ari: float | None
    bootstrap_ari: list[float] = field(default_factory=list)
    artifact: str = ""


def checked_rules(config: SeglakeConfig) -> RuleSet:
    """The rules file, loaded and checked against the feature catalogue (no Spark needed)."""
    try:
        rules = load_rules(config.segments.rules_file)
        catalogue = feature_catalogue(config.features)
        check_rules(rules, catalogue)
        if config.clustering.enabled:
            for name, text in config.clustering.features.items():
                rule_columns(f"clustering.features.{name}", text, catalogue)
    except RuleError as exc:
        raise SegmentError(str(exc)) from None
    return rules


def blind_rules(features: DataFrame, rules: RuleSet, catalogue: list) -> dict[str, list[str]]:
    """Rules (by name) reading feature columns that are null for every row of ``features``."""
    used = check_rules(rules, catalogue)
    columns = sorted({c for cs in used.values() for c in cs})
    if not columns:
        return {}
    counts = features.select([F.count(c).alias(c) for c in columns]).first().asDict()
    empty = {c for c, n in counts.items() if not n}
    return {name: [c for c in cs if c in empty] for name, cs in used.items()
            if empty & set(cs)}


def run_segment(spark: SparkSession, config: SeglakeConfig, as_of: dt.date | None = None,
                runlog: RunLog | None = None) -> SegmentResult:
    """Assign every customer of the features at ``as_of`` (default: the latest) its rule
    segment and tags, and write them."""
    started = time.monotonic()
    rules = checked_rules(config)
    lakehouse = Lakehouse.from_config(spark, config)
    if not lakehouse.exists(FEATURES):
        raise SegmentError(f"{FEATURES} does not exist: run `seglake features` first")
    features = lakehouse.read(FEATURES)
    try:
        check_boolean(features, rules)
    except RuleError as exc:
        raise SegmentError(str(exc)) from None
    if as_of is None:
        as_of = features.agg(F.max("as_of")).first()[0]
    features = features.where(F.col("as_of") == F.lit(as_of))
    runlog = runlog or RunLog(lakehouse, "segment")
    blind = blind_rules(features, rules, feature_catalogue(config.features))
    for rule, columns in blind.items():
        log.warning("segment: rule %s reads %s, null for every customer as of %s (a data "
                    "family the sources do not send?): it matches on the other columns only",
                    rule, ", ".join(columns), as_of)
    out = rule_segments(features, rules).withColumn("run_id", F.lit(runlog.run_id)).persist()
    segments = {r["rule_segment"]: r["count"] for r in
                out.groupBy("rule_segment").count().collect()}
    rows = sum(segments.values())
    if rows == 0:
        raise SegmentError(f"{FEATURES} has no rows as of {as_of}: run "
                           f"`seglake features --as-of {as_of}` first")
    tags = {r["tag"]: r["count"] for r in
            out.select(F.explode("tags").alias("tag")).groupBy("tag").count().collect()}
    log.info("segment: %d customers as of %s in %d segments, %d tag memberships", rows, as_of,
             len(segments), sum(tags.values()))
    lakehouse.overwrite_as_of(RULE_SEGMENTS, out, as_of)
    runlog.record(source=FEATURES, table=RULE_SEGMENTS, rows_in=rows, rows_out=rows,
                  message=f"as_of {as_of}: " + ", ".join(
                      f"{name} {n}" for name, n in sorted(segments.items()))
                  + "".join(f"; rule {r} reads only-null {', '.join(c)}"
                            for r, c in blind.items()))
    out.unpersist()
    clusters = None
    if config.clustering.enabled:
        clusters = run_clusters(lakehouse, config, features, as_of, runlog)
    runlog.flush()
    return SegmentResult(runlog.run_id, as_of, rows, segments, tags,
                         time.monotonic() - started, clusters)


def run_clusters(lakehouse: Lakehouse, config: SeglakeConfig, features: DataFrame, as_of: dt.date,
                 runlog: RunLog) -> ClusterResult:
    """Fit, name and write the clusters of ``features`` (one ``as_of``); see the module doc."""
    started = time.monotonic()
    conf = config.clustering
    if not conf.include_anonymous:
        features = features.where(~F.col("is_anonymous"))
    frame = cl.inputs(features, conf)
    n = frame.count()
    frame = fitting_layout(frame, n).persist()
    if n < conf.k_max * 2:
        raise SegmentError(f"clustering needs at least {conf.k_max * 2} customers "
                           f"(2 x clustering.k_max) as of {as_of}; found {n}")
    kept, dropped = informative_columns(frame, list(conf.features))
    if not kept:
        raise SegmentError(f"no clustering input varies as of {as_of} (all null or constant: "
                           f"{', '.join(dropped)}); see clustering.features")
    if dropped:
        log.warning("segment: clustering inputs %s are null or constant as of %s: left out",
                    dropped, as_of)
        conf = conf.model_copy(update={
            "features": {n: e for n, e in conf.features.items() if n in kept},
            "log_features": [n for n in conf.log_features if n in kept]})
    # the k search, the models and the bootstrap refits see at most fit_sample customers;
    # everyone is assigned
    # everyone is assigned; bots and outliers (gold.customer_flags) are not fitted on
    eligible = unflagged(frame, lakehouse, config.flags, as_of)
    eligible_n = eligible.count() if eligible is not frame else n
    fit = fit_sample(eligible, eligible_n, conf.fit_sample, conf.seed)
    prep = Pipeline(stages=cl.preprocessing(conf)).fit(fit)
    vectors = prep.transform(fit).select("customer_key", cl.VECTOR).persist()
    fitted_on = vectors.count()
    if fitted_on < n:
        log.info("segment: clusters fitted on %d of %d customers (%d flagged left out; "
                 "clustering.fit_sample %d)", fitted_on, n, n - eligible_n, conf.fit_sample)
    keys, x = cl.sample_vectors(vectors)
    scores = cl.k_scores(x, conf)
    chosen = cl.best_k(scores)
    k = chosen.k
    log.info("segment: k chosen %d of %s by silhouette (%s) (%.1f s)", k,
             [s.k for s in scores], ", ".join(f"{s.silhouette:.3f}" for s in scores),
             time.monotonic() - started)
    best = cl.best_fit(vectors, conf, k)
    # the kept model's assignment of the sample (collected: bounded), for its silhouette and
    # the bootstrap refits, both on the driver
    kept_labels = dict(best.transform(vectors).select("customer_key", cl.RAW).collect())
    kept = np.array([kept_labels[key] for key in keys])
    kept_silhouette = cl.silhouette(x, kept)
    model = cl.kept_pipeline(prep, best, vectors)
    scored = model.transform(frame).persist()
    current = cl.centers(model)

    previous, previous_version = _previous_assignments(lakehouse)
    if previous is not None:
        joined = previous.join(scored.select("customer_key", cl.VECTOR), "customer_key")
        ids = cl.matched_ids(current, cl.centroids(joined, "cluster"))
    else:  # first run: ids by size, largest first
        sizes = {r[cl.RAW]: r["count"] for r in scored.groupBy(cl.RAW).count().collect()}
        order = sorted(range(k), key=lambda i: (-sizes.get(i, 0), i))
        ids = [order.index(i) for i in range(k)]
    gmm = cl.mixture(vectors, conf, k)
    assigned = gmm.transform(scored).withColumn("cluster", cl.relabelled(cl.RAW, ids)) \
        .withColumn("probabilities", cl.mixture_probabilities(gmm, current, ids)).persist()
    stability = (cl.adjusted_rand_index(
        previous.withColumnRenamed("cluster", "_previous").join(assigned, "customer_key"),
        "_previous", "cluster") if previous is not None else None)
    boot = cl.bootstrap_ari(x, kept, conf, k)
    profiles = cl.profiles(assigned, list(conf.features))
    names = cl.cluster_names(profiles, conf.name_threshold)

    version = latest_version(lakehouse, MODEL_KIND) + 1
    root = model_path(lakehouse, MODEL_KIND, version)
    model.write().overwrite().save(f"{root}/pipeline")
    gmm.write().overwrite().save(f"{root}/mixture")
    pca = vector_to_array(F.col("_pca"))
    out = assigned.select(
        "customer_key", F.lit(as_of).alias("as_of"), F.col("cluster").cast("int"),
        F.element_at(F.create_map(*[x for c, name in sorted(names.items())
                                    for x in (F.lit(c), F.lit(name))]),
                     F.col("cluster")).alias("cluster_name"),
        F.element_at("probabilities", F.col("cluster")).alias("cluster_probability"),
        "probabilities", pca[0].alias("pca_x"), pca[1].alias("pca_y"),
        F.lit(version).cast("bigint").alias("model_version"),
        F.lit(runlog.run_id).alias("run_id"))
    lakehouse.overwrite_as_of(CLUSTERS, out, as_of)
    profile_rows = [(as_of, p["cluster"], names[p["cluster"]], p["customers"], p["share"],
                     p["revenue"], p["revenue_share"], p["z"], version, runlog.run_id)
                    for p in profiles]
    lakehouse.overwrite_as_of(PROFILES, lakehouse.spark.createDataFrame(
        profile_rows, declared(PROFILES).ddl), as_of)
    metrics = {"as_of": as_of, "customers": n, "fitted_on": fitted_on, "k": k,
               "silhouette": kept_silhouette, "search_silhouette": chosen.silhouette,
               "wssse": chosen.wssse, "k_scores": [asdict(s) for s in scores],
               "stability_ari": stability, "previous_version": previous_version,
               "bootstrap_ari": boot, "mixture_log_likelihood": gmm.summary.logLikelihood,
               "sizes": {str(p["cluster"]): p["customers"] for p in profiles},
               "names": {str(c): name for c, name in names.items()}}
    artifact = json.dumps({"pipeline": f"{root}/pipeline", "mixture": f"{root}/mixture",
                           "ids": ids})
    record_model(lakehouse, MODEL_KIND, runlog.run_id, params=conf.model_dump(),
                 metrics=metrics, data_versions={FEATURES: lakehouse.version(FEATURES)},
                 artifact=artifact, tracking=config.tracking,
                 models={"kmeans": model, "mixture": gmm})
    runlog.record(source=FEATURES, table=CLUSTERS, rows_in=n, rows_out=n,
                  message=f"as_of {as_of}: k={k}, silhouette {kept_silhouette:.3f}, model "
                  f"v{version}" + (f", ARI vs previous {stability:.3f}"
                                   if stability is not None else ""))
    runlog.record(source=CLUSTERS, table=PROFILES, rows_in=n, rows_out=len(profile_rows))
    for df in (frame, vectors, scored, assigned):
        df.unpersist()
    log.info("segment: %d customers in %d clusters (%s), model v%d (%.1f s)", n, k,
             "; ".join(f"{c} {names[c]!r} {p['customers']}" for p in profiles
                       for c in [p["cluster"]]), version, time.monotonic() - started)
    return ClusterResult(version, k, scores, names,
                         {p["cluster"]: p["customers"] for p in profiles}, stability, boot,
                         artifact)


def _previous_assignments(lakehouse: Lakehouse) -> tuple[DataFrame | None, int | None]:
    """The last clustering run's ``customer_key``, ``cluster`` (and its model version)."""
    if not lakehouse.exists(CLUSTERS):
        return None, None
    table = lakehouse.read(CLUSTERS)
    version = table.agg(F.max("model_version")).first()[0]
    if version is None:
        return None, None
    return (table.where(F.col("model_version") == version).select("customer_key", "cluster"),
            int(version))
