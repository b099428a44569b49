"""Monitoring: PSI against a hand computation; a stable distribution raises nothing and a shifted
one the expected severity; a tracking outage in daily volumes is caught on the right days and
seasonality and holidays are not; and the command on a copy of the small world: no volume alert
where nothing moved, then alerts (and a failing exit) after most of a source's rows of a few
days are lost."""

from __future__ import annotations

import datetime as dt
import math
import shutil

import numpy as np
import pytest
from pyspark.sql import functions as F

from seglake import cli
from seglake.config import MonitoringConfig
from seglake.declarations import ALERTS, EVENTS
from seglake.lakehouse import Lakehouse
from seglake.monitor import (
    _columns,
    binned,
    drift_alerts,
    psi,
    run_monitor,
    run_volume_alerts,
    volume_alerts,
)


def test_psi_matches_a_hand_computation():
    before = {"a": 50, "b": 30, "c": 20}
    after = {"a": 30, "b": 30, "c": 40}
    # (0.3 - 0.5) ln(0.3/0.5) + 0 + (0.4 - 0.2) ln(0.4/0.2)
    expected = -0.2 * math.log(0.6) + 0.2 * math.log(2.0)
    assert psi(before, after) == pytest.approx(expected)
    assert psi(before, before) == 0.0
    # an empty bin is floored, not infinite
    assert math.isfinite(psi({"a": 10}, {"a": 5, "b": 5}))


def test_drift_of_a_stable_and_of_a_shifted_distribution(spark):
    rng = np.random.default_rng(11)
    n = 4000

    def frame(shift: float, share_x: float):
        values = rng.normal(10.0 + shift, 2.0, n)
        labels = np.where(rng.random(n) < share_x, "x", "y")
        rows = [(float(v), str(s), None if i % 50 == 0 else float(v))
                for i, (v, s) in enumerate(zip(values, labels, strict=True))]
        return spark.createDataFrame(rows, "amount double, channel string, gappy double")

    base = frame(0.0, 0.5)
    conf = MonitoringConfig()
    dates = (dt.date(2025, 1, 1), dt.date(2025, 2, 1))
    stable, values = drift_alerts("feature_drift", "t", base, frame(0.0, 0.5),
                                  ["amount", "gappy"], ["channel"], dates, conf)
    assert stable == [] and max(values.values()) < 0.02, values  # seen below 0.01
    # one standard deviation up and a channel mix from 50/50 to 68/32
    shifted, values = drift_alerts("feature_drift", "t", base, frame(2.0, 0.68),
                                   ["amount", "gappy"], ["channel"], dates, conf)
    severity = {a.subject: a.severity for a in shifted}
    assert severity["amount"] == "fail" and values["amount"] > conf.psi_fail
    # 0.18 ln(0.68/0.5) + 0.18 ln(0.5/0.32) = 0.134: a moderate shift
    assert severity["channel"] == "warn" and values["channel"] == pytest.approx(0.134, abs=0.03)
    counts = binned(base, base, ["gappy"], [])["gappy"][0]
    assert counts["(null)"] == n // 50 and len(counts) == 11  # ten deciles and the nulls


def test_an_outage_is_caught_on_its_days_and_seasonality_and_holidays_are_not():
    conf = MonitoringConfig()
    start = dt.date(2025, 11, 17)  # a Monday; eight weeks to January 11
    days = [start + dt.timedelta(days=i) for i in range(56)]

    def volume(day: dt.date, size: int) -> int:
        # Sundays carry a third of a weekday; every source halves after Christmas
        lull = 0.5 if day >= dt.date(2025, 12, 24) else 1.0
        return int(size * (0.3 if day.weekday() == 6 else 1.0) * lull)

    series = {(table, source): {d: volume(d, size) for d in days} for table, source, size in (
        ("silver.events", "app_events", 1000), ("silver.events", "web_events", 2000),
        ("silver.orders", "orders", 300), ("silver.email_events", "email_events", 800))}
    assert volume_alerts(series, conf) == []
    app = series[("silver.events", "app_events")]
    app[days[-2]] = app[days[-2]] // 3       # two thirds lost: warn
    app[days[-4]] = app[days[-4]] // 10      # nearly all lost: fail
    del app[days[-6]]                        # no file at all: a day of 0 rows, fail
    found = {a.subject: a.severity for a in volume_alerts(series, conf)}
    assert found == {f"app_events {days[-2]}": "warn", f"app_events {days[-4]}": "fail",
                     f"app_events {days[-6]}": "fail"}
    # every source gone the same day: one failing alert for them all
    for counts in series.values():
        counts.pop(days[-3], None)
    found = {a.subject: a.severity for a in volume_alerts(series, conf)}
    assert found[f"all sources {days[-3]}"] == "fail"


def test_monitor_on_the_small_world_then_after_losing_app_events(
        spark, config, published, tmp_path, capsys):
    shutil.copytree(config.lakehouse.root, tmp_path / "lakehouse")
    copy = config.model_copy(update={
        "lakehouse": config.lakehouse.model_copy(update={"root": str(tmp_path / "lakehouse")}),
        "reports": config.reports.model_copy(update={"root": str(tmp_path / "reports")})})
    clean = run_monitor(spark, copy)
    assert [a for a in clean.alerts if a.check in ("volume", "quarantine")] == []
    assert clean.checked["volume"] >= 4 and not clean.failed
    lake = Lakehouse.from_config(spark, copy)
    events = lake.read(EVENTS)
    last = events.agg(F.max(F.to_date("event_ts"))).first()[0]
    lost = [last - dt.timedelta(days=d) for d in (1, 2)]
    # a tracking outage in Black Friday week: 60% of the app's events of two days never arrive
    # (the web's traffic that week: 1.8-2.8 times the weeks before; the app's relative to it
    # goes from about 1.0 and 0.8 to about 0.4 and 0.3)
    dropped = events.where((F.col("_source") == "app_events")
                           & F.to_date("event_ts").isin(lost)
                           & (F.abs(F.xxhash64("event_id")) % 10 < 6))
    kept = events.exceptAll(dropped).localCheckpoint()
    lake.overwrite(EVENTS, kept)
    after = run_monitor(spark, copy)
    volume = {a.subject: a for a in after.alerts if a.check == "volume"}
    assert set(volume) == {f"app_events {d}" for d in lost}, volume
    assert all(0.25 < a.value < 0.5 and a.severity == "warn" for a in volume.values()), volume
    stored = lake.read(ALERTS).where(F.col("run_id") == after.run_id)
    assert stored.count() == len(after.alerts)
    # nearly all of a third day lost: a failing alert, and the command exits 1 saying so
    third = last - dt.timedelta(days=3)
    events = lake.read(EVENTS)
    lake.overwrite(EVENTS, events.where(~((F.col("_source") == "app_events")
                                          & (F.to_date("event_ts") == third)
                                          & (F.xxhash64("event_id") % 20 != 0)))
                   .localCheckpoint())
    path = tmp_path / "seglake.yaml"
    path.write_text(f"lakehouse:\n  root: {tmp_path / 'lakehouse'}\n", encoding="utf-8")
    capsys.readouterr()
    assert cli.main(["monitor", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "fail  volume" in out and f"rows on {third}" in out, out


def test_a_stage_writing_far_fewer_rows_than_its_runs_before_alerts():
    conf = MonitoringConfig()  # the median of 5 runs before, at least 3; warn 0.5, fail 0.25
    steady = [("refine", "silver.events", "web_events", n) for n in (1000, 1100, 900, 1050)]
    features = [("features", "gold.customer_features", "", n) for n in (5000, 5100, 5200)]
    # steady runs, then the same at 0.6 of the median: nothing
    assert run_volume_alerts(steady + [("refine", "silver.events", "web_events", 620)]
                             + features, conf) == []
    # too little history (two runs before) is not judged, however low
    assert run_volume_alerts(features[:2] + [("features", "gold.customer_features", "", 10)],
                             conf) == []
    alerts = run_volume_alerts(
        steady + [("refine", "silver.events", "web_events", 400)]
        + [("refine", "silver.events", "app_events", n) for n in (800, 800, 800, 100)], conf)
    got = {(a.subject, a.severity, round(a.value, 3), a.threshold) for a in alerts}
    # web: 400 / median(1000, 1100, 900, 1050) = 400 / 1025; app: 100 / 800
    assert got == {("refine: web_events", "warn", round(400 / 1025, 3), 0.5),
                   ("refine: app_events", "fail", 0.125, 0.25)}
    assert all(a.check == "run_volume" and a.table == "silver.events" for a in alerts)
    # only the history_runs runs before the latest count: an old, larger era is forgotten
    era = [("score", "gold.customer_scores", "", n) for n in (9000, 9000, 2000, 2000, 2000,
                                                              2000, 2000, 1500)]
    assert run_volume_alerts(era, conf) == []


def test_features_counted_from_as_of_are_not_checked_for_drift(spark):
    frame = spark.createDataFrame([(1, 2, 3, "x", "2025-01")],
                                  "tenure_days INT, days_since_last_visit INT, orders_total INT, "
                                  "rfm_segment STRING, cohort_month STRING")
    numeric, categorical = _columns(frame, (), MonitoringConfig().drift_exclude)
    assert numeric == ["orders_total"] and categorical == ["rfm_segment"]
    assert _columns(frame, ())[0] == ["tenure_days", "days_since_last_visit", "orders_total"]
