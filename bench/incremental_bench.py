"""Incremental resolve benchmark: a demo world extended day by day, each day's new and changed
CRM records resolved incrementally, against a full resolve of the same final state.

Usage: python bench/incremental_bench.py [--scale small] [--days 60] [--extra 3] [--step 1]
[--event-days N] [--out bench/out/incremental]
Prints per day the batch, the time and the keys kept; at the end pairwise precision and recall
of both against the demo truth, the share of unchanged records that kept their key, and the
cost ratio incremental / full (target: a 1% batch costs at most 10% of a full resolve).

The demo world changes about 57 CRM records a day at medium, so a 1% batch (--step 19) brings
19 days of events, orders and emails with it; --event-days 1 holds back all but the first day
of those (the CRM's files come for every day), as a retailer whose CRM changes 1% a day gets
them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import time
from pathlib import Path

from common import bench_config, world
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from seglake.demo import resolve_scale
from seglake.demo.landing import SOURCES
from seglake.identity import run_resolve
from seglake.identity.evaluation import pair_scores
from seglake.ingest import run_ingest
from seglake.lakehouse import Lakehouse
from seglake.refine import run_refine
from seglake.session import get_spark

CRM_SOURCES = ("crm_eshop", "crm_loyalty", "products")  # land for the whole step


def record_keys(lakehouse: Lakehouse) -> DataFrame:
    return lakehouse.read("silver.identity_map").where("id_kind = 'record_key'").select(
        F.col("id_value").alias("record_key"), "customer_key").persist()


def held_back(config, first: dt.date) -> int:
    """Remove the landing files of every source but the CRM's (and products) dated ``first``
    or later; returns how many."""
    removed = 0
    for name in SOURCES:
        if name in CRM_SOURCES:
            continue
        for path in Path(config.landing.root, name).glob(f"{name}_*"):
            date = dt.date.fromisoformat(path.name.removeprefix(f"{name}_")[:10])
            if date >= first:
                path.unlink()
                removed += 1
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="small")
    parser.add_argument("--days", type=int, default=60, help="days observed before the first "
                        "(full) resolve")
    parser.add_argument("--extra", type=int, default=3, help="incremental resolves after the "
                        "first, each of --step more days")
    parser.add_argument("--step", type=int, default=1, help="days each incremental resolve "
                        "takes in (about 57 CRM records a day at medium: 19 days are a 1%% "
                        "batch)")
    parser.add_argument("--event-days", type=int, default=None,
                        help="days of the other sources (events, orders, emails, consents) "
                        "each incremental resolve takes in, the CRM's records coming for --step "
                        "days (default: --step): a retailer whose CRM changes 1%% a day gets "
                        "one day of events with it, where the demo world brings 19")
    parser.add_argument("--out", default="bench/out/incremental")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    config = bench_config(out)
    spark = get_spark(config)
    lakehouse = Lakehouse.from_config(spark, config)
    truth = None
    rows = []
    for day in range(args.days, args.days + args.extra * args.step + 1, args.step):
        spec = resolve_scale(args.scale, days=day)
        world(spark, config, spec)
        if day > args.days and args.event_days is not None:
            last = day - args.step + args.event_days - 1  # the step's last day of events
            held = held_back(config, spec.start + dt.timedelta(days=last + 1))
            print(f"day {day}: {held} landing files of the days after {last} held back "
                  "(not CRM)")
        run_ingest(spark, config)
        run_refine(spark, config)
        before = record_keys(lakehouse) if day > args.days else None
        started = time.monotonic()
        result = run_resolve(spark, config)
        seconds = time.monotonic() - started
        kept, unexplained = None, None
        if before is not None:
            hashes = lakehouse.read("silver.identity_records").where(
                F.col("run_id") != result.run_id).select("record_key")  # unchanged content
            unchanged = before.join(hashes, "record_key")
            after = record_keys(lakehouse)
            same = unchanged.join(after, ["record_key", "customer_key"]).count()
            kept = same / max(1, unchanged.count())
            # every record whose key changed: an event of this run from its old to its new key
            moved = before.withColumnRenamed("customer_key", "old_key").join(
                after.withColumnRenamed("customer_key", "new_key"), "record_key") \
                .where(F.col("old_key") != F.col("new_key"))
            events = lakehouse.read("silver.identity_merges").where(
                F.col("run_id") == result.run_id).select("old_key", "new_key")
            unexplained = moved.join(events, ["old_key", "new_key"], "left_anti").count()
        rows.append((day, result, seconds, kept))
        print(f"day {day}: {result.mode}, {result.records:,} records, batch "
              f"{result.batch_records}, {seconds:.1f} s, unchanged records keeping their key "
              f"{kept if kept is None else f'{kept:.4%}'}, key changes without an event "
              f"{unexplained}")
    truth = spark.read.parquet(f"{config.truth.root}/crm_records").select(
        F.concat_ws(":", "system", "crm_id").alias("record_key"), "person_id")
    incremental = pair_scores(record_keys(lakehouse), truth)
    # the same final state resolved from scratch (retrained), in a copy
    copy = out / "full"
    shutil.copytree(out / "lakehouse", copy / "lakehouse")
    full_config = config.model_copy(update={"lakehouse": config.lakehouse.model_copy(
        update={"root": str(copy / "lakehouse")})})
    started = time.monotonic()
    full = run_resolve(spark, full_config, full=True)
    full_seconds = time.monotonic() - started
    full_scores = pair_scores(record_keys(Lakehouse.from_config(spark, full_config)), truth)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Spark {spark.version} "
          f"{spark.sparkContext.master}")
    print(f"{'run':<22} {'records':>8} {'batch':>7} {'batch %':>8} {'seconds':>8} "
          f"{'vs full':>8} {'keys kept':>10}")
    for day, r, seconds, kept in rows:
        share = f"{r.batch_records / r.records:.2%}" if r.batch_records is not None else "-"
        print(f"{f'day {day} ({r.mode})':<22} {r.records:>8,} {r.batch_records or 0:>7,} "
              f"{share:>8} {seconds:>8.1f} {seconds / full_seconds:>8.1%} "
              f"{'-' if kept is None else f'{kept:.3%}':>10}")
    print(f"{'full, final state':<22} {full.records:>8,} {'-':>7} {'-':>8} {full_seconds:>8.1f} "
          f"{1:>8.1%} {'-':>10}")
    print(f"precision / recall: incremental {incremental.precision:.4f} / "
          f"{incremental.recall:.4f}, full {full_scores.precision:.4f} / "
          f"{full_scores.recall:.4f} (target: within 0.005)")
    print("targets: >= 99.9% of unchanged records keep their key; a 1% batch <= 10% of a full "
          "resolve's time")


if __name__ == "__main__":
    main()
