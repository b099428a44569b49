"""``seglake publish``: one table of every customer's segments, membership history, who entered
and left each segment since the previous run, a summary, and consent-filtered exports.

Reads the ``as_of`` of ``gold.rule_segments`` (default: the latest) with the clusters and scores
of the same date. Writes ``gold.customer_segments`` (current: replaced whole),
``gold.segment_membership``, ``gold.segment_changes`` and ``gold.segment_summary`` (partitioned
by ``as_of``; a re-run replaces its date), then one export per segment under
``<reports.root>/exports/<as_of>/``: pseudonymous keys of customers whose *current* marketing
consent is given; email addresses only with ``include_email`` (logged in ``ops.run_log``).
Every membership is assigned to treatment or holdout (``gold.segment_assignments``, see
``seglake.activation``); exports carry the treatment group only unless ``include_holdout``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from seglake.activation import TREATMENT, assignments
from seglake.config import SeglakeConfig
from seglake.declarations import (
    ASSIGNMENTS,
    CHANGES,
    CLUSTERS,
    CUSTOMER_SEGMENTS,
    FEATURES,
    FLAGS,
    MEMBERSHIP,
    RECOMMENDATIONS,
    RULE_SEGMENTS,
    SCORES,
    SUMMARY,
)
from seglake.lakehouse import Lakehouse
from seglake.runlog import RunLog

log = logging.getLogger(__name__)

# membership kinds: a column of gold.customer_segments each (tags: one membership per tag)
KINDS = {"rule": "rule_segment", "rfm": "rfm_segment", "cluster": "cluster_name",
         "propensity_tier": "propensity_tier", "churn_tier": "churn_tier"}


class PublishError(RuntimeError):
    """Nothing to publish, or inputs of different dates."""


@dataclass
class PublishResult:
    run_id: str
    as_of: dt.date
    previous_as_of: dt.date | None
    customers: int
    memberships: int
    entered: int
    left: int
    exported: dict[str, int]
    export_root: str
    holdouts: int
    seconds: float


def customer_segments(rules: DataFrame, features: DataFrame, clusters: DataFrame | None,
                      scores: DataFrame | None, consent: DataFrame) -> DataFrame:
    """One row per customer of the rule segments: every segment, score and tier it has."""
    out = rules.select("customer_key", "as_of", "rule_segment", "tags") \
        .join(features.select("customer_key", "is_anonymous", "rfm_segment",
                              F.coalesce("monetary_365d", F.lit(0.0)).alias("monetary_365d")),
              "customer_key", "left")
    if clusters is not None:
        out = out.join(clusters.select("customer_key", "cluster", "cluster_name",
                                       "cluster_probability"), "customer_key", "left")
    else:
        out = out.withColumn("cluster", F.lit(None).cast("int")) \
            .withColumn("cluster_name", F.lit(None).cast("string")) \
            .withColumn("cluster_probability", F.lit(None).cast("double"))
    score_columns = ["propensity_score", "propensity_tier", "churn_score", "churn_tier"]
    if scores is not None:
        out = out.join(scores.select("customer_key", *score_columns), "customer_key", "left")
    else:
        for c in score_columns:
            out = out.withColumn(c, F.lit(None).cast("int" if c.endswith("score") else "string"))
    return out.join(consent, "customer_key", "left") \
        .withColumn("marketing_consent", F.coalesce("marketing_consent", F.lit(False)))


def memberships(segments: DataFrame) -> DataFrame:
    """``customer_key``, ``kind``, ``segment``: one row per membership (tags included)."""
    parts = [segments.where(F.col(column).isNotNull()).select(
        "customer_key", F.lit(kind).alias("kind"), F.col(column).cast("string").alias("segment"))
        for kind, column in KINDS.items()]
    parts.append(segments.select("customer_key", F.lit("tag").alias("kind"),
                                 F.explode("tags").alias("segment")))
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def changes(current: DataFrame, previous: DataFrame) -> DataFrame:
    """Who ``entered`` and who ``left`` each (kind, segment) between the two memberships."""
    keys = ["customer_key", "kind", "segment"]
    entered = current.select(*keys).join(previous.select(*keys), keys, "left_anti") \
        .withColumn("change", F.lit("entered"))
    left = previous.select(*keys).join(current.select(*keys), keys, "left_anti") \
        .withColumn("change", F.lit("left"))
    return entered.unionByName(left)


def summary(segments: DataFrame, members: DataFrame, moved: DataFrame) -> DataFrame:
    """Per (kind, segment): customers, share of all, revenue and its share, consenting
    customers, mean propensity score, and how many entered and left."""
    facts = segments.select("customer_key", "monetary_365d", "marketing_consent",
                            "propensity_score")
    total = F.sum("customers").over(Window.partitionBy("kind"))
    revenue = F.sum("revenue").over(Window.partitionBy("kind"))
    moves = moved.groupBy("kind", "segment").agg(
        F.count(F.when(F.col("change") == "entered", True)).alias("entered"),
        F.count(F.when(F.col("change") == "left", True)).alias("left"))
    # revenue summed as decimals: exact, so the same whatever order a cluster adds it in
    return members.join(facts, "customer_key").groupBy("kind", "segment").agg(
        F.count(F.lit(1)).alias("customers"),
        F.sum(F.col("monetary_365d").cast("decimal(20,2)")).alias("revenue"),
        F.count(F.when(F.col("marketing_consent"), True)).alias("consenting"),
        F.avg("propensity_score").alias("avg_propensity_score")) \
        .withColumn("share", F.col("customers") / total) \
        .withColumn("revenue_share",
                    F.when(revenue > 0, (F.col("revenue") / revenue).cast("double"))) \
        .withColumn("revenue", F.col("revenue").cast("double")) \
        .join(moves, ["kind", "segment"], "full") \
        .fillna(0, subset=["customers", "consenting", "entered", "left"])


def _at(lakehouse: Lakehouse, name: str, as_of: dt.date) -> DataFrame | None:
    if not lakehouse.exists(name):
        return None
    return lakehouse.read(name).where(F.col("as_of") == F.lit(as_of))


def run_publish(spark: SparkSession, config: SeglakeConfig, as_of: dt.date | None = None,
                include_email: bool = False, runlog: RunLog | None = None,
                include_holdout: bool = False) -> PublishResult:
    """Assemble, record history and changes, summarise and export; see the module doc."""
    started = time.monotonic()
    lakehouse = Lakehouse.from_config(spark, config)
    for name in (RULE_SEGMENTS, FEATURES, "silver.customers"):
        if not lakehouse.exists(name):
            raise PublishError(f"{name} does not exist: run the stages before publish "
                               "(`seglake segment` after `seglake features`)")
    if as_of is None:
        as_of = lakehouse.read(RULE_SEGMENTS).agg(F.max("as_of")).first()[0]
    rules = _at(lakehouse, RULE_SEGMENTS, as_of)
    if rules is None or rules.limit(1).count() == 0:
        raise PublishError(f"{RULE_SEGMENTS} has no rows as of {as_of}: run "
                           f"`seglake segment --as-of {as_of}` first")
    clusters = _at(lakehouse, CLUSTERS, as_of)
    if clusters is not None:  # the latest clustering of that date
        latest = clusters.agg(F.max("model_version")).first()[0]
        clusters = clusters.where(F.col("model_version") == latest) if latest else None
    scores = _at(lakehouse, SCORES, as_of)
    if scores is not None and scores.limit(1).count() == 0:
        scores = None
    for name, frame in ((CLUSTERS, clusters), (SCORES, scores)):
        if frame is None:
            log.warning("publish: %s has nothing as of %s: its columns stay empty", name, as_of)
    runlog = runlog or RunLog(lakehouse, "publish")
    consent = lakehouse.read("silver.customers").select("customer_key", "marketing_consent")
    segments = customer_segments(rules, _at(lakehouse, FEATURES, as_of), clusters, scores,
                                 consent).withColumn("run_id", F.lit(runlog.run_id)).persist()
    n = segments.count()
    members = memberships(segments).persist()
    n_members = members.count()

    previous_as_of = None
    if lakehouse.exists(MEMBERSHIP):
        previous_as_of = lakehouse.read(MEMBERSHIP).where(F.col("as_of") < F.lit(as_of)) \
            .agg(F.max("as_of")).first()[0]
    previous = (lakehouse.read(MEMBERSHIP).where(F.col("as_of") == F.lit(previous_as_of))
                if previous_as_of else spark.createDataFrame(
                    [], "customer_key STRING, kind STRING, segment STRING"))
    moved = changes(members, previous).persist()
    earlier = (lakehouse.read(ASSIGNMENTS).where(F.col("as_of") == F.lit(previous_as_of))
               if previous_as_of and lakehouse.exists(ASSIGNMENTS) else None)
    groups = assignments(members, earlier, config.activation.holdout_share,
                         config.activation.salt, as_of).persist()
    held = groups.where(F.col("group") != TREATMENT).count()
    counts = {r["change"]: r["count"] for r in moved.groupBy("change").count().collect()}
    summarised = summary(segments, members, moved)

    stamp = [F.lit(as_of).alias("as_of"), F.lit(runlog.run_id).alias("run_id")]
    lakehouse.overwrite(CUSTOMER_SEGMENTS, segments.drop("monetary_365d"), overwrite_schema=True)
    lakehouse.overwrite_as_of(MEMBERSHIP, members.select("*", *stamp), as_of)
    lakehouse.overwrite_as_of(CHANGES, moved.select(
        "*", F.lit(previous_as_of).cast("date").alias("previous_as_of"), *stamp), as_of)
    lakehouse.overwrite_as_of(SUMMARY, summarised.select("*", *stamp), as_of)
    lakehouse.overwrite_as_of(ASSIGNMENTS, groups.select("*", *stamp), as_of)
    exported, root = _export(lakehouse, config, segments, groups, as_of, include_email,
                             include_holdout)

    runlog.record(source=RULE_SEGMENTS, table=CUSTOMER_SEGMENTS, rows_in=n, rows_out=n,
                  message=f"as_of {as_of}" + ("" if clusters is not None else "; no clusters")
                  + ("" if scores is not None else "; no scores"))
    runlog.record(source=CUSTOMER_SEGMENTS, table=MEMBERSHIP, rows_in=n, rows_out=n_members)
    runlog.record(source=MEMBERSHIP, table=CHANGES, rows_in=n_members,
                  rows_out=sum(counts.values()),
                  message=f"since {previous_as_of or 'nothing (first run)'}: "
                  f"{counts.get('entered', 0)} entered, {counts.get('left', 0)} left")
    runlog.record(source=MEMBERSHIP, table=SUMMARY, rows_in=n_members,
                  rows_out=summarised.count())
    runlog.record(source=MEMBERSHIP, table=ASSIGNMENTS, rows_in=n_members,
                  rows_out=n_members, message=f"{held} memberships in holdout groups")
    runlog.record(source=CUSTOMER_SEGMENTS, table="exports", rows_in=n,
                  rows_out=sum(exported.values()),
                  message=(f"{root}: consenting customers only"
                           + ("; WITH EMAIL ADDRESSES (include_email)" if include_email
                              else "; pseudonymous keys only")
                           + ("; WITH HOLDOUT GROUPS (include_holdout)" if include_holdout
                              else "; treatment groups only")))
    runlog.flush()
    for df in (segments, members, moved, groups):
        df.unpersist()
    seconds = time.monotonic() - started
    log.info("publish: %d customers, %d memberships, %d entered / %d left since %s, %d export "
             "rows (%.1f s)", n, n_members, counts.get("entered", 0), counts.get("left", 0),
             previous_as_of, sum(exported.values()), seconds)
    return PublishResult(runlog.run_id, as_of, previous_as_of, n, n_members,
                         counts.get("entered", 0), counts.get("left", 0), exported, root,
                         held, seconds)


def _export(lakehouse: Lakehouse, config: SeglakeConfig, segments: DataFrame,
            groups: DataFrame, as_of: dt.date, include_email: bool, include_holdout: bool
            ) -> tuple[dict[str, int], str]:
    """Per kind in ``publish.export_kinds``: CSV and Parquet, one folder per segment
    (``segment=<name>``), consenting customers of the treatment group (both groups, with a
    ``group`` column, when ``include_holdout``); the next best categories (``|``-separated)
    and send hour and weekday (``gold.customer_recommendations``); ``flag`` says bot or
    outlier (``gold.customer_flags``), empty for most."""
    root = str(Path(config.reports.root) / "exports" / as_of.isoformat())
    allowed = segments.where(F.col("marketing_consent")).select(
        "customer_key", "propensity_score", "churn_score")
    if include_email:
        allowed = allowed.join(lakehouse.read("silver.customers_pii")
                               .select("customer_key", "email"), "customer_key", "left")
    flags = _at(lakehouse, FLAGS, as_of)
    if flags is not None:  # a bulk buyer may still be marketed to: the tool sees why it stands out
        allowed = allowed.join(flags.groupBy("customer_key").agg(
            F.concat_ws(",", F.sort_array(F.collect_set("flag"))).alias("flag")),
            "customer_key", "left")
    else:
        allowed = allowed.withColumn("flag", F.lit(None).cast("string"))
    recommendations = _at(lakehouse, RECOMMENDATIONS, as_of)
    extra = ["next_categories", "send_hour", "send_weekday"]
    if recommendations is not None:  # what to send and when (the latest model of that date)
        latest = recommendations.agg(F.max("model_version")).first()[0]
        allowed = allowed.join(recommendations.where(F.col("model_version") == latest).select(
            "customer_key", F.concat_ws("|", "categories").alias("next_categories"),
            "send_hour", "send_weekday"), "customer_key", "left")
    else:
        allowed = allowed.select("*", *[F.lit(None).cast("string" if c == "next_categories"
                                                          else "int").alias(c) for c in extra])
    exported = {}
    for kind in config.publish.export_kinds:
        members = groups.where(F.col("kind") == kind)
        if not include_holdout:
            members = members.where(F.col("group") == TREATMENT)
        rows = members.join(allowed, "customer_key") \
            .select("segment", "customer_key", *(["email"] if include_email else []),
                    *(["group"] if include_holdout else []),
                    "propensity_score", "churn_score", *extra, "flag",
                    F.lit(as_of).alias("as_of")).persist()
        exported[kind] = rows.count()
        for fmt in ("csv", "parquet"):
            writer = rows.repartition("segment").write.mode("overwrite").partitionBy("segment")
            target = f"{root}/{kind}/{fmt}"
            (writer.option("header", True).csv(target) if fmt == "csv"
             else writer.parquet(target))
        rows.unpersist()
        log.info("publish: exported %d %s memberships of consenting customers (%s) to %s/%s",
                 exported[kind], kind, "both groups" if include_holdout else "treatment only",
                 root, kind)
    return exported, root
