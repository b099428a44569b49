"""``seglake score``: purchase propensity and churn, trained by time split and scored at
``as_of``.

Training rows are the features at ``as_of - horizon`` (computed from silver, not written, when
``gold.customer_features`` lacks that date: only the features stage writes that table),
labelled by what the silver orders say happened in the ``horizon`` days from there up to
``as_of``: propensity = a completed purchase (every known customer), churn = none (customers who
had bought before). A random forest is tuned by cross-validation on part of them (of at most
``scoring.fit_sample``, a seeded sample beyond it); the rest measure it. Every customer of the
features at ``as_of`` is then scored: probability, score 0-100 and tier. Writes
``gold.customer_scores`` (partitioned by ``as_of``, a re-run replaces its date); each model is
saved under ``<lakehouse>/_models/<kind>/v<version>`` and recorded in ``ops.models``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from seglake.behaviour import activity, cutoff, feature_catalogue, features_of, silver_sources
from seglake.behaviour.inputs import KEYED, TIME_COLUMN
from seglake.config import SeglakeConfig
from seglake.declarations import (
    FEATURES,
    ORDER_LINES,
    PRODUCTS,
    RECOMMENDATIONS,
    RULE_SEGMENTS,
    SCORES,
)
from seglake.lakehouse import Lakehouse
from seglake.models import (
    fit_sample,
    fitting_layout,
    informative,
    latest_version,
    model_path,
    record_model,
    spread,
    unflagged,
)
from seglake.runlog import RunLog
from seglake.scoring import model as rf
from seglake.scoring import recommend as rec

log = logging.getLogger(__name__)

TARGETS = ("propensity", "churn")


class ScoreError(RuntimeError):
    """Scores cannot be made: missing features, too few labels, bad configuration."""


@dataclass
class ModelResult:
    kind: str
    version: int
    trained_on: int
    positives: int
    metrics: dict


@dataclass
class ScoreResult:
    run_id: str
    as_of: dt.date
    trained_as_of: dt.date
    rows: int
    models: dict[str, ModelResult]
    tiers: dict[str, dict[str, int]]
    seconds: float
    recommendation: ModelResult | None = None


def purchasers(lakehouse: Lakehouse, start: dt.date, end: dt.date) -> DataFrame:
    """``customer_key`` of every customer with a completed order in ``[start, end)``."""
    orders = activity(silver_sources(lakehouse), end).orders
    return orders.where((F.col("ordered_at") >= cutoff(start)) & (F.col("status") == "completed")
                        & F.col("customer_key").isNotNull()).select("customer_key").distinct()


def training_features(lakehouse: Lakehouse, config: SeglakeConfig,
                      as_of: dt.date) -> DataFrame:
    """The features at a past ``as_of``, point in time, computed once (kept in memory)."""
    sources = silver_sources(lakehouse)
    if not any(getattr(sources, name).where(F.col(TIME_COLUMN[name]) < cutoff(as_of))
               .limit(1).count() for name in KEYED):
        raise ScoreError(f"training features as of {as_of} (as_of minus scoring.horizon_days "
                         f"{config.scoring.horizon_days}) cannot be built: no order, event or "
                         "email event before that date; use a shorter horizon or more history")
    act = activity(sources, as_of).persist()
    # computed once and cut from its plan: the many queries of training and measuring would
    # otherwise each re-plan the wide features computation
    past = features_of(act, config.features).localCheckpoint()
    act.unpersist()
    return past


def labelled(features: DataFrame, buyers: DataFrame, inputs: list[str]) -> dict[str, DataFrame]:
    """Training rows of each target: the inputs and ``label`` (1 = purchased / churned)."""
    known = features.where(~F.col("is_anonymous"))
    flagged = known.join(buyers.withColumn("_bought", F.lit(1.0)), "customer_key", "left") \
        .withColumn("_bought", F.coalesce("_bought", F.lit(0.0)))
    return {
        "propensity": rf.prepared(flagged, inputs).join(
            flagged.select("customer_key", F.col("_bought").alias(rf.LABEL)), "customer_key"),
        "churn": rf.prepared(flagged.where(F.col("orders_total") > 0), inputs).join(
            flagged.select("customer_key", (1.0 - F.col("_bought")).alias(rf.LABEL)),
            "customer_key"),
    }


def run_score(spark: SparkSession, config: SeglakeConfig, as_of: dt.date | None = None,
              runlog: RunLog | None = None) -> ScoreResult:
    """Train both models by time split and score every customer at ``as_of`` (default: the
    latest features)."""
    started = time.monotonic()
    conf = config.scoring
    try:
        inputs = rf.model_inputs(feature_catalogue(config.features), conf)
    except ValueError as exc:
        raise ScoreError(str(exc)) from None
    lakehouse = Lakehouse.from_config(spark, config)
    if not lakehouse.exists(FEATURES):
        raise ScoreError(f"{FEATURES} does not exist: run `seglake features` first")
    if as_of is None:
        as_of = lakehouse.read(FEATURES).agg(F.max("as_of")).first()[0]
    trained_as_of = as_of - dt.timedelta(days=conf.horizon_days)
    runlog = runlog or RunLog(lakehouse, "score")
    dates = {r[0] for r in lakehouse.read(FEATURES).select("as_of").distinct().collect()}
    if as_of not in dates:
        raise ScoreError(f"{FEATURES} has no rows as of {as_of}: run "
                         f"`seglake features --as-of {as_of}` first")
    features = lakehouse.read(FEATURES)
    if trained_as_of in dates:
        past = features.where(F.col("as_of") == F.lit(trained_as_of))
    else:
        log.info("score: computing the training features as of %s (%d days before %s) from "
                 "silver", trained_as_of, conf.horizon_days, as_of)
        past = training_features(lakehouse, config, trained_as_of)
    now = features.where((F.col("as_of") == F.lit(as_of)) & ~F.col("is_anonymous")).persist()
    buyers = purchasers(lakehouse, trained_as_of, as_of).persist()
    data_versions = {FEATURES: lakehouse.version(FEATURES)}
    # bots and outliers flagged as of the scored date are not trained on (still scored)
    frames = labelled(unflagged(past, lakehouse, config.flags, as_of), buyers, inputs)
    models, scored_frames = {}, []
    for kind in TARGETS:
        # the labels and the inputs' spread in one pass over the training rows
        summary = frames[kind].agg(F.count(F.lit(1)).alias("_rows"),
                                   F.sum(rf.LABEL).alias("_positives"), *spread(inputs)) \
            .first().asDict()
        n, positives = summary["_rows"], int(summary["_positives"] or 0)
        if positives < conf.num_folds * 2 or n - positives < conf.num_folds * 2:
            raise ScoreError(f"{kind}: {positives} positive and {n - positives} negative "
                             f"labels as of {trained_as_of} (horizon {conf.horizon_days} days) "
                             "are too few to train and measure a model: use a longer horizon "
                             "or more data")
        used, dropped = informative(summary, inputs)
        if not used:
            raise ScoreError(f"{kind}: no model input varies as of {trained_as_of}; see "
                             "scoring.features")
        if dropped:
            log.warning("score: %s: inputs null or constant as of %s left out: %s", kind,
                        trained_as_of, ", ".join(dropped))
        frame = fitting_layout(frames[kind], n)
        if n > conf.fit_sample:  # trained and measured on a bounded sample; everyone is scored
            frame = fit_sample(frame, n, conf.fit_sample, conf.seed).localCheckpoint()
            sampled = frame.agg(F.count(F.lit(1)), F.sum(rf.LABEL)).first()
            log.info("score: %s trained on a sample of %d of %d labelled customers "
                     "(scoring.fit_sample %d)", kind, sampled[0], n, conf.fit_sample)
            sampled = (sampled[0], int(sampled[1] or 0))
            if min(sampled[1], sampled[0] - sampled[1]) < conf.num_folds * 2:
                raise ScoreError(f"{kind}: the sample of {sampled[0]} labelled customers holds "
                                 f"{sampled[1]} positive and {sampled[0] - sampled[1]} negative "
                                 "labels: too few to train and measure a model; raise "
                                 "scoring.fit_sample")
        else:
            frame, sampled = frame.localCheckpoint(), (n, positives)
        train, holdout = frame.randomSplit([1 - conf.holdout_fraction, conf.holdout_fraction],
                                           seed=conf.seed)
        family, fitted, measured, grid = rf.contest(train, holdout, used, conf)
        model = fitted[family]
        metrics = {"as_of": as_of, "trained_as_of": trained_as_of, "labelled": n,
                   "positives": positives, "fitted_on": sampled[0],
                   "fitted_positives": sampled[1], "grid": grid, "inputs_left_out": dropped,
                   **measured[family], "family": family,
                   "champion_metric": conf.champion_metric,
                   "candidates": rf.candidates(measured, family)}
        version = latest_version(lakehouse, kind) + 1
        path = model_path(lakehouse, kind, version)
        model.write().overwrite().save(path)
        record_model(lakehouse, kind, runlog.run_id,
                     params={**conf.model_dump(), "inputs": used}, metrics=metrics,
                     data_versions=data_versions, artifact=json.dumps({"pipeline": path}),
                     tracking=config.tracking, models=fitted, model_metrics=measured,
                     champion=family, champion_metric=conf.champion_metric)
        log.info("score: %s model v%d (%s): %d labelled (%d positive), holdout ROC-AUC %.3f, "
                 "PR-AUC %.3f, F1 %.3f at %.3f; challengers %s (%.1f s)", kind, version,
                 family, n, positives, metrics["roc_auc"], metrics["pr_auc"], metrics["f1"],
                 metrics["threshold"], ", ".join(
                     f"{c['family']} {c[conf.champion_metric]:.3f}"
                     for c in metrics["candidates"] if not c["champion"]) or "none",
                 time.monotonic() - started)
        models[kind] = ModelResult(kind, version, n, positives, metrics)
        population = now if kind == "propensity" else now.where(F.col("orders_total") > 0)
        probability = f"{kind}_probability"
        out = rf.scored(model, rf.prepared(population, used)) \
            .select("customer_key", F.col(rf.PROBABILITY).alias(probability))
        score, tier = rf.tiered(out, probability, conf.tiers)
        scored_frames.append(out.select("customer_key", probability,
                                        score.alias(f"{kind}_score"), tier.alias(f"{kind}_tier"),
                                        F.lit(version).cast("bigint").alias(f"{kind}_version")))
        frame.unpersist()
    result = scored_frames[0].join(scored_frames[1], "customer_key", "left") \
        .withColumn("as_of", F.lit(as_of)).withColumn("run_id", F.lit(runlog.run_id)).persist()
    rows = result.count()
    tiers = {kind: {r[0]: r[1] for r in result.groupBy(f"{kind}_tier").count().collect()
                    if r[0] is not None} for kind in TARGETS}
    lakehouse.overwrite_as_of(SCORES, result, as_of)
    recommendation = recommend(lakehouse, config, as_of, trained_as_of, now, runlog)
    runlog.record(source=FEATURES, table=SCORES, rows_in=now.count(), rows_out=rows,
                  message=f"as_of {as_of}, trained as of {trained_as_of}: " + ", ".join(
                      f"{k} v{m.version} ROC-AUC {m.metrics['roc_auc']:.3f}"
                      for k, m in models.items()))
    runlog.flush()
    for df in (now, buyers, result, past):
        df.unpersist()
    return ScoreResult(runlog.run_id, as_of, trained_as_of, rows, models, tiers,
                       time.monotonic() - started, recommendation)


RECOMMENDATION = "recommendation"  # its kind in ops.models


def recommend(lakehouse: Lakehouse, config: SeglakeConfig, as_of: dt.date,
              trained_as_of: dt.date, customers: DataFrame, runlog: RunLog) -> ModelResult:
    """Next best categories and send times of ``customers`` as of ``as_of`` into
    ``gold.customer_recommendations``; the model is measured first by the same fit made at
    ``trained_as_of`` against each customer's first order after it (hit rate at top_k, against
    the customer's own history and the most popular categories)."""
    started = time.monotonic()
    conf = config.recommendations
    sources = silver_sources(lakehouse)
    lines = lakehouse.read(ORDER_LINES) if lakehouse.exists(ORDER_LINES) else None
    products = lakehouse.read(PRODUCTS).select("product_id", "category") \
        if lakehouse.exists(PRODUCTS) else None
    if products is None:
        lines = None  # an order line's category comes from the product catalogue
    seed = config.scoring.seed

    def fitted(day: dt.date):
        act = activity(sources, day)
        strengths = rec.interactions(act.events, act.orders, lines, products, day,
                                     conf).persist()
        fit_on = unflagged(strengths, lakehouse, config.flags, as_of)
        if fit_on.limit(1).count() == 0:  # no category in any event or order line
            return act, strengths, None, None, []
        return (act, strengths, *rec.fit_categories(fit_on, conf, seed))

    k = conf.top_k
    metrics: dict = {"as_of": as_of, "trained_as_of": trained_as_of, "top_k": k}
    act, strengths, model, users, categories = fitted(as_of)
    if model is None:
        log.warning("score: no event or order line before %s names a product category: no "
                    "next categories (send times only)", as_of)
    elif lines is not None:
        _, past, past_model, past_users, past_categories = fitted(trained_as_of)
        actual = rec.next_categories(act.orders, lines, products, trained_as_of,
                                     as_of).persist()
        judged = actual.select("customer_key").distinct()
        made = rec.recommended(judged, past, past_model, past_users, past_categories, k)
        popular = F.array(*[F.lit(c) for c in rec.popular(past, k)])
        baseline = judged.join(rec.ranked(past, k), "customer_key", "left").select(
            "customer_key", F.coalesce("categories", popular).alias("categories"))
        metrics["hit_rate"], metrics["judged"] = rec.hit_rate(made, actual)
        metrics["hit_rate_history"] = rec.hit_rate(baseline, actual)[0]
        metrics["hit_rate_popular"] = rec.hit_rate(
            judged.select("customer_key", popular.alias("categories")), actual)[0]
        actual.unpersist()
        past.unpersist()
        log.info("score: next categories made as of %s: hit rate at %d %.3f on the %d "
                 "customers who ordered by %s (own history %.3f, most popular %.3f)",
                 trained_as_of, k, metrics["hit_rate"], metrics["judged"], as_of,
                 metrics["hit_rate_history"], metrics["hit_rate_popular"])
    else:
        log.warning("score: no order lines or product catalogue: next categories come from "
                    "browsing alone and are not measured")
    metrics["categories"] = categories
    version = latest_version(lakehouse, RECOMMENDATION) + 1
    path = model_path(lakehouse, RECOMMENDATION, version) if model is not None else None
    if model is not None:
        model.write().overwrite().save(path)
    record_model(lakehouse, RECOMMENDATION, runlog.run_id, params=conf.model_dump(),
                 metrics=metrics, data_versions={name: lakehouse.version(name) for name in
                                                 ("silver.events", "silver.orders")
                                                 if lakehouse.exists(name)},
                 artifact=json.dumps({"als": path, "categories": categories}),
                 tracking=config.tracking, models={"als": model} if model is not None else None)
    groups = None
    if lakehouse.exists(RULE_SEGMENTS):
        groups = lakehouse.read(RULE_SEGMENTS).where(F.col("as_of") == F.lit(as_of)) \
            .select("customer_key", F.col("rule_segment").alias("group"))
    known = customers.select("customer_key")
    out = rec.recommended(known, strengths, model, users, categories, k).join(
        rec.send_times(act.events, act.email_events, groups, known, as_of, conf,
                       config.refine.timezone), "customer_key") \
        .withColumn("model_version", F.lit(version).cast("bigint")) \
        .withColumn("as_of", F.lit(as_of)).withColumn("run_id", F.lit(runlog.run_id)) \
        .localCheckpoint()
    lakehouse.overwrite_as_of(RECOMMENDATIONS, out, as_of)
    by_basis = dict(out.groupBy("category_basis").count().collect())
    rows = sum(by_basis.values())
    runlog.record(source=FEATURES, table=RECOMMENDATIONS, rows_in=rows, rows_out=rows,
                  message=f"as_of {as_of}: model v{version}, " + ", ".join(
                      f"{n} {b}" for b, n in sorted(by_basis.items()))
                  + (f"; hit rate at {k} {metrics['hit_rate']:.3f} (popular "
                     f"{metrics['hit_rate_popular']:.3f})" if "hit_rate" in metrics else ""))
    strengths.unpersist()
    if users is not None:
        users.unpersist()
    log.info("score: recommendations of %d customers as of %s (%s) (%.1f s)", rows, as_of,
             ", ".join(f"{n} {b}" for b, n in sorted(by_basis.items())),
             time.monotonic() - started)
    return ModelResult(RECOMMENDATION, version, rows, 0, metrics)
