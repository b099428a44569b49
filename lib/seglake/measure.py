"""``seglake measure``: did activating a segment work? Treatment against holdout on what
happened after the activation date.

The activation date is the day the campaign went out; the groups compared are the latest
``gold.segment_assignments`` on or before it (who was in which group in the export sent).
Outcomes per member over the window that follows: ``conversion`` (a completed order),
``revenue_per_customer`` (net amount of completed orders, 0 without) and ``email_open``
(opened an email). Rates are compared with Newcombe's
hybrid score interval and a two-proportion z test, means with Welch's t (only with
``activation.min_group_size`` members in each group); one row per segment and metric in
``gold.segment_lift`` (a re-run replaces its rows).

Where the campaign moved conversion significantly, an uplift model learns whom it moved
(``seglake.uplift``: features as of the groups' date, the window's conversions), is judged by
the Qini curve of its cross-fitted predictions (and the propensity score's, for comparison),
recorded in ``ops.models`` (kind ``uplift``) and scores the segment's current members into
``gold.customer_uplift``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy import stats

from seglake import estimators as rf
from seglake import uplift as up
from seglake.activation import HOLDOUT, TREATMENT
from seglake.behaviour import activity, cutoff, end_of_data, feature_catalogue, silver_sources
from seglake.config import SeglakeConfig
from seglake.declarations import ASSIGNMENTS, FEATURES, LIFT, SCORES, UPLIFT, declared
from seglake.lakehouse import Lakehouse
from seglake.models import informative_columns, latest_version, model_path, record_model
from seglake.runlog import RunLog, utc_now

log = logging.getLogger(__name__)

RATES = ("conversion", "email_open")
MEANS = ("revenue_per_customer",)


class MeasureError(RuntimeError):
    """Nothing to measure: no assignments, or no outcomes after the activation date."""


@dataclass
class UpliftResult:
    kind: str
    segment: str
    version: int
    n_treatment: int
    n_holdout: int
    qini: float                   # Qini coefficient of the cross-fitted uplift
    qini_propensity: float | None  # of the propensity score at the groups' date, if scored
    scored: int                   # current members written to gold.customer_uplift
    scored_as_of: dt.date
    out_of_fold: DataFrame        # the campaign's members: group, label, cross-fitted uplift


@dataclass
class MeasureResult:
    run_id: str
    activated_on: dt.date
    assigned_as_of: dt.date
    window_days: int
    requested_days: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    uplift: list[UpliftResult] = field(default_factory=list)


def wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def proportion_lift(x_t: int, n_t: int, x_h: int, n_h: int, confidence: float
                    ) -> dict[str, float | None]:
    """Difference of two rates: Newcombe's hybrid score interval (good coverage with small
    groups and rates near 0, where the Wald interval is not) and the pooled two-sided z test."""
    if n_t == 0 or n_h == 0:
        return {"treatment_value": x_t / n_t if n_t else None,
                "holdout_value": x_h / n_h if n_h else None, "difference": None,
                "ci_low": None, "ci_high": None, "p_value": None}
    z = stats.norm.ppf(0.5 + confidence / 2)
    p_t, p_h = x_t / n_t, x_h / n_h
    (l_t, u_t), (l_h, u_h) = wilson(x_t, n_t, z), wilson(x_h, n_h, z)
    d = p_t - p_h
    pooled = (x_t + x_h) / (n_t + n_h)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_h))
    p_value = 1.0 if se0 == 0 else float(2 * stats.norm.sf(abs(d) / se0))
    return {"treatment_value": p_t, "holdout_value": p_h, "difference": d,
            "ci_low": d - math.sqrt((p_t - l_t) ** 2 + (u_h - p_h) ** 2),
            "ci_high": d + math.sqrt((u_t - p_t) ** 2 + (p_h - l_h) ** 2),
            "p_value": p_value}


def mean_lift(n_t: int, sum_t: float, sq_t: float, n_h: int, sum_h: float, sq_h: float,
              confidence: float, min_size: int = 2) -> dict[str, float | None]:
    """Difference of two means from sums and sums of squares: Welch's t interval and test,
    when each group has ``min_size`` members (the difference alone otherwise)."""
    m_t = sum_t / n_t if n_t else None
    m_h = sum_h / n_h if n_h else None
    out: dict[str, float | None] = {"treatment_value": m_t, "holdout_value": m_h,
                                    "difference": None, "ci_low": None, "ci_high": None,
                                    "p_value": None}
    if n_t and n_h:
        out["difference"] = m_t - m_h
    if min(n_t, n_h) < max(min_size, 2):
        return out
    v_t = max(sq_t - n_t * m_t * m_t, 0.0) / (n_t - 1)
    v_h = max(sq_h - n_h * m_h * m_h, 0.0) / (n_h - 1)
    d = m_t - m_h
    a, b = v_t / n_t, v_h / n_h
    se = math.sqrt(a + b)
    if se == 0:
        out.update(ci_low=d, ci_high=d, p_value=1.0 if d == 0 else 0.0)
        return out
    df = (a + b) ** 2 / (a * a / (n_t - 1) + b * b / (n_h - 1))
    t = stats.t.ppf(0.5 + confidence / 2, df)
    out.update(ci_low=float(d - t * se), ci_high=float(d + t * se),
               p_value=float(2 * stats.t.sf(abs(d) / se, df)))
    return out


def member_outcomes(groups: DataFrame, orders: DataFrame, email_events: DataFrame,
                    start: dt.date, end: dt.date) -> DataFrame:
    """One row per member (kind, segment, group, customer_key) with its outcomes over
    ``[start, end)``: orders and email events keyed by ``customer_key``."""
    def window(df: DataFrame, ts: str) -> DataFrame:
        return df.where((F.col(ts) >= cutoff(start)) & (F.col(ts) < cutoff(end))
                        & F.col("customer_key").isNotNull())
    bought = window(orders, "ordered_at").where(F.col("status") == "completed") \
        .groupBy("customer_key").agg(F.lit(1).alias("conversion"),
                                     F.sum("net_amount").alias("revenue_per_customer"))
    opened = window(email_events, "event_ts").where(F.col("event") == "open") \
        .select("customer_key").distinct().withColumn("email_open", F.lit(1))
    return groups.join(bought, "customer_key", "left").join(opened, "customer_key", "left") \
        .fillna(0, subset=["conversion", "email_open"]) \
        .fillna(0.0, subset=["revenue_per_customer"])


def lift_rows(outcomes: DataFrame, confidence: float, min_size: int = 2
              ) -> list[dict[str, Any]]:
    """Per (kind, segment) and metric: both groups' values, difference, interval, p-value."""
    sums = [F.sum(m).alias(m) for m in RATES] + [
        F.sum(m).alias(m) for m in MEANS] + [F.sum(F.col(m) * F.col(m)).alias(f"{m}_sq")
                                             for m in MEANS]
    stats_rows = outcomes.groupBy("kind", "segment", "group").agg(
        F.count(F.lit(1)).alias("n"), *sums).collect()
    by_segment: dict[tuple[str, str], dict[str, Any]] = {}
    for r in stats_rows:
        by_segment.setdefault((r["kind"], r["segment"]), {})[r["group"]] = r.asDict()
    empty = {"n": 0, **dict.fromkeys(RATES, 0), **dict.fromkeys(MEANS, 0.0),
             **{f"{m}_sq": 0.0 for m in MEANS}}
    rows = []
    for (kind, segment), groups in sorted(by_segment.items()):
        t, h = groups.get(TREATMENT, empty), groups.get(HOLDOUT, empty)
        if h["n"] == 0:  # no holdout (share 0): nothing to compare with
            continue
        for metric in RATES:
            figures = proportion_lift(int(t[metric]), t["n"], int(h[metric]), h["n"],
                                      confidence)
            rows.append(_row(kind, segment, metric, t["n"], h["n"], figures,
                             "two-proportion z, Newcombe interval"))
        for metric in MEANS:
            figures = mean_lift(t["n"], float(t[metric]), float(t[f"{metric}_sq"]), h["n"],
                                float(h[metric]), float(h[f"{metric}_sq"]), confidence,
                                min_size)
            method = "Welch t" if min(t["n"], h["n"]) >= max(min_size, 2) \
                else f"none: a group under {min_size} members"
            rows.append(_row(kind, segment, metric, t["n"], h["n"], figures, method))
    return rows


def _row(kind: str, segment: str, metric: str, n_t: int, n_h: int,
         figures: dict[str, float | None], method: str) -> dict[str, Any]:
    d, base = figures["difference"], figures["holdout_value"]
    return {"kind": kind, "segment": segment, "metric": metric, "n_treatment": n_t,
            "n_holdout": n_h, **figures,
            "relative_lift": d / base if d is not None and base else None, "method": method}


def segment_filter(text: str | None) -> tuple[str | None, str | None]:
    """``[KIND:]NAME`` -> (kind or None, name or None)."""
    if not text:
        return None, None
    kind, sep, name = text.partition(":")
    return (kind, name) if sep else (None, text)


def run_measure(spark: SparkSession, config: SeglakeConfig, activated_on: dt.date | None = None,
                window_days: int | None = None, segment: str | None = None,
                runlog: RunLog | None = None) -> MeasureResult:
    """Measure the lift of every segment (or ``segment``) activated on ``activated_on``."""
    started = time.monotonic()
    lakehouse = Lakehouse.from_config(spark, config)
    if not lakehouse.exists(ASSIGNMENTS):
        raise MeasureError(f"{ASSIGNMENTS} does not exist: run `seglake publish` first (it "
                           "assigns every segment member to treatment or holdout)")
    requested = window_days or config.activation.window_days
    sources = silver_sources(lakehouse)
    data_end = end_of_data(sources)
    dates = sorted(r[0] for r in lakehouse.read(ASSIGNMENTS).select("as_of").distinct()
                   .collect())
    if activated_on is None:
        with_outcomes = [d for d in dates if data_end is not None and d < data_end]
        if not with_outcomes:
            raise MeasureError(
                f"no outcomes after any activation date yet: the assignments are as of "
                f"{', '.join(map(str, dates)) or 'nothing'} and the data ends before "
                f"{data_end}; measure once orders after an activation have been ingested "
                "(or pass --activated-on)")
        activated_on = with_outcomes[-1]
    earlier = [d for d in dates if d <= activated_on]
    if not earlier:
        raise MeasureError(f"{ASSIGNMENTS} has no assignments on or before {activated_on}; "
                           f"published dates: {', '.join(map(str, dates))}")
    assigned = earlier[-1]  # the groups the campaign went out to
    end = activated_on + dt.timedelta(days=requested)
    if data_end is None or data_end <= activated_on:
        raise MeasureError(f"no orders, events or email events after {activated_on} yet: "
                           "nothing to measure")
    end = min(end, data_end)
    observed = (end - activated_on).days
    if observed < requested:
        log.warning("measure: only %d of the %d days after %s have data", observed, requested,
                    activated_on)
    kind, name = segment_filter(segment)
    groups = lakehouse.read(ASSIGNMENTS).where(F.col("as_of") == F.lit(assigned))
    if kind:
        groups = groups.where(F.col("kind") == kind)
    if name:
        groups = groups.where(F.col("segment") == name)
    groups = groups.select("customer_key", "kind", "segment", "group")
    act = activity(sources, end)
    outcomes = member_outcomes(groups, act.orders, act.email_events, activated_on, end) \
        .persist()
    rows = lift_rows(outcomes, config.activation.confidence, config.activation.min_group_size)
    if segment and not rows:
        raise MeasureError(f"no segment {segment!r} with a holdout as of {activated_on}")
    runlog = runlog or RunLog(lakehouse, "measure")
    measured_at = utc_now()
    for row in rows:
        row.update(activated_on=activated_on, assigned_as_of=assigned, window_days=observed,
                   confidence=config.activation.confidence, measured_at=measured_at,
                   run_id=runlog.run_id)
    n_members = sum(r["n_treatment"] + r["n_holdout"] for r in rows if r["metric"] == RATES[0])
    if rows:
        table = declared(LIFT)
        frame = spark.createDataFrame(
            [tuple(r.get(c.name) for c in table.columns) for r in rows], table.ddl)
        if lakehouse.exists(LIFT):
            lakehouse.merge(LIFT, frame, ["kind", "segment", "activated_on", "metric"])
        else:
            lakehouse.append(LIFT, frame)
    runlog.record(source=ASSIGNMENTS, table=LIFT, rows_in=n_members, rows_out=len(rows),
                  message=f"activated on {activated_on} (groups as of {assigned}), {observed} "
                  "day(s) of outcomes")
    models = fit_uplift(lakehouse, config, outcomes, rows, assigned, activated_on, runlog) \
        if config.activation.uplift and rows else []
    runlog.flush()
    outcomes.unpersist()
    seconds = time.monotonic() - started
    log.info("measure: %d segment(s), %d rows, %d uplift model(s) (%.1f s)", len(rows) // 3,
             len(rows), len(models), seconds)
    return MeasureResult(runlog.run_id, activated_on, assigned, observed, requested, rows,
                         seconds, models)


def uplift_targets(rows: list[dict[str, Any]], confidence: float, min_size: int
                   ) -> list[tuple[str, str]]:
    """(kind, segment) whose conversion moved significantly, with ``min_size`` members in
    each group: where there is an effect to model and enough of both groups to learn it."""
    return [(r["kind"], r["segment"]) for r in rows
            if r["metric"] == "conversion" and r["p_value"] is not None
            and r["p_value"] < 1 - confidence and min(r["n_treatment"], r["n_holdout"]) >= min_size]


def _segment_is(kind: str, segment: str | None) -> tuple[Any, str]:
    """The (kind, segment) filter as a Column and as SQL."""
    if segment is None:
        return (F.col("kind") == kind) & F.col("segment").isNull(), \
            f"kind = '{kind}' AND segment IS NULL"
    quoted = segment.replace("'", "''")
    return (F.col("kind") == kind) & (F.col("segment") == segment), \
        f"kind = '{kind}' AND segment = '{quoted}'"


def fit_uplift(lakehouse: Lakehouse, config: SeglakeConfig, outcomes: DataFrame,
               rows: list[dict[str, Any]], assigned: dt.date, activated_on: dt.date,
               runlog: RunLog) -> list[UpliftResult]:
    """An uplift model per segment the campaign moved (``uplift_targets``), trained on the
    features as of the groups' date; its current members scored into gold.customer_uplift."""
    act = config.activation
    targets = uplift_targets(rows, act.confidence, act.min_group_size)
    if not targets:
        log.info("measure: no segment's conversion moved significantly with %d members in "
                 "each group: no uplift model", act.min_group_size)
        return []
    dates = set()
    if lakehouse.exists(FEATURES):
        dates = {r[0] for r in lakehouse.read(FEATURES).select("as_of").distinct().collect()}
    if assigned not in dates:
        log.warning("measure: no %s as of %s (the groups' date): no uplift model; run "
                    "`seglake features --as-of %s` and measure again", FEATURES, assigned,
                    assigned)
        return []
    try:
        inputs = rf.model_inputs(feature_catalogue(config.features), config.scoring)
    except ValueError as exc:
        raise MeasureError(f"uplift: {exc}") from None
    published = {r[0] for r in lakehouse.read(ASSIGNMENTS).select("as_of").distinct().collect()}
    scored_as_of = max(published & dates)  # the segment's members now, with their features
    features = lakehouse.read(FEATURES)
    propensity = None
    if lakehouse.exists(SCORES):
        propensity = lakehouse.read(SCORES).where(F.col("as_of") == F.lit(assigned)).select(
            "customer_key", "propensity_probability")
    settings = up.ForestSettings(act.uplift_trees, act.uplift_depth, config.scoring.seed)
    data_versions = {t: lakehouse.version(t) for t in (FEATURES, ASSIGNMENTS)}
    results = []
    for kind, segment in targets:
        started = time.monotonic()
        is_segment, sql = _segment_is(kind, segment)
        members = outcomes.where(is_segment).select(
            "customer_key", "group", F.col("conversion").cast("double").alias(up.LABEL))
        frame = rf.prepared(features.where(F.col("as_of") == F.lit(assigned)), inputs) \
            .join(members, "customer_key")
        used, dropped = informative_columns(frame, inputs)
        frame = frame.select("customer_key", "group", up.LABEL, *used).localCheckpoint()
        sizes = {r[0]: r[1] for r in frame.groupBy("group").count().collect()}
        if not used or min(sizes.get(TREATMENT, 0), sizes.get(HOLDOUT, 0)) < act.min_group_size:
            log.warning("measure: uplift of %s:%s not fitted: %s", kind, segment,
                        "no input varies" if not used else
                        f"only {sizes} members have features as of {assigned}")
            continue
        oof = up.out_of_fold(frame, used, settings, act.uplift_folds).localCheckpoint()
        curve = up.qini_curve(oof, up.UPLIFT)
        curve_p = None
        if propensity is not None:
            ranked = oof.join(propensity, "customer_key")
            if ranked.limit(1).count():
                curve_p = up.qini_curve(ranked, "propensity_probability")
        models = up.fitted(frame, used, settings)
        version = latest_version(lakehouse, "uplift") + 1
        paths = {}
        for name, pipeline in models.pipelines().items():
            paths[name] = f"{model_path(lakehouse, 'uplift', version)}/{name}"
            pipeline.write().overwrite().save(paths[name])
        qini = up.area_over_random(curve)
        qini_p = up.area_over_random(curve_p) if curve_p else None
        metrics = {"activated_on": activated_on, "assigned_as_of": assigned,
                   "n_treatment": sizes[TREATMENT], "n_holdout": sizes[HOLDOUT],
                   "qini": qini, "qini_propensity": qini_p, "curve": curve,
                   "curve_propensity": curve_p, "inputs_left_out": dropped,
                   # a group without both classes: its rate stands for a model
                   "rates": {name: m for name, m in (("treatment", models.treatment),
                                                     ("holdout", models.holdout))
                             if isinstance(m, float)}}
        record_model(lakehouse, "uplift", runlog.run_id,
                     params={"kind": kind, "segment": segment, "learner": "two-model forest",
                             "folds": act.uplift_folds, "trees": act.uplift_trees,
                             "depth": act.uplift_depth, "inputs": used},
                     metrics=metrics, data_versions=data_versions,
                     artifact=json.dumps(paths or {"rates": metrics["rates"]}),
                     tracking=config.tracking, models=models.pipelines())
        current = lakehouse.read(ASSIGNMENTS).where(
            (F.col("as_of") == F.lit(scored_as_of)) & is_segment).select("customer_key")
        now = rf.prepared(features.where(F.col("as_of") == F.lit(scored_as_of)), used) \
            .join(current, "customer_key")
        out = up.predicted(models, now).select(
            "customer_key", F.lit(kind).alias("kind"),
            F.lit(segment).cast("string").alias("segment"),
            F.lit(activated_on).alias("activated_on"), up.UPLIFT, up.TREATED, up.UNTREATED,
            F.lit(version).cast("bigint").alias("model_version"),
            F.lit(scored_as_of).alias("as_of"), F.lit(runlog.run_id).alias("run_id")) \
            .localCheckpoint()
        scored = out.count()
        where = f"as_of = DATE'{scored_as_of.isoformat()}' AND {sql}"
        if lakehouse.exists(UPLIFT):
            lakehouse.overwrite(UPLIFT, out, replace_where=where)
        else:
            lakehouse.append(UPLIFT, out)
        runlog.record(source=FEATURES, table=UPLIFT, rows_in=sum(sizes.values()),
                      rows_out=scored,
                      message=f"{kind}:{segment} uplift v{version} from {activated_on}, Qini "
                      f"{qini:+.4f}" + ("" if qini_p is None else
                                        f" (propensity {qini_p:+.4f})"))
        log.info("measure: %s:%s uplift model v%d: Qini %+.4f%s; %d members scored as of %s "
                 "(%.1f s)", kind, segment, version, qini,
                 "" if qini_p is None else f" (propensity ranking {qini_p:+.4f})", scored,
                 scored_as_of, time.monotonic() - started)
        results.append(UpliftResult(kind, segment, version, sizes[TREATMENT], sizes[HOLDOUT],
                                    qini, qini_p, scored, scored_as_of, oof))
    return results
