"""``seglake features [--as-of DATE]``: silver + identity map -> ``gold.customer_features``,
``gold.cohort_retention`` and ``gold.customer_flags`` (all point in time).

Each run replaces the rows of its ``as_of`` only (the table is partitioned by ``as_of``), in one
commit: re-running the same date gives the same rows, other dates stay as they were.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from seglake.behaviour import activity, end_of_data, features_of, silver_sources
from seglake.behaviour.cohorts import cohort_retention
from seglake.behaviour.flags import customer_flags
from seglake.behaviour.inputs import KEYED, TABLES
from seglake.config import SeglakeConfig
from seglake.declarations import COHORTS, FEATURES, FLAGS, ORDER_LINES
from seglake.lakehouse import Lakehouse
from seglake.runlog import RunLog

log = logging.getLogger(__name__)

REQUIRED = ("identity_map", "customers")


class FeaturesError(RuntimeError):
    """Features cannot be built from what the lakehouse holds."""


@dataclass
class FeaturesResult:
    run_id: str
    as_of: dt.date
    rows: int
    customers: int
    anonymous: int
    rows_in: dict[str, int]
    unkeyed: dict[str, int]
    seconds: float


def run_features(spark: SparkSession, config: SeglakeConfig, as_of: dt.date | None = None,
                 runlog: RunLog | None = None) -> FeaturesResult:
    """Build the features as of ``as_of`` (default: the end of the data) and write them."""
    started = time.monotonic()
    lakehouse = Lakehouse.from_config(spark, config)
    for name in REQUIRED:
        if not lakehouse.exists(TABLES[name]):
            raise FeaturesError(f"{TABLES[name]} does not exist: run `seglake resolve` first")
    runlog = runlog or RunLog(lakehouse, "features")
    sources = silver_sources(lakehouse)
    if as_of is None:
        as_of = end_of_data(sources)
        if as_of is None:
            raise FeaturesError("silver holds no orders, events or email events: nothing to "
                                "build features from")
    log.info("features: as of %s (rows strictly before %s 00:00 UTC)", as_of, as_of)
    act = activity(sources, as_of).persist()
    rows_in, unkeyed = {}, {}
    for name in KEYED:
        frame = getattr(act, name)
        counts = frame.agg(F.count(F.lit(1)), F.count(F.when(F.col("customer_key").isNull(),
                                                              True))).first()
        rows_in[name], unkeyed[name] = counts[0], counts[1]
        log.info("features: %s: %d rows before %s", TABLES[name], rows_in[name], as_of)
        if unkeyed[name]:
            log.warning("features: %d %s rows carry identifiers that silver.identity_map does "
                        "not know (they arrived after the last resolve) and are left out; run "
                        "`seglake resolve` to include them", unkeyed[name], TABLES[name])
    if not sum(rows_in.values()):
        raise FeaturesError(f"no order, event or email event before {as_of}: choose a later "
                            "--as-of")
    features = features_of(act, config.features).persist()
    counts = features.agg(F.count(F.lit(1)),
                          F.count(F.when(F.col("is_anonymous"), True))).first()
    rows, anonymous = counts[0], counts[1]
    if rows == 0:
        raise FeaturesError(f"nobody was known or active before {as_of}: choose a later "
                            "--as-of")
    log.info("features: %d rows (%d customers, %d anonymous visitors) (%.1f s)", rows,
             rows - anonymous, anonymous, time.monotonic() - started)
    lakehouse.overwrite_as_of(FEATURES, features, as_of)
    for name in KEYED:
        runlog.record(source=TABLES[name], table=FEATURES, rows_in=rows_in[name],
                      rows_out=rows_in[name] - unkeyed[name],
                      message=f"as_of {as_of}" + (f"; {unkeyed[name]} rows without a known "
                                                  "identifier left out" if unkeyed[name]
                                                  else ""))
    runlog.record(table=FEATURES, rows_in=sum(rows_in.values()), rows_out=rows,
                  message=f"as_of {as_of}: {rows - anonymous} customers, {anonymous} "
                  "anonymous visitors")
    cohorts = cohort_retention(act.orders, as_of).withColumn("as_of", F.lit(as_of)) \
        .withColumn("run_id", F.lit(runlog.run_id)).localCheckpoint()
    lakehouse.overwrite_as_of(COHORTS, cohorts, as_of)
    runlog.record(source=TABLES["orders"], table=COHORTS, rows_in=rows_in["orders"],
                  rows_out=cohorts.count(), message=f"as_of {as_of}")
    lines = lakehouse.read(ORDER_LINES) if lakehouse.exists(ORDER_LINES) else None
    flags = customer_flags(act.events, act.orders, lines, as_of, config.flags) \
        .withColumn("as_of", F.lit(as_of)).withColumn("run_id", F.lit(runlog.run_id)) \
        .localCheckpoint()
    lakehouse.overwrite_as_of(FLAGS, flags, as_of)
    by_flag = dict(flags.groupBy("flag").count().collect())
    log.info("features: flagged %d bots and %d outlier customers as of %s (%s)",
             by_flag.get("bot", 0), by_flag.get("outlier", 0), as_of, FLAGS)
    runlog.record(table=FLAGS, rows_in=rows, rows_out=sum(by_flag.values()),
                  message=f"as_of {as_of}: of {rows} customers and visitors, "
                  f"{by_flag.get('bot', 0)} bots, {by_flag.get('outlier', 0)} outliers")
    runlog.flush()
    act.unpersist()
    features.unpersist()
    seconds = time.monotonic() - started
    log.info("features: %d rows as of %s written to %s (%.1f s)", rows, as_of, FEATURES,
             seconds)
    return FeaturesResult(runlog.run_id, as_of, rows, rows - anonymous, anonymous, rows_in,
                          unkeyed, seconds)
