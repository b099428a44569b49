"""Pairwise precision and recall of record clustering against a ground truth, counted per group
(n records in a group make n(n-1)/2 pairs) so no pair is ever materialised."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


@dataclass(frozen=True)
class PairScores:
    true_positives: int
    predicted_pairs: int
    true_pairs: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.true_pairs if self.true_pairs else 1.0


def _pairs(df: DataFrame, *by: str) -> int:
    n = F.col("n")
    counted = df.groupBy(*by).agg(F.count("*").alias("n"))
    return int(counted.agg(F.sum(n * (n - 1) / 2)).first()[0] or 0)


def pair_scores(predicted: DataFrame, truth: DataFrame) -> PairScores:
    """``predicted`` (record_key, customer_key) against ``truth`` (record_key, person_id), over
    the records both hold."""
    both = predicted.join(truth, "record_key")
    return PairScores(_pairs(both, "customer_key", "person_id"), _pairs(both, "customer_key"),
                      _pairs(both, "person_id"))
