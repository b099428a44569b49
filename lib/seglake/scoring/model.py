"""Scores: which columns go in, the tuned random forest and its challengers, the champion, and
what is recorded about each (ROC/PR-AUC, precision/recall/F1 at the best-F1 threshold, lift and
capture by decile, feature importances)."""

from __future__ import annotations

import numpy as np
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import (
    GBTClassifier,
    LogisticRegression,
    MultilayerPerceptronClassifier,
    RandomForestClassifier,
)
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import Imputer, StandardScaler, VectorAssembler
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from seglake.config import ScoringConfig
from seglake.estimators import (  # noqa: F401 (the scoring stage's names for them)
    LABEL,
    NUMERIC,
    PROBABILITY,
    forest_pipeline,
    model_inputs,
    prepared,
    scored,
)

FOREST = "random_forest"


def tuned_forest(train: DataFrame, inputs: list[str], config: ScoringConfig) -> tuple[
        PipelineModel, list[dict]]:
    """Median imputation + assembly + a random forest, tuned by k-fold cross-validation on
    ROC-AUC over the configured grid; returns the best pipeline (refitted on all of ``train``)
    and the mean ROC-AUC of each grid point (None for a grid of one point: fitted directly)."""
    forest = RandomForestClassifier(featuresCol="_features", labelCol=LABEL, seed=config.seed)
    pipeline = forest_pipeline(inputs, forest)
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


def challenger(train: DataFrame, inputs: list[str], family: str, config: ScoringConfig
               ) -> PipelineModel:
    """Median imputation + assembly (+ standard scaling for the linear and neural families)
    + a classifier of ``family``, fitted with fixed settings (the forest alone is tuned)."""
    imputed = [f"_i_{n}" for n in inputs]
    stages = [Imputer(strategy="median", inputCols=inputs, outputCols=imputed),
              VectorAssembler(inputCols=imputed, outputCol="_assembled")]
    if family == "gbt":
        classifier = GBTClassifier(featuresCol="_assembled", labelCol=LABEL, maxDepth=4,
                                   maxIter=config.gbt_iterations, seed=config.seed)
    else:
        stages.append(StandardScaler(inputCol="_assembled", outputCol="_scaled", withMean=True))
        if family == "logistic":
            classifier = LogisticRegression(featuresCol="_scaled", labelCol=LABEL,
                                            regParam=0.01, maxIter=100)
        elif family == "mlp":
            classifier = MultilayerPerceptronClassifier(
                featuresCol="_scaled", labelCol=LABEL, layers=[len(inputs), 16, 2],
                maxIter=200, seed=config.seed)
        else:
            raise ValueError(f"unknown model family {family!r}")
    return Pipeline(stages=[*stages, classifier]).fit(train)


def contest(train: DataFrame, holdout: DataFrame, inputs: list[str], config: ScoringConfig
            ) -> tuple[str, dict[str, PipelineModel], dict[str, dict], list[dict]]:
    """The tuned forest and each challenger fitted on ``train`` and measured on ``holdout``:
    (the champion's family, the models, each one's evaluation, the forest's grid)."""
    forest, grid = tuned_forest(train, inputs, config)
    models = {FOREST: forest}
    for family in config.challengers:
        models[family] = challenger(train, inputs, family, config)
    measured = {family: evaluation(model, holdout, inputs) for family, model in models.items()}
    best = max(measured, key=lambda f: (measured[f][config.champion_metric],
                                        -list(models).index(f)))
    return best, models, measured, grid


def candidates(measured: dict[str, dict], champion: str) -> list[dict]:
    """What ``ops.models`` keeps about every model of a contest."""
    return [{"family": family, "champion": family == champion,
             **{k: m[k] for k in ("roc_auc", "pr_auc", "f1", "precision", "recall")},
             "top_decile_lift": m["deciles"][0]["lift"] if m["deciles"] else None}
            for family, m in measured.items()]


def curves(probability: np.ndarray, label: np.ndarray) -> dict[str, np.ndarray]:
    """Per distinct score, highest first, the cumulative true and false positives of
    predicting 1 at or above it: the points of Spark's BinaryClassificationMetrics
    (unbinned)."""
    order = np.argsort(-probability, kind="stable")
    p, y = probability[order], label[order]
    last = np.r_[p[1:] != p[:-1], True]  # the last row of each distinct score
    tp = np.cumsum(y)[last]
    fp = np.cumsum(1 - y)[last]
    return {"threshold": p[last], "tp": tp, "fp": fp}


def evaluation(model: PipelineModel, holdout: DataFrame, inputs: list[str]) -> dict:
    """What is recorded about ``model`` on labelled rows it was not trained on. The holdout is
    a share of the bounded fit sample (``scoring.fit_sample``): its predictions are collected
    once and measured on the driver."""
    rows = scored(model, holdout).select("customer_key", PROBABILITY, LABEL).collect()
    return {**holdout_metrics(np.array([r[PROBABILITY] for r in rows], dtype=float),
                              np.array([r[LABEL] for r in rows], dtype=float),
                              [r["customer_key"] for r in rows]),
            "importances": importances(model, inputs)}


def importances(model: PipelineModel, inputs: list[str]) -> dict[str, float]:
    """Trees: their feature importances; logistic regression: the absolute coefficients of
    the scaled inputs, normalised to sum 1; a perceptron: none. Largest first."""
    last = model.stages[-1]
    if hasattr(last, "featureImportances"):
        values = last.featureImportances.toArray()
    elif hasattr(last, "coefficients"):
        values = np.abs(last.coefficients.toArray())
        values = values / values.sum() if values.sum() else values
    else:
        return {}
    return dict(sorted(zip(inputs, map(float, values), strict=True), key=lambda kv: -kv[1]))


def holdout_metrics(probability: np.ndarray, label: np.ndarray, keys: list[str]) -> dict:
    """ROC-AUC and PR-AUC as Spark's BinaryClassificationMetrics computes them (unbinned),
    precision, recall and F1 at the best-F1 threshold, deciles and the ROC curve."""
    n, positives = len(label), float(label.sum())
    c = curves(probability, label)
    tpr = c["tp"] / positives if positives else np.zeros(len(c["tp"]))
    fpr = c["fp"] / (n - positives) if n - positives else np.zeros(len(c["fp"]))
    roc = np.r_[[[0.0, 0.0]], np.c_[fpr, tpr], [[1.0, 1.0]]]
    precision_at = c["tp"] / (c["tp"] + c["fp"])
    pr = np.r_[[[0.0, precision_at[0] if n else 1.0]], np.c_[tpr, precision_at]]
    f1_at = np.where(precision_at + tpr > 0,
                     2 * precision_at * tpr / np.maximum(precision_at + tpr, 1e-300), 0.0)
    best = int(np.lexsort((c["threshold"], -f1_at))[0]) if n else 0  # ties: lowest threshold
    threshold = float(c["threshold"][best]) if n else 0.5
    precision = float(precision_at[best]) if n else 0.0
    recall = float(tpr[best]) if n else 0.0
    points = [(float(a), float(b)) for a, b in roc]
    return {
        "holdout_rows": n, "holdout_positives": int(positives),
        "roc_auc": float(np.trapezoid(roc[:, 1], roc[:, 0])),
        "pr_auc": float(np.trapezoid(pr[:, 1], pr[:, 0])),
        "threshold": threshold, "precision": precision, "recall": recall,
        "f1": float(f1_at[best]) if n else 0.0,
        "deciles": deciles(probability, label, keys),
        "roc_curve": points[:: max(1, len(points) // 200)],
    }


def deciles(probability: np.ndarray, label: np.ndarray, keys: list[str]) -> list[dict]:
    """Per decile of the probability (1 = highest; ties in customer key order; sizes as
    Spark's ``ntile(10)``): customers, positives, lift over the base rate and cumulative
    capture of all positives."""
    order = sorted(range(len(keys)), key=lambda i: (-probability[i], keys[i]))
    base_size, extra = divmod(len(order), 10)
    sizes = [base_size + (1 if d < extra else 0) for d in range(10)]
    total = len(order) or 1
    positives = float(label.sum())
    base = positives / total
    out, captured, at = [], 0, 0
    for d, size in enumerate(sizes, 1):
        if not size:
            continue
        hits = int(label[order[at:at + size]].sum())
        at += size
        captured += hits
        rate = hits / size
        out.append({"decile": d, "customers": size, "positives": hits, "rate": rate,
                    "lift": rate / base if base else 0.0,
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
