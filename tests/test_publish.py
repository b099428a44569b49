"""Publish: the assembled table holds every customer's segments and scores, memberships and
changes agree with a set difference worked out here, the summary adds up, and exports hold only
consenting customers, with email addresses only when asked (and logged)."""

from __future__ import annotations

import datetime as dt
import shutil

from pyspark.sql import functions as F

from seglake.declarations import (
    ASSIGNMENTS,
    CHANGES,
    CUSTOMER_SEGMENTS,
    MEMBERSHIP,
    RULE_SEGMENTS,
    SUMMARY,
)
from seglake.features import run_features
from seglake.lakehouse import Lakehouse
from seglake.publish import run_publish
from seglake.segments import run_segment


def test_customer_segments_assemble_every_stage(spark, config, published):
    lake = Lakehouse.from_config(spark, config)
    out = lake.read(CUSTOMER_SEGMENTS)
    rules = lake.read(RULE_SEGMENTS).where(F.col("as_of") == published.as_of)
    assert out.count() == rules.count() == published.customers
    assert out.select("customer_key").distinct().count() == published.customers
    known = out.where(~F.col("is_anonymous"))
    # every known customer has a cluster and a propensity score; anonymous visitors neither
    assert known.where(F.col("cluster_name").isNull() | F.col("propensity_tier").isNull()) \
        .count() == 0
    assert out.where(F.col("is_anonymous") & (F.col("cluster").isNotNull()
                                             | F.col("propensity_score").isNotNull())).count() == 0
    # membership: one row per segment of each kind and per tag
    members = lake.read(MEMBERSHIP).where(F.col("as_of") == published.as_of)
    by_kind = {r["kind"]: r["count"] for r in members.groupBy("kind").count().collect()}
    assert by_kind["rule"] == published.customers
    assert by_kind["cluster"] == known.count()
    assert by_kind["tag"] == out.select(F.sum(F.size("tags"))).first()[0]
    assert sum(by_kind.values()) == published.memberships
    # the summary adds up per kind
    summary = lake.read(SUMMARY).where(F.col("as_of") == published.as_of)
    for kind in ("rule", "cluster", "propensity_tier"):
        rows = summary.where(F.col("kind") == kind).collect()
        assert sum(r["customers"] for r in rows) == by_kind[kind]
        assert abs(sum(r["share"] for r in rows) - 1) < 1e-9
        assert all(r["consenting"] <= r["customers"] for r in rows)


def test_exports_hold_only_consenting_customers_and_emails_only_when_asked(
        spark, config, published):
    lake = Lakehouse.from_config(spark, config)
    consent = lake.read("silver.customers").select("customer_key", "marketing_consent")
    for kind in config.publish.export_kinds:
        for fmt in ("csv", "parquet"):
            path = f"{published.export_root}/{kind}/{fmt}"
            rows = (spark.read.option("header", True).csv(path) if fmt == "csv"
                    else spark.read.parquet(path))
            assert rows.count() == published.exported[kind] > 0
            assert "email" not in rows.columns
            refused = rows.join(consent, "customer_key", "left") \
                .where(~F.coalesce("marketing_consent", F.lit(False)))
            assert refused.count() == 0
    assert published.exported["rule"] < published.customers  # some said no, or are anonymous
    # the treatment group only: exactly the consenting treatment members of each segment
    groups = lake.read(ASSIGNMENTS).where(F.col("as_of") == published.as_of)
    treated = groups.where((F.col("kind") == "rule") & (F.col("group") == "treatment")) \
        .join(consent.where("marketing_consent"), "customer_key")
    exported = {(r["segment"], r["customer_key"]) for r in
                spark.read.parquet(f"{published.export_root}/rule/parquet").collect()}
    assert exported == {(r["segment"], r["customer_key"]) for r in treated.collect()}
    held = groups.where((F.col("kind") == "rule") & (F.col("group") == "holdout")) \
        .join(consent.where("marketing_consent"), "customer_key").count()
    assert held > 0 and published.holdouts > 0
    again = run_publish(spark, config, as_of=published.as_of, include_email=True,
                        include_holdout=True)
    rows = spark.read.parquet(f"{again.export_root}/rule/parquet")
    assert "email" in rows.columns and rows.where(F.col("email").isNotNull()).count() > 0
    assert rows.join(consent, "customer_key").where(~F.col("marketing_consent")).count() == 0
    assert rows.where(F.col("group") == "holdout").count() == held
    assert rows.count() == len(exported) + held
    logged = lake.read("ops.run_log").where((F.col("run_id") == again.run_id)
                                            & (F.col("table") == "exports")).first()
    assert "WITH EMAIL ADDRESSES" in logged["message"]
    assert "WITH HOLDOUT GROUPS" in logged["message"]


def test_segment_changes_are_the_set_difference_with_the_previous_run(spark, config,
                                                                     published, tmp_path):
    # on a copy of the shared lakehouse: the tests that read it after this one see it unchanged
    shutil.copytree(config.lakehouse.root, tmp_path / "lakehouse")
    config = config.model_copy(update={
        "lakehouse": config.lakehouse.model_copy(update={"root": str(tmp_path / "lakehouse")}),
        "reports": config.reports.model_copy(update={"root": str(tmp_path / "reports")})})
    lake = Lakehouse.from_config(spark, config)
    earlier = published.as_of - dt.timedelta(days=config.scoring.horizon_days)
    run_features(spark, config, as_of=earlier)
    rules_only = config.model_copy(update={"clustering": config.clustering.model_copy(
        update={"enabled": False})})
    run_segment(spark, rules_only, as_of=earlier)
    first = run_publish(spark, config, as_of=earlier)
    assert first.previous_as_of is None and first.left == 0
    assert first.entered == first.memberships
    # the second publish draws half of each rule segment's newcomers into its holdout: members
    # who stayed keep the group and date they got at the first
    halves = config.model_copy(update={"activation": config.activation.model_copy(
        update={"holdout_share": {**config.activation.holdout_share, "rule": 0.5}})})
    result = run_publish(spark, halves, as_of=published.as_of)
    assert result.previous_as_of == earlier
    keys = ["customer_key", "kind", "segment"]
    at = {d: lake.read(ASSIGNMENTS).where(F.col("as_of") == d).where(F.col("kind") == "rule")
          for d in (earlier, published.as_of)}
    stayed = at[earlier].alias("a").join(at[published.as_of].alias("b"), keys)
    assert stayed.count() > 100
    assert stayed.where((F.col("a.group") != F.col("b.group"))
                        | (F.col("b.assigned_at") != F.lit(earlier))).count() == 0
    newcomers = at[published.as_of].join(at[earlier], keys, "left_anti")
    n_new = newcomers.count()
    n_held = newcomers.where(F.col("group") == "holdout").count()
    assert n_new > 100 and newcomers.where(F.col("assigned_at") != published.as_of).count() == 0
    assert abs(n_held - 0.5 * n_new) < 4.5 * (0.25 * n_new) ** 0.5  # binomial, 4.5 sigma
    # a run without the flag writes the exports without email addresses again
    assert "email" not in spark.read.parquet(f"{result.export_root}/rule/parquet").columns

    def members(as_of):
        return {(r["customer_key"], r["kind"], r["segment"]) for r in lake.read(MEMBERSHIP)
                .where(F.col("as_of") == as_of).collect()}

    before, now = members(earlier), members(published.as_of)
    moved = lake.read(CHANGES).where(F.col("as_of") == published.as_of).collect()
    assert {(r["customer_key"], r["kind"], r["segment"]) for r in moved
            if r["change"] == "entered"} == now - before
    assert {(r["customer_key"], r["kind"], r["segment"]) for r in moved
            if r["change"] == "left"} == before - now
    assert result.entered == len(now - before) > 0 and result.left == len(before - now) > 0
    # a re-run replaces its date's history instead of adding to it
    assert len(now) == result.memberships
    assert lake.read(MEMBERSHIP).where(F.col("as_of") == published.as_of).count() == len(now)
