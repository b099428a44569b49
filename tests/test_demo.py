"""Demo generator: determinism, documented rates, parseable files, truth 1:1, archetypes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from seglake import cli
from seglake.demo import DemoError, generate, resolve_scale
from seglake.demo.files import Storage
from seglake.demo.landing import SOURCES


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def truth(spark, config, name: str):
    return spark.read.parquet(f"{config.truth.root}/{name}")


def landing(spark, config, name: str, corrupt: bool = False):
    """A landing source read with the columns and options the config declares."""
    source = config.sources[name]
    columns = source.columns + (", _corrupt_record STRING" if corrupt else "")
    return (spark.read.format(source.format).options(**source.options)
            .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", "_corrupt_record")
            .schema(columns).load(f"{config.landing.root}/{source.path}"))


# ---------------------------------------------------------------------------- determinism

def test_same_seed_gives_the_same_bytes_and_more_days_extend_the_same_world(
        spark, config, world, tmp_path):
    """The session's small world (90 days) made again in 1 day, then extended to 2: every
    file is byte for byte the 90-day world's file of that day, extending leaves the first day
    untouched, and another world or fewer days are refused."""
    spec, _ = world
    a = tmp_path / "a"
    generate(spark, resolve_scale("small", days=1, seed=spec.seed), str(a / "landing"),
             str(a / "truth"))
    before = digests(a / "landing")
    generate(spark, resolve_scale("small", days=2, seed=spec.seed), str(a / "landing"),
             str(a / "truth"))
    extended = digests(a / "landing")
    assert {k: extended[k] for k in before} == before  # the first day is untouched
    new = sorted(set(extended) - set(before))
    assert any(k.endswith("2025-09-02.jsonl") for k in new)
    assert any(k.endswith("2025-09-02.csv") for k in new)
    assert json.loads((a / "truth" / "manifest.json").read_text())["spec"]["days"] == 2
    assert len(extended) >= 2 * 5 + 1  # 2 days of the CSV sources, products, JSON days
    assert not any("/." in k or k.startswith(".") for k in extended)  # no side files

    full = digests(Path(config.landing.root))
    assert set(extended) <= set(full)
    assert {k: full[k] for k in extended} == extended  # same seed, same bytes, day by day
    rows_a = spark.read.parquet(str(a / "truth" / "landing_rows"))
    rows_full = truth(spark, config, "landing_rows")
    assert rows_a.count() > 300 and rows_a.exceptAll(rows_full).count() == 0

    with pytest.raises(DemoError, match="another demo world"):
        generate(spark, resolve_scale("small", days=2, seed=99), str(a / "landing"),
                 str(a / "truth"))
    with pytest.raises(DemoError, match="fewer"):
        generate(spark, resolve_scale("small", days=1, seed=spec.seed), str(a / "landing"),
                 str(a / "truth"))


def test_an_outage_loses_its_share_of_the_app_events_of_its_days_only(spark, config, world,
                                                                       tmp_path):
    """Two days of the session's world with 60% of the app's events of the second day lost:
    every other file is byte for byte the world's, that day's app file holds about 40% of its
    lines (a subset of them), and the manifest keeps the outage."""
    spec, _ = world
    second = spec.start + dt.timedelta(days=1)
    root = tmp_path / "o"
    generate(spark, resolve_scale("small", days=2, seed=spec.seed, outage=f"{second}=0.6"),
             str(root / "landing"), str(root / "truth"))
    got, full = digests(root / "landing"), digests(Path(config.landing.root))
    hit = [k for k in got if k.startswith("app_events") and str(second) in k]
    assert len(hit) == 1
    assert {k: v for k, v in got.items() if k not in hit} == {k: full[k] for k in got
                                                              if k not in hit}
    kept = (root / "landing" / hit[0]).read_text(encoding="utf-8").splitlines()
    whole = (Path(config.landing.root) / hit[0]).read_text(encoding="utf-8").splitlines()
    assert set(kept) <= set(whole) and 0.33 < len(kept) / len(whole) < 0.47, \
        (len(kept), len(whole))
    manifest = json.loads((root / "truth" / "manifest.json").read_text())
    assert manifest["spec"]["outage"] == f"{second}=0.6"
    with pytest.raises(DemoError, match="outage"):
        resolve_scale("small", days=2, outage=f"{spec.start + dt.timedelta(days=5)}")
    with pytest.raises(DemoError, match="outage"):
        resolve_scale("small", days=2, outage="yesterday")


def test_another_seed_gives_another_world(spark, tmp_path):
    from seglake.demo import population
    from seglake.demo.draws import Draws

    def names(seed: int) -> list[str]:
        df = population.persons(spark, Draws(seed), 50, 0.3, 0.06)
        return [r["email"] for r in df.orderBy("person_id").collect()]

    assert names(1) == names(1)
    assert sum(a != b for a, b in zip(names(1), names(2), strict=True)) > 40


@pytest.mark.parametrize("through", ["os", "hadoop"])
def test_daily_files_hold_their_lines_in_order_on_either_file_system(spark, tmp_path, through,
                                                                      monkeypatch):
    """Local paths move with os (fast), others through Hadoop's FileSystem: same files."""
    storage = Storage(spark)
    assert storage.local(str(tmp_path)) == str(tmp_path)
    assert storage.local(f"file://{tmp_path}") == str(tmp_path)
    if through == "hadoop":
        monkeypatch.setattr(Storage, "local", lambda self, path: None)
    rows = [(folder, day, line, f"{folder} {day} {line}") for folder in ("a", "b")
            for day in (0, 3) for line in (2, 0, 1)]
    lines = spark.createDataFrame(rows, "folder STRING, batch_day INT, line INT, text STRING")
    files = storage.write_daily_files(lines, str(tmp_path / "work"), str(tmp_path / "out"),
                                      lambda folder, day: f"{folder}_{day:02d}.txt")
    assert files == 4 and not storage.exists(str(tmp_path / "work"))
    assert [p.rsplit("/", 1)[1] for p in storage.list(str(tmp_path / "out" / "a"))] == [
        "a_00.txt", "a_03.txt"]
    assert (tmp_path / "out" / "b" / "b_03.txt").read_text() == "b 3 0\nb 3 1\nb 3 2\n"
    assert not list((tmp_path / "out").rglob("*.crc"))


def test_bad_input_is_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(DemoError, match="unknown scale"):
        resolve_scale("huge")
    with pytest.raises(DemoError, match="days must be between"):
        resolve_scale("small", days=0)
    assert cli.main(["demo", "generate", "--scale", "tiny"]) == 2
    assert "unknown scale 'tiny'" in capsys.readouterr().err


# ---------------------------------------------------------------------------- landing vs truth

def test_truth_labels_every_landing_line_once(spark, config, world):
    root = Path(config.landing.root)
    lines = {}
    for path in sorted(root.rglob("*.*")):
        rel = str(path.relative_to(root))
        text = path.read_text(encoding="utf-8").split("\n")
        assert text[-1] == "" and "" not in text[:-1], rel  # every line ends with a newline
        header = 1 if path.suffix == ".csv" else 0
        if header:
            expected = SOURCES[rel.split("/")[0]].header
            assert text[0] == expected, rel
            assert text[0].startswith("\ufeff") == (rel.startswith("crm_loyalty")), rel
        for number, line in enumerate(text[header:-1], start=header + 1):
            lines[(rel, number)] = line
    rows = truth(spark, config, "landing_rows").select(
        "file", "line", "record_id", "defect").collect()
    labelled = {(r["file"], r["line"]): r for r in rows}
    assert len(labelled) == len(rows)  # no line labelled twice
    assert labelled.keys() == lines.keys()
    for key, row in labelled.items():
        if row["defect"] not in ("malformed", "missing_required"):
            assert row["record_id"] in lines[key], key


def test_every_landing_file_parses_with_the_declared_sources(spark, config, world):
    labels = truth(spark, config, "landing_rows")
    for name in config.sources:
        df = landing(spark, config, name, corrupt=True).persist()
        declared = [f.name for f in df.schema.fields][:-1]
        assert declared == list(SOURCES[name].fields), name
        expected = labels.where(F.col("source") == name)
        assert df.count() == expected.count(), name
        corrupt = df.where("_corrupt_record IS NOT NULL").count()
        # exactly the lines made malformed on purpose fail to parse
        assert corrupt == expected.where("defect = 'malformed'").count(), name
        if name in ("web_events", "app_events", "email_events"):
            assert corrupt > 0, name
        df.unpersist()


def test_bad_rows_hold_the_documented_rate_and_every_kind_occurs(spark, config, world):
    spec, result = world
    labels = truth(spark, config, "landing_rows").where("source != 'products'")
    total = labels.count()
    bad = labels.where("defect IS NOT NULL")
    # duplicates add a line, so the share of bad lines is a little under the rate
    assert 0.8 * spec.bad_row_rate < bad.count() / total < 1.2 * spec.bad_row_rate
    for name in ("web_events", "app_events"):
        rows = labels.where(F.col("source") == name)
        share = rows.where("defect IS NOT NULL").count() / rows.count()
        assert 0.7 * spec.bad_row_rate < share < 1.3 * spec.bad_row_rate, name
    kinds = {r["defect"] for r in bad.select("defect").distinct().collect()}
    assert kinds == {"malformed", "missing_required", "bad_timestamp", "future_timestamp",
                     "unknown_type", "bad_amount", "duplicate"}
    assert result.bad_rows == {r["source"]: r["n"] for r in truth(spark, config, "landing_rows")
                               .groupBy("source").agg(F.count("defect").alias("n")).collect()}


def test_crm_duplicates_hold_the_documented_rates(spark, config, world):
    spec, _ = world
    persons = truth(spark, config, "persons")
    records = truth(spark, config, "crm_records")
    # persons who signed up over two years before the start have had time for every record
    settled = persons.where(F.col("has_account") & (F.col("signup_date")
                                                    < F.lit(spec.start - dt.timedelta(days=731))))
    per_person = settled.join(records, "person_id").groupBy("person_id").agg(
        F.max(F.col("slot") == 1).alias("cross"), F.max(F.col("slot") == 2).alias("dup"))
    n = per_person.count()
    assert n > 800
    cross = per_person.where("cross").count() / n
    dup = per_person.where("dup").count() / n
    assert abs(cross - spec.cross_system_rate) < 0.05
    assert abs(dup - spec.duplicate_rate) < 0.03
    # secondary records differ from the person's true identity in realistic ways
    variants = records.where("slot > 0").select(F.explode("variants").alias("v")) \
        .groupBy("v").count().collect()
    seen = {r["v"] for r in variants}
    assert {"typo_last_name", "accents_lost", "email_domain", "address_abbreviated",
            "married_name", "names_swapped"} <= seen


def test_future_purchases_are_held_back_in_truth_only(spark, config, world):
    spec, _ = world
    future = truth(spark, config, "future_orders")
    first = spec.start + dt.timedelta(days=spec.days)
    stats = future.agg(F.min("order_date").alias("lo"), F.max("order_date").alias("hi"),
                       F.count("*").alias("n")).first()
    assert stats["n"] > 500
    assert stats["lo"] >= first
    assert stats["hi"] < first + dt.timedelta(days=spec.future_days)
    delivered = landing(spark, config, "orders").select("order_id")
    assert future.join(delivered, "order_id").count() == 0


# ---------------------------------------------------------------------------- behaviour

def test_archetypes_drive_measurably_different_behaviour(spark, config, world):
    spec, _ = world
    persons = truth(spark, config, "persons").where("archetype2 IS NULL")  # pure archetypes
    owners = truth(spark, config, "landing_rows").where("defect IS NULL") \
        .select("source", "record_id", "person_id")

    def per_archetype(source: str, frame, id_column: str) -> dict[str, float]:
        rows = frame.join(owners.where(F.col("source") == source)
                          .withColumnRenamed("record_id", id_column), id_column)
        counts = rows.groupBy("person_id").count()
        joined = persons.join(counts, "person_id", "left").fillna(0, ["count"])
        return {r["archetype"]: r["avg"] for r in
                joined.groupBy("archetype").agg(F.avg("count").alias("avg")).collect()}

    orders = landing(spark, config, "orders")
    events = landing(spark, config, "web_events").unionByName(
        landing(spark, config, "app_events"), allowMissingColumns=True)
    orders_pp = per_archetype("orders", orders, "order_id")
    events_pp = per_archetype("web_events", events, "event_id")
    assert orders_pp["loyal_high_value"] > 3 * orders_pp["window_shopper"]
    assert orders_pp["loyal_high_value"] > 3 * orders_pp["email_engaged_non_buyer"]
    assert events_pp["window_shopper"] > 4 * events_pp["email_engaged_non_buyer"]

    emails = landing(spark, config, "email_events").join(
        owners.where("source = 'email_events'").withColumnRenamed("record_id", "event_id"),
        "event_id").join(persons, "person_id")
    rates = {r["archetype"]: r["rate"] for r in emails.groupBy("archetype").agg(
        (F.sum((F.col("event") == "open").cast("int"))
         / F.sum((F.col("event") == "delivered").cast("int"))).alias("rate")).collect()}
    assert rates["email_engaged_non_buyer"] > 2 * rates["dormant_churning"]

    coupons = orders.join(owners.where("source = 'orders'")
                          .withColumnRenamed("record_id", "order_id"), "order_id") \
        .join(persons, "person_id").where("channel != 'store'").groupBy("archetype").agg(
            F.avg(F.col("coupon_code").isNotNull().cast("int")).alias("share"))
    share = {r["archetype"]: r["share"] for r in coupons.collect()}
    assert share["bargain_hunter"] > 2 * share["loyal_high_value"]

    # dormant customers fade: far fewer events in the last month than in the first
    ts = F.coalesce(F.try_to_timestamp("event_ts"), F.timestamp_millis(
        F.col("event_ts").try_cast("long")))
    dated = events.select("event_id", ts.alias("ts")).join(
        owners.withColumnRenamed("record_id", "event_id"), "event_id").join(persons, "person_id")
    first_month = dated.where(F.col("ts") < F.lit(str(spec.start + dt.timedelta(days=30))))
    last_month = dated.where(F.col("ts") >= F.lit(str(spec.start + dt.timedelta(days=60))))
    dormant = "archetype = 'dormant_churning'"
    assert first_month.where(dormant).count() > 3 * last_month.where(dormant).count()


def test_bots_and_resellers_are_injected_with_their_truth(spark, config, world):
    spec, _ = world
    flagged = truth(spark, config, "flagged")
    bots = flagged.where("flag = 'bot'")
    assert bots.count() == spec.bots == round(spec.persons * spec.bot_rate)
    assert {r[0] for r in bots.select("behaviour").distinct().collect()} == \
        {"crawler", "scraper", "monitor"}
    assert bots.where("person_id >= 0").count() == 0
    # bots' events are web events only, none of a person's identifiers, no login
    rows = truth(spark, config, "landing_rows").where("person_id < 0")
    assert {r[0] for r in rows.select("source").distinct().collect()} == {"web_events"}
    web = landing(spark, config, "web_events").join(
        rows.select(F.col("record_id").alias("event_id")), "event_id")
    assert web.count() > 1000 and web.where(F.col("user_id").isNotNull()).count() == 0
    # resellers are persons with an account, and their order lines carry tens of units
    resellers = flagged.where("flag = 'outlier'").join(truth(spark, config, "persons"),
                                                       "person_id")
    n = resellers.count()
    assert 0.4 * spec.outlier_rate * spec.persons < n < 2 * spec.outlier_rate * spec.persons
    assert resellers.where(~F.col("has_account")).count() == 0
    owners = truth(spark, config, "landing_rows").where("source = 'orders' AND defect IS NULL") \
        .join(resellers.select("person_id"), "person_id").select(
            F.col("record_id").alias("order_id"))
    units = landing(spark, config, "orders").join(owners, "order_id").select(
        F.explode("lines").alias("line")).select(F.col("line.quantity").cast("int").alias("q"))
    assert units.count() > 10 and units.agg(F.min("q")).first()[0] >= 10
