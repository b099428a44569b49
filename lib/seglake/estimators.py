"""Estimator pieces every model of seglake shares — which feature columns go in, their
preparation, the forest pipeline, the positive class's probability — so that stages build
models the same way without importing each other."""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import RandomForestClassifier
from pyspark.ml.feature import Imputer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from seglake.behaviour.catalogue import Feature
from seglake.config import ScoringConfig

LABEL = "label"
PROBABILITY = "probability_1"
NUMERIC = ("int", "bigint", "double", "boolean")


def model_inputs(catalogue: Iterable[Feature], config: ScoringConfig) -> list[str]:
    """The configured inputs, or every numeric and true/false catalogue column; checked
    against the catalogue."""
    catalogue = {f.name: f for f in catalogue}
    chosen = config.features or [n for n, f in catalogue.items()
                                 if f.type in NUMERIC and n != "is_anonymous"]
    unknown = [n for n in [*chosen, *config.exclude] if n not in catalogue]
    if unknown:
        raise ValueError(f"scoring: unknown feature columns {unknown}")
    wrong = [n for n in chosen if catalogue[n].type not in NUMERIC]
    if wrong:
        raise ValueError(f"scoring: columns {wrong} are not numeric or true/false")
    inputs = [n for n in chosen if n not in config.exclude]
    if not inputs:
        raise ValueError("scoring: no model inputs left after scoring.exclude")
    return inputs


def prepared(features: DataFrame, inputs: list[str]) -> DataFrame:
    """``customer_key`` and the inputs as doubles (true/false as 1/0)."""
    return features.select("customer_key", *[F.col(n).cast("double").alias(n) for n in inputs])


def forest_pipeline(inputs: list[str], forest: RandomForestClassifier) -> Pipeline:
    """Median imputation + assembly into ``_features`` + ``forest``: every forest's pipeline."""
    imputed = [f"_i_{n}" for n in inputs]
    return Pipeline(stages=[Imputer(strategy="median", inputCols=inputs, outputCols=imputed),
                            VectorAssembler(inputCols=imputed, outputCol="_features"), forest])


def scored(model: PipelineModel, frame: DataFrame) -> DataFrame:
    """``frame`` with the probability of the positive class as ``probability_1``."""
    return model.transform(frame).withColumn(
        PROBABILITY, vector_to_array(F.col("probability"))[1])
