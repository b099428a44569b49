"""Whom does a campaign move? A two-model uplift learner — a random forest on the treatment
group and one on the holdout, uplift = the difference of their conversion probabilities —,
its cross-fitted predictions (each member scored by models that did not see it) and the Qini
curve that judges a ranking on treatment/holdout outcomes.

Propensity answers "who will buy"; uplift "who buys because of the campaign": a customer who
buys anyway is a wasted send, one who never reads email is not moved either.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

from pyspark.ml import PipelineModel
from pyspark.ml.classification import RandomForestClassifier
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from seglake import estimators as rf
from seglake.activation import HOLDOUT, TREATMENT

LABEL = rf.LABEL
UPLIFT = "uplift"
TREATED = "treatment_probability"
UNTREATED = "holdout_probability"


@dataclass(frozen=True)
class ForestSettings:
    trees: int
    depth: int
    seed: int


@dataclass
class TwoModels:
    """The fitted group models; a group with fewer than two members of a class keeps its
    rate (a forest needs both classes)."""
    treatment: PipelineModel | float
    holdout: PipelineModel | float

    def pipelines(self) -> dict[str, PipelineModel]:
        return {name: m for name, m in (("treatment", self.treatment),
                                        ("holdout", self.holdout))
                if isinstance(m, PipelineModel)}


def group_model(rows: DataFrame, inputs: list[str], settings: ForestSettings
                ) -> PipelineModel | float:
    """A forest of the chance of ``label`` in ``rows``, or its rate when a class is missing."""
    n, positives = rows.agg(F.count(F.lit(1)), F.sum(LABEL)).first()
    positives = int(positives or 0)
    if positives < 2 or n - positives < 2:
        return positives / n if n else 0.0
    forest = RandomForestClassifier(featuresCol="_features", labelCol=LABEL,
                                    numTrees=settings.trees, maxDepth=settings.depth,
                                    minInstancesPerNode=5, seed=settings.seed)
    return rf.forest_pipeline(inputs, forest).fit(rows)


def fitted(train: DataFrame, inputs: list[str], settings: ForestSettings) -> TwoModels:
    """The two group models of ``train`` (``group``, ``label`` and the inputs)."""
    return TwoModels(group_model(train.where(F.col("group") == TREATMENT), inputs, settings),
                     group_model(train.where(F.col("group") == HOLDOUT), inputs, settings))


def _probability(model: PipelineModel | float, frame: DataFrame, name: str) -> DataFrame:
    if not isinstance(model, PipelineModel):
        return frame.withColumn(name, F.lit(float(model)))
    return rf.scored(model, frame).select(*frame.columns, F.col(rf.PROBABILITY).alias(name))


def predicted(models: TwoModels, frame: DataFrame) -> DataFrame:
    """``frame`` with both groups' probabilities and their difference, ``uplift``."""
    out = _probability(models.holdout, _probability(models.treatment, frame, TREATED),
                       UNTREATED)
    return out.withColumn(UPLIFT, F.col(TREATED) - F.col(UNTREATED))


def out_of_fold(frame: DataFrame, inputs: list[str], settings: ForestSettings, folds: int
                ) -> DataFrame:
    """Every row of ``frame`` predicted by the models fitted on the other folds (folds drawn
    from ``customer_key``): an honest ranking of the members the models learnt from."""
    fold = F.pmod(F.xxhash64(F.lit(settings.seed), F.col("customer_key")), F.lit(folds))
    frame = frame.withColumn("_fold", fold)
    parts = [predicted(fitted(frame.where(F.col("_fold") != k), inputs, settings),
                       frame.where(F.col("_fold") == k)) for k in range(folds)]
    return reduce(DataFrame.unionByName, parts).drop("_fold")


def _ranked(frame: DataFrame, score: str, sums: dict[str, Column], bins: int
            ) -> list[dict[str, float]]:
    """Cumulative ``sums`` over the rows ranked by ``score``, highest first, at about ``bins``
    quantile steps (approximate quantiles: it scales; ties stay together)."""
    cuts = sorted(set(frame.approxQuantile(score, [i / bins for i in range(1, bins)], 0.001)))
    bucket = sum((F.when(F.col(score) <= c, 1).otherwise(0) for c in cuts), F.lit(0))
    rows = frame.where(F.col(score).isNotNull()).groupBy(bucket.alias("_b")).agg(
        F.count(F.lit(1)).alias("n"), *[expr.alias(name) for name, expr in sums.items()]) \
        .orderBy("_b").collect()
    running = dict.fromkeys(["n", *sums], 0.0)
    out = []
    for r in rows:
        for name in running:
            running[name] += float(r[name] or 0)
        out.append(dict(running))
    return out


def qini_curve(frame: DataFrame, score: str, bins: int = 10) -> list[dict[str, float]]:
    """The Qini curve of ranking ``frame`` (``group``, ``label``) by ``score``: at each top
    ``share`` of members, the incremental conversions ``Y_T - Y_H * N_T / N_H`` per treatment
    member of the whole segment, and the observed ``uplift`` (rate difference) in that top."""
    treated, held = F.col("group") == TREATMENT, F.col("group") == HOLDOUT
    steps = _ranked(frame, score, {
        "n_t": F.sum(treated.cast("int")), "n_h": F.sum(held.cast("int")),
        "y_t": F.sum(F.when(treated, F.col(LABEL)).otherwise(0)),
        "y_h": F.sum(F.when(held, F.col(LABEL)).otherwise(0))}, bins)
    if not steps:
        return []
    total, n_t = steps[-1]["n"], steps[-1]["n_t"] or 1.0
    curve = [{"share": 0.0, "qini": 0.0, "uplift": None, "members": 0}]
    for s in steps:
        qini = s["y_t"] - (s["y_h"] * s["n_t"] / s["n_h"] if s["n_h"] else 0.0)
        uplift = s["y_t"] / s["n_t"] - s["y_h"] / s["n_h"] if s["n_t"] and s["n_h"] else None
        curve.append({"share": s["n"] / total, "qini": qini / n_t, "uplift": uplift,
                      "members": int(s["n"])})
    return curve


def area_over_random(curve: list[dict[str, float]], value: str = "qini") -> float:
    """Area between a cumulative curve and the random ranking's straight line to its end: the
    Qini coefficient for a Qini curve (0: no better than random)."""
    if len(curve) < 2:
        return 0.0
    end = curve[-1][value]
    area = 0.0
    for a, b in zip(curve, curve[1:], strict=False):
        gap_a, gap_b = a[value] - a["share"] * end, b[value] - b["share"] * end
        area += (b["share"] - a["share"]) * (gap_a + gap_b) / 2
    return area


def gain_curve(frame: DataFrame, score: str, value: str, bins: int = 10
               ) -> list[dict[str, float]]:
    """At each top ``share`` ranked by ``score``, the share of the total of ``value`` held
    (e.g. of the true effect, where a simulation knows it per customer)."""
    steps = _ranked(frame, score, {"v": F.sum(value)}, bins)
    if not steps:
        return []
    total, whole = steps[-1]["n"], steps[-1]["v"] or 1.0
    return [{"share": 0.0, "gain": 0.0}] + [
        {"share": s["n"] / total, "gain": s["v"] / whole} for s in steps]
