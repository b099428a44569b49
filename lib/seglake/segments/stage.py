"""``seglake segment``: ``gold.customer_features`` at one ``as_of`` -> ``gold.rule_segments``.

The rules file is read and every rule checked against the feature catalogue (and, with the
table's schema, for being true/false) before any data is read. Each run replaces the rows of
its ``as_of`` in one commit.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from seglake.config import SeglakeConfig
from seglake.features import FEATURES, feature_catalogue
from seglake.lakehouse import Lakehouse
from seglake.runlog import RunLog
from seglake.segments.rules import (
    RuleError,
    RuleSet,
    check_boolean,
    check_rules,
    load_rules,
    rule_segments,
)

log = logging.getLogger(__name__)

RULE_SEGMENTS = "gold.rule_segments"


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


def checked_rules(config: SeglakeConfig) -> RuleSet:
    """The rules file, loaded and checked against the feature catalogue (no Spark needed)."""
    try:
        rules = load_rules(config.segments.rules_file)
        check_rules(rules, feature_catalogue(config.features))
    except RuleError as exc:
        raise SegmentError(str(exc)) from None
    return rules


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
    lakehouse.overwrite(RULE_SEGMENTS, out, partition_by=["as_of"],
                        replace_where=f"as_of = DATE'{as_of.isoformat()}'")
    runlog.record(source=FEATURES, table=RULE_SEGMENTS, rows_in=rows, rows_out=rows,
                  message=f"as_of {as_of}: " + ", ".join(
                      f"{name} {n}" for name, n in sorted(segments.items())))
    runlog.flush()
    out.unpersist()
    return SegmentResult(runlog.run_id, as_of, rows, segments, tags,
                         time.monotonic() - started)
