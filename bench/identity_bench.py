"""Identity-resolution benchmark: time to resolve, candidate pairs, and pairwise precision and
recall of CRM de-duplication against the demo truth, at two scales and how they grow.

Usage: python bench/identity_bench.py [--scales small,medium] [--engines duckdb,spark]
[--out bench/out/identity]
Each scale's world is generated, ingested and refined under ``<out>/<scale>`` (reused when it
holds that scale already); only ``seglake resolve`` is timed, once per Splink engine.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from common import peak_rss_mb, refined_world, reset_peak_rss
from pyspark.sql import functions as F

from seglake.config import SeglakeConfig
from seglake.identity import run_resolve
from seglake.identity.evaluation import pair_scores
from seglake.lakehouse import Lakehouse
from seglake.session import get_spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default="small,medium")
    parser.add_argument("--engines", default="duckdb,spark",
                        help="identity.engine values to time (auto, spark, duckdb)")
    parser.add_argument("--out", default="bench/out/identity")
    args = parser.parse_args()
    figures = []
    spark = None
    for scale in args.scales.split(","):
        out = Path(args.out) / scale
        base = SeglakeConfig.model_validate({"spark": {"master": "local[*]"}})
        spark = spark or get_spark(base)
        for engine in args.engines.split(","):
            refined = refined_world(spark, scale, out)  # each engine from unresolved silver
            config = refined.model_copy(update={"identity": refined.identity.model_copy(
                update={"engine": engine})})
            reset_peak_rss()
            started = time.monotonic()
            result = run_resolve(spark, config)
            seconds = time.monotonic() - started
            peak = peak_rss_mb()
            lakehouse = Lakehouse.from_config(spark, config)
            predicted = lakehouse.read("silver.identity_map").where("id_kind = 'record_key'") \
                .select(F.col("id_value").alias("record_key"), "customer_key")
            truth = spark.read.parquet(f"{config.truth.root}/crm_records").select(
                F.concat_ws(":", "system", "crm_id").alias("record_key"), "person_id")
            figures.append((scale, engine, result, seconds, pair_scores(predicted, truth), peak))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Spark {spark.version} "
          f"{spark.sparkContext.master}")
    print(f"{'scale':<8} {'engine':<7} {'records':>9} {'customers':>10} "
          f"{'candidate pairs':>16} {'all pairs':>15} {'resolve s':>10} {'precision':>10} "
          f"{'recall':>8} {'python MB':>10}")
    for scale, engine, r, seconds, s, peak in figures:
        print(f"{scale:<8} {engine:<7} {r.records:>9,} {r.crm_customers:>10,} "
              f"{r.candidate_pairs:>16,} {r.records * (r.records - 1) // 2:>15,} "
              f"{seconds:>10.1f} {s.precision:>10.4f} {s.recall:>8.4f} "
              f"{f'{peak:,.0f}' if peak else '-':>10}")
    print("python MB: peak resident memory of the Python driver during resolve (DuckDB, pandas "
          "and Arrow live there; the JVM is another process)")
    print("targets at medium: precision >= 0.98, recall >= 0.95")
    for engine in args.engines.split(","):
        runs = [f for f in figures if f[1] == engine]
        if len(runs) > 1:
            (a, _, ra, sa, _, _), (b, _, rb, sb, _, _) = runs[0], runs[-1]
            print(f"{engine}: {a} -> {b}: records x{rb.records / ra.records:.1f}, candidate "
                  f"pairs x{rb.candidate_pairs / ra.candidate_pairs:.1f}, resolve time "
                  f"x{sb / sa:.1f} (linear would match the records' factor)")


if __name__ == "__main__":
    main()
