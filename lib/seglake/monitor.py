"""``seglake monitor``: watch what comes in and what goes out, over time.

Checks, each against thresholds in the ``monitoring`` config, each breach a row of
``ops.alerts`` (severity ``warn`` or ``fail``; a ``fail`` makes the command exit non-zero):

- **volume**: rows per day of every silver activity source over the last ``recent_days`` days
  of data, against the median of the same weekday in the ``history_weeks`` weeks before; a
  source beside other traffic is read as its proportion to it against that proportion's usual
  value (a tracking outage, a lost file lowers one source; a holiday moves all); a day without
  a row counts as 0.
- **quarantine**: the share of a source's rows refine quarantined in its latest run.
- **feature drift** / **score drift**: the population stability index (PSI) of every feature
  and score between the two latest ``as_of`` (numeric columns in deciles of the earlier date,
  categorical ones by value; nulls are a bin of their own).
- **segment size**: the change of each segment's share of its kind between the two latest
  publishes.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import math
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from seglake.config import MonitoringConfig, SeglakeConfig
from seglake.declarations import (
    ALERTS,
    EMAIL_EVENTS,
    EVENTS,
    FEATURES,
    RUN_LOG,
    SCORES,
    SUMMARY,
    declared,
)
from seglake.lakehouse import Lakehouse
from seglake.lakehouse.schema import arrow_rows
from seglake.runlog import RunLog, utc_now
from seglake.volumes import daily_counts

log = logging.getLogger(__name__)

SCORE_COLUMNS = ("propensity_probability", "churn_probability")
NULL_BIN = "(null)"


@dataclass(frozen=True)
class Alert:
    check: str          # volume, quarantine, feature_drift, score_drift, segment_size
    severity: str       # warn or fail
    table: str
    subject: str        # source and day, feature, score or segment
    value: float
    threshold: float
    message: str


@dataclass
class MonitorResult:
    run_id: str
    alerts: list[Alert] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # check -> series/columns checked
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return any(a.severity == "fail" for a in self.alerts)


def _severity(value: float, warn: float, fail: float, above: bool = True
              ) -> tuple[str, float] | None:
    """(``fail`` or ``warn``, the threshold crossed) when ``value`` crosses one (above it, or
    below it); None otherwise."""
    crossed = (lambda t: value > t) if above else (lambda t: value < t)
    return ("fail", fail) if crossed(fail) else ("warn", warn) if crossed(warn) else None


def volume_ratios(series: dict[tuple[str, str], dict[dt.date, int]], conf: MonitoringConfig
                  ) -> dict[tuple[str, str], dict[dt.date, tuple[int, float]]]:
    """Per series and day of the last ``recent_days`` of data: (rows, rows over the median of
    the same weekday in the ``history_weeks`` weeks before); days whose baseline is under
    ``min_daily_rows`` or whose date is a ``quiet_days`` one are not judged."""
    out: dict[tuple[str, str], dict[dt.date, tuple[int, float]]] = {}
    for key, counts in series.items():
        if not counts:
            continue
        first, last = min(counts), max(counts)
        for back in range(conf.recent_days):
            day = last - dt.timedelta(days=back)
            if f"{day:%m-%d}" in conf.quiet_days:
                continue
            history = [counts.get(day - dt.timedelta(weeks=w), 0)
                       for w in range(1, conf.history_weeks + 1)
                       if day - dt.timedelta(weeks=w) >= first]
            if len(history) < 2 or statistics.median(history) < conf.min_daily_rows:
                continue
            out.setdefault(key, {})[day] = (counts.get(day, 0),
                                            counts.get(day, 0) / statistics.median(history))
    return out


def _against(series: dict[tuple[str, str], dict[dt.date, int]], key: tuple[str, str],
             others: list[tuple[str, str]], day: dt.date, conf: MonitoringConfig
             ) -> float | None:
    """A source's rows over the other traffic's on ``day``, over the median of that proportion
    on the same weekday in the weeks before: 1.0 when it moved with the traffic."""
    def proportion(d: dt.date) -> float | None:
        other = sum(series[k].get(d, 0) for k in others)
        return series[key].get(d, 0) / other if other else None

    first = min(series[key])
    history = [p for w in range(1, conf.history_weeks + 1)
               if day - dt.timedelta(weeks=w) >= first
               and (p := proportion(day - dt.timedelta(weeks=w)))]
    today = proportion(day)
    if today is None or len(history) < 2:
        return None
    return today / statistics.median(history)


def volume_alerts(series: dict[tuple[str, str], dict[dt.date, int]], conf: MonitoringConfig
                  ) -> list[Alert]:
    """Drops of a source's daily rows, read against the other traffic: its proportion to the
    other event sources that day over that proportion's median on the same weekday before
    (orders follow the traffic too; email volumes follow the campaigns sent and are read
    alone, against their own baseline). A holiday or the lull after Christmas moves the
    traffic alike and is no alert; a tracking outage lowers one source. A day when the sources
    together (their median ratio) fall under ``volume_fail_ratio`` fails."""
    ratios = volume_ratios(series, conf)
    alerts = []
    days = sorted({d for by_day in ratios.values() for d in by_day})
    for day in days:
        today = {key: by_day[day] for key, by_day in ratios.items() if day in by_day}
        overall = statistics.median(r for _, r in today.values())
        if len(today) >= 2 and overall < conf.volume_fail_ratio:
            alerts.append(Alert("volume", "fail", "silver", f"all sources {day}", overall,
                                conf.volume_fail_ratio,
                                f"every source fell on {day} ({day:%A}): {overall:.0%} of the "
                                "same weekday before (median over the sources)"))
            continue
        for (table, source), (n, ratio) in sorted(today.items()):
            others = [k for k in series if k[0] == EVENTS and k[1] != source] \
                if table != EMAIL_EVENTS else []
            paired = _against(series, (table, source), others, day, conf) if others else None
            relative = ratio if paired is None else paired
            crossed = _severity(relative, conf.volume_warn_ratio, conf.volume_fail_ratio,
                                above=False)
            if crossed:
                alerts.append(Alert(
                    "volume", crossed[0], table, f"{source} {day}", relative, crossed[1],
                    f"{source}: {n:,} rows on {day} ({day:%A}), {ratio:.0%} of the same "
                    "weekday before" + ("" if paired is None else
                                        f"; against the other traffic, {paired:.0%} of its "
                                        "usual proportion")))
    return alerts


def quarantine_alerts(lakehouse: Lakehouse, conf: MonitoringConfig) -> list[Alert]:
    """The share of rows quarantined in each source's latest refine run."""
    if not lakehouse.exists(RUN_LOG):
        return []
    refine = lakehouse.read(RUN_LOG).where((F.col("stage") == "refine")
                                           & (F.col("rows_in") > 0))
    latest = refine.groupBy("source").agg(F.max("started_at").alias("started_at"))
    alerts = []
    for r in refine.join(latest, ["source", "started_at"]).groupBy("source").agg(
            F.sum("rows_in").alias("rows_in"), F.sum("quarantined").alias("quarantined")) \
            .collect():
        share = (r["quarantined"] or 0) / r["rows_in"]
        crossed = _severity(share, conf.quarantine_warn_share, conf.quarantine_fail_share)
        if crossed:
            alerts.append(Alert(
                "quarantine", crossed[0], f"bronze.{r['source']}", r["source"], share,
                crossed[1],
                f"{r['source']}: {r['quarantined']:,} of {r['rows_in']:,} rows quarantined in "
                "its latest refine (silver.quarantine says why)"))
    return alerts


UNTRENDED = ("run", "demo", "monitor", "report", "erase")  # stages whose rows are not volumes


def run_volume_alerts(runs: list[tuple[str, str, str, int]], conf: MonitoringConfig
                      ) -> list[Alert]:
    """``runs``: (stage, table, source, rows written) per run and output, oldest first. The
    latest run of each (stage, table, source) against the median of the ``history_runs`` runs
    before it (with at least ``min_history_runs`` of them): a stage writing far fewer rows
    than it usually does."""
    series: dict[tuple[str, str, str], list[int]] = {}
    for stage, table, source, rows in runs:
        series.setdefault((stage, table, source), []).append(rows)
    alerts = []
    for (stage, table, source), rows in sorted(series.items()):
        history = rows[-1 - conf.history_runs:-1]
        if len(history) < conf.min_history_runs:
            continue
        usual = statistics.median(history)
        if usual < conf.min_daily_rows:
            continue
        ratio = rows[-1] / usual
        crossed = _severity(ratio, conf.volume_warn_ratio, conf.volume_fail_ratio, above=False)
        if crossed:
            alerts.append(Alert(
                "run_volume", crossed[0], table, f"{stage}: {source}" if source else stage,
                ratio, crossed[1],
                f"{stage} wrote {rows[-1]:,} rows to {table}" + (f" from {source}" if source
                                                                  else "")
                + f" in its latest run, {ratio:.2f} of its median {usual:,.0f} over the "
                f"{len(history)} runs before"))
    return alerts


def run_volumes(lakehouse: Lakehouse) -> list[tuple[str, str, str, int]]:
    """(stage, table, source, rows_out) of every run and output in ``ops.run_log``, oldest
    first; the rows of one run and output summed (a run writes a table in several batches)."""
    if not lakehouse.exists(RUN_LOG):
        return []
    log_rows = lakehouse.read(RUN_LOG).where(
        ~F.col("stage").isin(*UNTRENDED) & F.col("table").isNotNull()
        & F.col("rows_out").isNotNull())
    per_run = log_rows.groupBy("run_id", "stage", "table", F.coalesce("source", F.lit(""))
                               .alias("source")).agg(F.sum("rows_out").alias("rows"),
                                                     F.min("started_at").alias("at"))
    return [(r["stage"], r["table"], r["source"], int(r["rows"]))
            for r in per_run.orderBy("at", "run_id").collect()]


def psi(expected: dict[str, int], actual: dict[str, int], floor: float = 1e-4) -> float:
    """Population stability index of two binned distributions (bin -> count), each share
    floored at ``floor`` so that an empty bin does not make it infinite."""
    n_e, n_a = sum(expected.values()), sum(actual.values())
    if not n_e or not n_a:
        return 0.0
    total = 0.0
    for b in set(expected) | set(actual):
        e = max(expected.get(b, 0) / n_e, floor)
        a = max(actual.get(b, 0) / n_a, floor)
        total += (a - e) * math.log(a / e)
    return total


def binned(before: DataFrame, after: DataFrame, numeric: list[str], categorical: list[str],
           bins: int = 10) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
    """Per column, the bin counts of ``before`` and ``after``: numeric columns cut at the
    deciles (``bins``) of ``before``, categorical ones by value; nulls in a bin of their own.
    One aggregation per frame, whatever the number of columns."""
    cuts = {}
    if numeric:
        quantiles = before.approxQuantile(numeric, [i / bins for i in range(1, bins)], 0.001)
        cuts = {c: sorted(set(q)) for c, q in zip(numeric, quantiles, strict=True)}

    def label(column: str) -> F.Column:
        value = F.col(column)
        if column in cuts:
            bucket = sum((F.when(value > c, 1).otherwise(0) for c in cuts[column]), F.lit(0))
            text = F.when(value.isNotNull(), F.format_string("%02d", bucket))
        else:
            text = value.cast("string")
        return F.struct(F.lit(column).alias("c"),
                        F.coalesce(text, F.lit(NULL_BIN)).alias("b"))

    columns = [*numeric, *categorical]
    out: dict[str, tuple[dict[str, int], dict[str, int]]] = {c: ({}, {}) for c in columns}
    for side, frame in enumerate((before, after)):
        pairs = frame.select(F.explode(F.array(*[label(c) for c in columns])).alias("p"))
        for r in pairs.groupBy("p.c", "p.b").count().collect():
            out[r["c"]][side][r["b"]] = r["count"]
    return out


def drift_alerts(check: str, table: str, before: DataFrame, after: DataFrame,
                 numeric: list[str], categorical: list[str], dates: tuple[dt.date, dt.date],
                 conf: MonitoringConfig) -> tuple[list[Alert], dict[str, float]]:
    """PSI of every column between two dates; alerts where it crosses the thresholds."""
    values = {c: psi(b, a) for c, (b, a) in binned(before, after, numeric, categorical).items()}
    alerts = []
    for column, value in sorted(values.items()):
        crossed = _severity(value, conf.psi_warn, conf.psi_fail)
        if crossed:
            alerts.append(Alert(check, crossed[0], table, column, value, crossed[1],
                                f"{column}: PSI {value:.3f} between {dates[0]} and {dates[1]}"))
    return alerts, values


def _two_latest(lakehouse: Lakehouse, table: str) -> tuple[dt.date, dt.date] | None:
    if not lakehouse.exists(table):
        return None
    dates = sorted(r[0] for r in lakehouse.read(table).select("as_of").distinct().collect())
    return (dates[-2], dates[-1]) if len(dates) >= 2 else None


def segment_alerts(lakehouse: Lakehouse, conf: MonitoringConfig) -> list[Alert]:
    """Changes of each segment's share of its kind between the two latest publishes."""
    dates = _two_latest(lakehouse, SUMMARY)
    if dates is None:
        return []
    shares: dict[tuple[str, str], list[float]] = {}
    for r in lakehouse.read(SUMMARY).where(F.col("as_of").isin(list(dates))).collect():
        shares.setdefault((r["kind"], r["segment"]), [0.0, 0.0])[dates.index(r["as_of"])] = \
            r["share"] or 0.0
    alerts = []
    for (kind, segment), (before, after) in sorted(shares.items(), key=str):
        change = abs(after - before)
        crossed = _severity(change, conf.segment_share_warn, conf.segment_share_fail)
        if crossed:
            alerts.append(Alert(
                "segment_size", crossed[0], SUMMARY, f"{kind}:{segment}", change, crossed[1],
                f"{kind}:{segment}: {before:.1%} of its kind on {dates[0]}, {after:.1%} on "
                f"{dates[1]}"))
    return alerts


def _columns(frame: DataFrame, skip: Iterable[str], exclude: Iterable[str] = ()
             ) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns of ``frame`` but ``skip`` and those matching a pattern
    of ``exclude`` (fnmatch)."""
    numeric, categorical = [], []
    patterns = list(exclude)
    for f in frame.schema.fields:
        if f.name in skip or any(fnmatch.fnmatchcase(f.name, p) for p in patterns):
            continue
        kind = f.dataType.simpleString()
        if kind in ("int", "bigint", "double", "float", "smallint"):
            numeric.append(f.name)
        elif kind in ("string", "boolean"):
            categorical.append(f.name)
    return numeric, categorical


def run_monitor(spark: SparkSession, config: SeglakeConfig, runlog: RunLog | None = None
                ) -> MonitorResult:
    """Every check; the alerts appended to ops.alerts (one row per alert, with this run)."""
    started = time.monotonic()
    conf = config.monitoring
    lakehouse = Lakehouse.from_config(spark, config)
    runlog = runlog or RunLog(lakehouse, "monitor")
    result = MonitorResult(runlog.run_id)
    series = daily_counts(lakehouse)
    result.alerts += volume_alerts(series, conf)
    result.checked["volume"] = len(series)
    result.alerts += quarantine_alerts(lakehouse, conf)
    runs = run_volumes(lakehouse)
    result.alerts += run_volume_alerts(runs, conf)
    result.checked["run_volume"] = len({run[:3] for run in runs})
    for check, table, skip in (
            ("feature_drift", FEATURES, ("customer_key", "as_of", "run_id", "is_anonymous")),
            ("score_drift", SCORES, None)):
        dates = _two_latest(lakehouse, table)
        if dates is None:
            log.info("monitor: %s has fewer than two as_of dates: no drift to measure", table)
            continue
        frames = [lakehouse.read(table).where(F.col("as_of") == F.lit(d)) for d in dates]
        if table == FEATURES:
            frames = [f.where(~F.col("is_anonymous")) for f in frames]
            numeric, categorical = _columns(frames[0], skip, conf.drift_exclude)
        else:
            numeric, categorical = list(SCORE_COLUMNS), []
        alerts, values = drift_alerts(check, table, frames[0], frames[1], numeric, categorical,
                                      dates, conf)
        result.alerts += alerts
        result.checked[check] = len(values)
        log.info("monitor: %s %s -> %s: %d columns, highest PSI %.3f", table, *dates,
                 len(values), max(values.values(), default=0.0))
    result.alerts += segment_alerts(lakehouse, conf)
    checked_at = utc_now()
    if result.alerts:
        table = declared(ALERTS)
        rows = [(runlog.run_id, checked_at, a.check, a.severity, a.table, a.subject,
                 float(a.value), float(a.threshold), a.message) for a in result.alerts]
        lakehouse.append(ALERTS, arrow_rows(rows, table.ddl))
    fails = sum(a.severity == "fail" for a in result.alerts)
    for a in result.alerts:
        (log.error if a.severity == "fail" else log.warning)("monitor: %s %s: %s", a.severity,
                                                            a.check, a.message)
    runlog.record(source=", ".join(sorted(result.checked)) or None, table=ALERTS,
                  rows_in=sum(result.checked.values()), rows_out=len(result.alerts),
                  message=f"{len(result.alerts)} alert(s), {fails} failing",
                  status="failed" if fails else "ok")
    runlog.flush()
    result.seconds = time.monotonic() - started
    return result
