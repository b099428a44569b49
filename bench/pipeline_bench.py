"""Whole-pipeline benchmark: every stage of ``seglake run`` on a demo world, with rows in and
out, seconds, rows/s, Spark jobs, the driver's peak old-generation heap and the Python driver's
peak memory; each stage's ratio to a plain Spark job on the same data measured in the same run
(issue 21's anchors), and how resolve's candidate pairs grow from the first scale to the last.

Usage: python bench/pipeline_bench.py [--scales small,20000] [--out bench/out/pipeline]
Each scale's world is generated under ``<out>/<scale>`` (reused while it holds that world); the
lakehouse is rebuilt from scratch. The stages run through the runner ``seglake run`` uses.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from common import bench_config, landing_records, peak_rss_mb, reset_peak_rss, world
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from seglake.cli import _HANDLERS, StageOptions
from seglake.config import SeglakeConfig
from seglake.demo import resolve_scale
from seglake.lakehouse import Lakehouse
from seglake.pipeline import run_stages
from seglake.stages import BRONZE, PIPELINE, stage

ANCHORED = {  # stage -> the anchor its time is compared with
    "ingest": "convert", "refine": "convert", "features": "group_by",
    "segment": "scan", "score": "scan"}


@dataclass
class StageFigures:
    stage: str
    rows_in: int
    rows_out: int
    seconds: float
    jobs: int
    peak_heap_mb: float
    python_mb: float | None


def jobs_so_far(spark: SparkSession) -> int:
    """Spark jobs submitted in this application so far."""
    return int(spark.sparkContext._jsc.sc().dagScheduler().nextJobId())


def old_generation(spark: SparkSession) -> list:
    """The heap pools that hold what survives collections (G1 Old Gen, Tenured, ...)."""
    jvm = spark.sparkContext._jvm
    return [pool for pool in jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
            if str(pool.getType()) == "Heap memory"
            and any(w in str(pool.getName()) for w in ("Old", "Tenured"))]


def reset_peak_heap(spark: SparkSession) -> None:
    for pool in old_generation(spark):
        pool.resetPeakUsage()


def peak_heap_mb(spark: SparkSession) -> float:
    """Peak of the driver's old generation since the reset: what the stage kept alive (young
    collections churn through the rest)."""
    return sum(pool.getPeakUsage().getUsed() for pool in old_generation(spark)) / 2**20


def table_rows(lakehouse: Lakehouse, names: list[str]) -> int:
    return sum(lakehouse.read(n).count() for n in names if lakehouse.exists(n))


def stage_inputs(config: SeglakeConfig, name: str) -> list[str]:
    """The tables a stage reads, from its declaration (bronze.*: every source's table)."""
    names = []
    for table in stage(name).reads:
        names += [f"bronze.{s}" for s in config.sources] if table == BRONZE else [table]
    return names


def landing_rows(spark: SparkSession, config: SeglakeConfig) -> int:
    return sum(landing_records(spark, config, name).count() for name in config.sources)


def convert_anchor(spark: SparkSession, config: SeglakeConfig, out: Path) -> float:
    """What a hand-written job does with the landing files: read each source with its
    schema, write Parquet."""
    started = time.monotonic()
    for name in config.sources:
        landing_records(spark, config, name).write.mode("overwrite").parquet(str(out / name))
    return time.monotonic() - started


def group_by_anchor(lakehouse: Lakehouse, columns: int) -> float:
    """A plain group-by of the silver rows features read, into as many aggregate columns as
    the feature table has, split over events, orders and email events."""
    parts = {"silver.events": ("user_id", "event_ts"), "silver.orders": ("customer_id",
                                                                      "net_amount"),
             "silver.email_events": ("email_hash", "event_ts")}
    per = max(1, columns // len(parts))
    started = time.monotonic()
    for table, (key, value) in parts.items():
        df = lakehouse.read(table)
        aggs = [F.count(F.when(F.hash(value) % (i + 2) == 0, True)).alias(f"a{i}")
                for i in range(per)]
        df.groupBy(key).agg(*aggs).write.format("noop").mode("overwrite").save()
    return time.monotonic() - started


def scan_anchor(lakehouse: Lakehouse) -> float:
    """One scan of every column of the feature table."""
    started = time.monotonic()
    lakehouse.read("gold.customer_features").write.format("noop").mode("overwrite").save()
    return time.monotonic() - started


def linkage_size(lakehouse: Lakehouse) -> tuple[int, int]:
    """(CRM records, candidate pairs) of the latest linkage model in ops.models."""
    row = lakehouse.read("ops.models").where("kind = 'identity-linkage'") \
        .orderBy(F.desc("version")).select("metrics").first()
    metrics = json.loads(row["metrics"])
    return metrics["records"], metrics["candidate_pairs"]


def bench_scale(spark: SparkSession, scale: str, out: Path) -> tuple[list[StageFigures],
                                                                      dict[str, float], int,
                                                                      tuple[int, int]]:
    config = bench_config(out)
    spec = resolve_scale(scale)
    world(spark, config, spec)
    shutil.rmtree(out / "lakehouse", ignore_errors=True)
    lakehouse = Lakehouse.from_config(spark, config)
    landing = landing_rows(spark, config)
    figures: list[StageFigures] = []
    measured: dict[str, tuple[int, int, float, float | None]] = {}

    def run_stage(stage: str) -> int:
        rows_in = landing if stage == "ingest" else table_rows(
            lakehouse, stage_inputs(config, stage))
        reset_peak_heap(spark)
        reset_peak_rss()
        jobs = jobs_so_far(spark)
        code = _HANDLERS[stage](config, StageOptions(scale=scale))
        measured[stage] = (rows_in, jobs_so_far(spark) - jobs, peak_heap_mb(spark),
                           peak_rss_mb())
        return code

    stages = [s for s in PIPELINE if s not in ("demo", "report")]
    outcomes = run_stages(lakehouse, stages, run_stage)
    for o in outcomes:
        if o.code != 0:
            raise SystemExit(f"stage {o.stage} failed: {o.error}")
        rows_in, jobs, heap, python = measured[o.stage]
        written = [t for t in o.written if not t.startswith("ops.")]
        figures.append(StageFigures(o.stage, rows_in, table_rows(lakehouse, written),
                                    o.seconds, jobs, heap, python))
    columns = len(lakehouse.read("gold.customer_features").columns)
    anchors = {"convert": convert_anchor(spark, config, out / "plain"),
               "group_by": group_by_anchor(lakehouse, columns),
               "scan": scan_anchor(lakehouse)}
    return figures, anchors, landing, linkage_size(lakehouse)


def report(scale: str, figures: list[StageFigures], anchors: dict[str, float],
           landing: int) -> None:
    print(f"\nscale {scale}: {landing:,} landing rows")
    print(f"  {'stage':<9} {'rows in':>11} {'rows out':>11} {'seconds':>8} {'rows/s':>9} "
          f"{'jobs':>6} {'old gen MB':>10} {'python MB':>9} {'anchor':>9} {'ratio':>6}")
    for f in figures:
        anchor = ANCHORED.get(f.stage)
        ratio = f"{f.seconds / anchors[anchor]:.1f}" if anchor else "-"
        print(f"  {f.stage:<9} {f.rows_in:>11,} {f.rows_out:>11,} {f.seconds:>8.1f} "
              f"{f.rows_in / f.seconds:>9,.0f} {f.jobs:>6} {f.peak_heap_mb:>10.0f} "
              f"{f'{f.python_mb:,.0f}' if f.python_mb else '-':>9} {anchor or '-':>9} {ratio:>6}")
    total = sum(f.seconds for f in figures)
    by_stage = {f.stage: f.seconds for f in figures}
    print(f"  end to end {total:.0f} s, {landing / total:,.0f} landing rows/s")
    print("  anchors: " + ", ".join(f"{k} {v:.1f} s" for k, v in anchors.items()))
    print(f"  ingest + refine / convert: "
          f"{(by_stage['ingest'] + by_stage['refine']) / anchors['convert']:.1f} (target <= 2)")
    print(f"  features / group-by: {by_stage['features'] / anchors['group_by']:.1f} "
          "(target <= 3)")
    print(f"  segment / scan: {by_stage['segment'] / anchors['scan']:.0f}, score / scan: "
          f"{by_stage['score'] / anchors['scan']:.0f} (target <= 3 scans beyond the fixed fit "
          "cost; the fits are not timed apart here, so the target is not judged)")


def growth(sizes: dict[str, tuple[int, int]]) -> None:
    """How resolve's candidate pairs grow with the CRM records from the first scale to the
    last (issue 21: near-linear)."""
    (a, (ra, pa)), (b, (rb, pb)) = list(sizes.items())[0], list(sizes.items())[-1]
    exponent = math.log(pb / pa) / math.log(rb / ra)
    print(f"\nresolve {a} -> {b}: CRM records x{rb / ra:.1f}, candidate pairs x{pb / pa:.1f}: "
          f"pairs ~ records^{exponent:.2f} (target: near 1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default="small")
    parser.add_argument("--out", default="bench/out/pipeline")
    args = parser.parse_args()
    from seglake.session import get_spark

    spark = get_spark(bench_config(Path(args.out)))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Spark {spark.version} "
          f"{spark.sparkContext.master}")
    sizes = {}
    for scale in args.scales.split(","):
        figures, anchors, landing, sizes[scale] = bench_scale(spark, scale,
                                                              Path(args.out) / scale)
        report(scale, figures, anchors, landing)
    if len(sizes) > 1 and len(set(sizes.values())) > 1:
        growth(sizes)


if __name__ == "__main__":
    main()
