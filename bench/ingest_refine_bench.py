"""Ingest + refine benchmark: rows/s of each stage on a demo world, and the ratio of the two
stages together to a plain Spark conversion of the same landing files to Parquet.

Usage: python bench/ingest_refine_bench.py [--scale medium] [--out bench/out/pipeline]
The landing files of ``<out>/landing`` are reused when they hold that scale already.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

from common import bench_config, landing_records, world

from seglake.config import SeglakeConfig
from seglake.demo import resolve_scale
from seglake.ingest import run_ingest
from seglake.refine import run_refine
from seglake.session import get_spark


def plain_conversion(spark, config: SeglakeConfig, out: str) -> int:
    """What a hand-written job does: read each source with its schema, write Parquet."""
    rows = 0
    for name in config.sources:
        landing_records(spark, config, name).write.mode("overwrite").parquet(f"{out}/{name}")
        rows += spark.read.parquet(f"{out}/{name}").count()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--out", default="bench/out/pipeline")
    args = parser.parse_args()
    out = Path(args.out)
    config = bench_config(out)
    spark = get_spark(config)
    spec = resolve_scale(args.scale)
    world(spark, config, spec)
    shutil.rmtree(out / "lakehouse", ignore_errors=True)

    started = time.monotonic()
    ingested = run_ingest(spark, config)
    ingest_s = time.monotonic() - started
    started = time.monotonic()
    refined = run_refine(spark, config)
    refine_s = time.monotonic() - started
    started = time.monotonic()
    plain_rows = plain_conversion(spark, config, str(out / "plain"))
    plain_s = time.monotonic() - started

    rows = sum(r.rows for r in ingested)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Spark {spark.version} "
          f"{spark.sparkContext.master}")
    print(f"scale {args.scale}: {spec.persons:,} customers, {spec.days} days, {rows:,} landing "
          "rows")
    print(f"  ingest  (landing -> bronze)          {ingest_s:7.1f} s  {rows / ingest_s:>10,.0f} "
          "rows/s")
    print(f"  refine  (bronze -> silver, GX gates) {refine_s:7.1f} s  "
          f"{sum(r.bronze_rows for r in refined) / refine_s:>10,.0f} rows/s")
    print(f"  plain Spark JSON/CSV -> Parquet      {plain_s:7.1f} s  "
          f"{plain_rows / plain_s:>10,.0f} rows/s")
    print(f"  ratio (ingest + refine) / plain: {(ingest_s + refine_s) / plain_s:.2f} "
          "(target <= 2)")


if __name__ == "__main__":
    main()
