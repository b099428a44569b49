"""Random-forest scores: which columns go in, the tuned pipeline, and what is recorded about it
(ROC/PR-AUC, precision/recall/F1 at the best-F1 threshold, lift and capture by decile,
feature importances)."""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import RandomForestClassifier
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import Imputer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder
from pyspark.sql import DataFrame, Window
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


def tuned_forest(train: DataFrame, inputs: list[str], config: ScoringConfig) -> tuple[
        PipelineModel, list[dict]]:
    """Median imputation + assembly + a random forest, tuned by k-fold cross-validation on
    ROC-AUC over the configured grid; returns the best pipeline (refitted on all of ``train``)
    and the mean ROC-AUC of each grid point (None for a grid of one point: fitted directly)."""
    imputed = [f"_i_{n}" for n in inputs]
    forest = RandomForestClassifier(featuresCol="_features", labelCol=LABEL, seed=config.seed)
    pipeline = Pipeline(stages=[
        Imputer(strategy="median", inputCols=inputs, outputCols=imputed),
        VectorAssembler(inputCols=imputed, outputCol="_features"), forest])
    grid = ParamGridBuilder().addGrid(forest.numTrees, config.num_trees) \
        .addGrid(forest.maxDepth, config.max_depth).build()
    if len(grid) == 1:  # nothing to choose: the folds' fits would only be thrown away
        point = grid[0]
        return pipeline.fit(train, point), [{"num_trees": point[forest.numTrees],
                                             "max_depth": point[forest.maxDepth],
                                             "roc_auc": None}]
    cv = CrossValidator(estimator=pipeline, estimatorParamMaps=grid, numFolds=config.num_folds,
                        evaluator=BinaryClassificationEvaluator(labelCol=LABEL),
                        seed=config.seed, parallelism=config.parallelism)
    fitted = cv.fit(train)
    points = [{"num_trees": p[forest.numTrees], "max_depth": p[forest.maxDepth],
               "roc_auc": float(m)} for p, m in zip(grid, fitted.avgMetrics, strict=True)]
    return fitted.bestModel, points


def scored(model: PipelineModel, frame: DataFrame) -> DataFrame:
    """``frame`` with the probability of the positive class as ``probability_1``."""
    return model.transform(frame).withColumn(
        PROBABILITY, vector_to_array(F.col("probability"))[1])


def evaluation(model: PipelineModel, holdout: DataFrame, inputs: list[str]) -> dict:
    """What is recorded about ``model`` on labelled rows it was not trained on."""
    predictions = scored(model, holdout).persist()
    summary = model.stages[-1].evaluate(predictions.drop("prediction", "probability",
                                                         "rawPrediction"))
    f1 = summary.fMeasureByThreshold.orderBy(F.desc("F-Measure"), "threshold").first()
    threshold = float(f1["threshold"])
    counts = predictions.agg(
        F.count(F.lit(1)).alias("n"), F.sum(LABEL).alias("positives"),
        F.sum(F.when((F.col(PROBABILITY) >= threshold) & (F.col(LABEL) == 1), 1).otherwise(0))
        .alias("tp"),
        F.sum(F.when(F.col(PROBABILITY) >= threshold, 1).otherwise(0)).alias("predicted"),
    ).first()
    precision = counts["tp"] / counts["predicted"] if counts["predicted"] else 0.0
    recall = counts["tp"] / counts["positives"] if counts["positives"] else 0.0
    roc = [(float(r["FPR"]), float(r["TPR"])) for r in summary.roc.collect()]
    forest = model.stages[-1]
    importances = sorted(zip(inputs, forest.featureImportances.toArray().tolist(), strict=True),
                         key=lambda kv: -kv[1])
    out = {
        "holdout_rows": counts["n"], "holdout_positives": int(counts["positives"] or 0),
        "roc_auc": float(summary.areaUnderROC),
        "pr_auc": float(BinaryClassificationEvaluator(
            labelCol=LABEL, metricName="areaUnderPR").evaluate(predictions)),
        "threshold": threshold, "precision": precision, "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "deciles": deciles(predictions),
        "importances": {n: v for n, v in importances},
        "roc_curve": roc[:: max(1, len(roc) // 200)],
    }
    predictions.unpersist()
    return out


def deciles(predictions: DataFrame) -> list[dict]:
    """Per decile of ``probability_1`` (1 = highest): customers, positives, lift over the base
    rate and cumulative capture of all positives."""
    ranked = predictions.withColumn(
        "decile", F.ntile(10).over(Window.orderBy(F.desc(PROBABILITY), "customer_key")))
    rows = ranked.groupBy("decile").agg(F.count(F.lit(1)).alias("n"),
                                        F.sum(LABEL).alias("positives")).orderBy("decile") \
        .collect()
    total = sum(r["n"] for r in rows) or 1
    positives = sum(r["positives"] or 0 for r in rows)
    base = positives / total if total else 0.0
    out, captured = [], 0
    for r in rows:
        captured += r["positives"] or 0
        rate = (r["positives"] or 0) / r["n"] if r["n"] else 0.0
        out.append({"decile": r["decile"], "customers": r["n"], "positives": r["positives"] or 0,
                    "rate": rate, "lift": rate / base if base else 0.0,
                    "capture": captured / positives if positives else 0.0})
    return out


def tiered(frame: DataFrame, probability: str, tiers: dict[str, float]) -> tuple:
    """Score 0-100 and tier columns: the tier is the first whose lowest percentile rank the
    customer's rank reaches."""
    rank = F.percent_rank().over(Window.orderBy(probability))
    tier = None
    for name, bound in tiers.items():
        tier = F.when(rank >= bound, name) if tier is None else tier.when(rank >= bound, name)
    return F.round(F.col(probability) * 100).cast("int"), tier
