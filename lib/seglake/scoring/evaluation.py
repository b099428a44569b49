"""Scores against the demo's held-back future (truth): orders the pipeline never saw."""

from __future__ import annotations

import datetime as dt

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from seglake.truth import customer_persons


def future_roc_auc(spark: SparkSession, scores: DataFrame, identity_map: DataFrame,
                   truth_root: str, start: dt.date, days: int) -> tuple[float, int, int]:
    """ROC-AUC of ``propensity_probability`` for a completed order in the truth's future
    orders in ``[start, start + days)``; with the customers and purchasers counted."""
    future = spark.read.parquet(f"{truth_root}/future_orders").where(
        (F.col("status") == "completed") & (F.col("order_date") >= F.lit(start))
        & (F.col("order_date") < F.lit(start + dt.timedelta(days=days)))) \
        .select("person_id").distinct().withColumn("label", F.lit(1.0))
    frame = scores.join(customer_persons(spark, identity_map, truth_root), "customer_key") \
        .join(future, "person_id", "left").select(
            F.col("propensity_probability").alias("rawPrediction"),
            F.coalesce("label", F.lit(0.0)).alias("label")).persist()
    counts = frame.agg(F.count(F.lit(1)), F.sum("label")).first()
    auc = BinaryClassificationEvaluator().evaluate(frame)
    frame.unpersist()
    return float(auc), counts[0], int(counts[1] or 0)
