"""Features benchmark: ``seglake features`` on a resolved demo world, rows/s in and out.

Usage: python bench/features_bench.py [--scale medium] [--out bench/out/features]
The world is generated, ingested, refined and resolved under ``<out>/<scale>`` (reused when it
holds that scale already); only the features stage is timed, twice: at the end of the data and
30 days earlier (a back-dated as_of, as the scoring labels use).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path

from common import refined_world

from seglake.config import SeglakeConfig
from seglake.features import run_features
from seglake.identity import run_resolve
from seglake.lakehouse import Lakehouse
from seglake.session import get_spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--out", default="bench/out/features")
    args = parser.parse_args()
    out = Path(args.out) / args.scale
    spark = get_spark(SeglakeConfig.model_validate({"spark": {"master": "local[*]"}}))
    config = refined_world(spark, args.scale, out, keep_resolved=True)
    if not Lakehouse.from_config(spark, config).exists("silver.identity_map"):
        run_resolve(spark, config)
    runs = []
    first = run_features(spark, config)
    runs.append(first)
    started = time.monotonic()
    runs.append(run_features(spark, config, as_of=first.as_of - dt.timedelta(days=30)))
    second_seconds = time.monotonic() - started
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Spark {spark.version} "
          f"{spark.sparkContext.master}; scale {args.scale}")
    print(f"{'as_of':<11} {'rows in':>11} {'rows out':>9} {'anonymous':>10} {'seconds':>8} "
          f"{'rows in/s':>10} {'rows out/s':>10}")
    for r in runs:
        rows_in = sum(r.rows_in.values())
        print(f"{r.as_of!s:<11} {rows_in:>11,} {r.rows:>9,} {r.anonymous:>10,} "
              f"{r.seconds:>8.1f} {rows_in / r.seconds:>10,.0f} {r.rows / r.seconds:>10,.0f}")
    print(f"(second run incl. the Python side: {second_seconds:.1f} s; the first run pays the "
          "JVM warm-up)")


if __name__ == "__main__":
    main()
