"""Demo generation benchmark: time and rows/s of `seglake demo generate` at a scale.

Usage: python bench/demo_bench.py [--scale medium] [--out bench/out/demo]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from seglake.config import SeglakeConfig
from seglake.demo import generate, resolve_scale
from seglake.session import get_spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--out", default="bench/out/demo")
    args = parser.parse_args()
    config = SeglakeConfig.model_validate({"spark": {"master": "local[*]"}})
    spark = get_spark(config)
    spec = resolve_scale(args.scale)
    started = time.monotonic()
    result = generate(spark, spec, f"{args.out}/landing", f"{args.out}/truth", clean=True)
    seconds = time.monotonic() - started
    size = sum(os.path.getsize(os.path.join(d, f))
               for d, _, files in os.walk(f"{args.out}/landing") for f in files)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Spark {spark.version} "
          f"{spark.sparkContext.master}")
    print(f"demo generate --scale {args.scale}: {spec.persons:,} customers, {spec.days} days")
    print(f"  {result.total_rows:,} landing rows in {result.landing_files} files "
          f"({size / 1e9:.2f} GB), {seconds:.0f} s, {result.total_rows / seconds:,.0f} rows/s")
    for source, rows in sorted(result.rows.items()):
        print(f"  {source:<13} {rows:>12,}")


if __name__ == "__main__":
    main()
