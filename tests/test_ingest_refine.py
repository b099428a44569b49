"""Ingest and refine on demo data, checked against the generator's ground truth."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import gzip
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import TEST_KEY, expressions
from deltalake import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql.types import MapType

from seglake.config import PrivacyConfig, SeglakeConfig
from seglake.declarations import INGEST_FILES, QUARANTINE, RUN_LOG
from seglake.demo import DemoSpec, generate
from seglake.demo.landing import SOURCES
from seglake.ingest import run_ingest
from seglake.lakehouse import Lakehouse
from seglake.privacy import (
    DEMO_KEY,
    KEY_VARIABLE,
    PrivacyError,
    canonical_email,
    e164_phone,
    email_key,
    keyed_hash,
    pseudonymization_key,
)
from seglake.refine import QualityError, RefineError, run_refine
from seglake.runlog import RunLog

# what each injected defect must be quarantined as (detail = the field the generator spoiled)
RULE_OF_DEFECT = {"malformed": "parseable", "missing_required": "required",
                  "bad_timestamp": "timestamp", "future_timestamp": "not_future",
                  "unknown_type": "known_value", "bad_amount": "amount_in_range"}


def expected_rule(defect: str, detail: str | None) -> str:
    if defect == "malformed":
        return "parseable"
    field = detail.removeprefix("missing ") if detail else ""
    return f"{RULE_OF_DEFECT[defect]}:{field}"


def hmac_hex(text: str) -> str:
    return hmac.new(TEST_KEY.encode(), text.encode(), hashlib.sha256).hexdigest()


def with_roots(config: SeglakeConfig, root: Path, **sections: dict) -> SeglakeConfig:
    data = config.model_dump()
    data["lakehouse"]["root"] = str(root / "lakehouse")
    data["landing"]["root"] = str(root / "landing")
    data["truth"]["root"] = str(root / "truth")
    data["reports"]["root"] = str(root / "reports")
    for name, values in sections.items():
        data[name].update(values)
    return SeglakeConfig.model_validate(data)


@pytest.fixture(scope="module")
def lake(spark, config, refined) -> Lakehouse:
    return Lakehouse.from_config(spark, config)


def truth(spark, config, name: str):
    return spark.read.parquet(f"{config.truth.root}/{name}")


# ------------------------------------------------------------------------------ ingest

def test_bronze_holds_every_landing_line_once_and_a_rerun_adds_nothing(spark, config, lake):
    lines = {r["source"]: r["count"] for r in
             truth(spark, config, "landing_rows").groupBy("source").count().collect()}
    for source, count in lines.items():
        assert lake.read(f"bronze.{source}").count() == count, source
    versions = {s: lake.version(f"bronze.{s}") for s in lines}
    again = run_ingest(spark, config)
    assert all(r.batches == 0 and r.rows == 0 for r in again)
    assert {s: lake.version(f"bronze.{s}") for s in lines} == versions
    corrupt = lake.read("bronze.web_events").where("_corrupt_record IS NOT NULL")
    assert corrupt.count() == truth(spark, config, "landing_rows").where(
        "source = 'web_events' AND defect = 'malformed'").count()
    assert corrupt.where("_source_file IS NULL OR _batch_id IS NULL OR _ingested_at IS NULL") \
        .count() == 0


@pytest.fixture(scope="module")
def tiny(spark, config, tmp_path_factory):
    """A small separate world (and lakehouse) that tests may change."""
    root = tmp_path_factory.mktemp("tiny")
    cfg = with_roots(config, root)
    generate(spark, DemoSpec(persons=120, days=6, seed=11, future_days=7),
             cfg.landing.root, cfg.truth.root)
    return cfg


def test_new_files_and_a_replayed_batch_are_each_ingested_exactly_once(spark, tiny, tmp_path):
    cfg = tiny
    orders = Path(cfg.landing.root) / "orders"
    later = sorted(orders.iterdir())[-2:]  # the last two days arrive after the first run
    for file in later:
        file.rename(tmp_path / file.name)
    run_ingest(spark, cfg, ["orders"])
    lake = Lakehouse.from_config(spark, cfg)
    first = lake.read("bronze.orders").count()
    for file in later:
        (tmp_path / file.name).rename(file)
    [result] = run_ingest(spark, cfg, ["orders"])
    assert result.batches == 1 and result.files_loaded == 2
    landed = spark.read.parquet(f"{cfg.truth.root}/landing_rows").where("source = 'orders'")
    assert lake.read("bronze.orders").count() == landed.count() > first
    # killed after the bronze commit, before the stream recorded the batch: it is replayed
    commits = Path(cfg.lakehouse.root) / "_checkpoints" / "ingest" / "orders" / "commits"
    last = max(commits.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else -1)
    last.unlink()
    (commits / f".{last.name}.crc").unlink(missing_ok=True)
    runlog = RunLog(lake, "ingest")
    [replayed] = run_ingest(spark, cfg, ["orders"], runlog=runlog)
    assert replayed.batches == 1
    assert lake.read("bronze.orders").count() == landed.count()
    assert lake.read(RUN_LOG).where(F.col("run_id") == runlog.run_id) \
        .where(F.col("message").contains("replayed")).count() == 1


def test_a_lost_checkpoint_or_a_moved_landing_root_stops_ingest_and_says_why(
        spark, tiny, tmp_path):
    from seglake.ingest import IngestError

    cfg = tiny
    run_ingest(spark, cfg, ["consents"])
    lake = Lakehouse.from_config(spark, cfg)
    version, rows = lake.version("bronze.consents"), lake.read("bronze.consents").count()
    assert rows > 0
    # without its checkpoint, the stream would count batches from 0 again: refused
    checkpoint = Path(cfg.lakehouse.root) / "_checkpoints" / "ingest" / "consents"
    checkpoint.rename(tmp_path / "kept")
    with pytest.raises(IngestError, match="checkpoint .* is missing"):
        run_ingest(spark, cfg, ["consents"])
    assert lake.version("bronze.consents") == version and not checkpoint.exists()
    (tmp_path / "kept").rename(checkpoint)
    [again] = run_ingest(spark, cfg, ["consents"])
    assert again.rows == 0 and lake.read("bronze.consents").count() == rows
    # the same lakehouse reading the files from another root: named, not Spark's basePath
    shutil.copytree(cfg.landing.root, tmp_path / "moved")
    moved = cfg.model_copy(update={"landing": cfg.landing.model_copy(
        update={"root": str(tmp_path / "moved")})})
    with pytest.raises(IngestError, match="another landing root"):
        run_ingest(spark, moved, ["consents"])
    assert lake.version("bronze.consents") == version


def test_unreadable_files_are_rejected_with_a_reason_and_the_others_go_in(spark, tiny):
    cfg = tiny
    run_ingest(spark, cfg, ["orders", "crm_eshop"])  # what had arrived so far
    landing = Path(cfg.landing.root)
    (landing / "orders" / "orders_junk.jsonl").write_bytes(bytes(range(256)) * 40)
    latin1 = "id_client;prenom;nom;email\nC1;Hélène;Bézier;h@x.fr\nC2;Zoé;Noël;z@x.fr\n"
    (landing / "crm_eshop" / "crm_eshop_latin1.csv").write_bytes(latin1.encode("latin-1"))
    first = sorted((landing / "orders").glob("orders_2*.jsonl"))[0]
    redelivered = landing / "orders" / "orders_redelivered.jsonl"  # a good new file
    redelivered.write_bytes(first.read_bytes())
    lines = first.read_text(encoding="utf-8").splitlines()
    good = [json.loads(line) for line in lines if line.startswith('{"order_id":"CMD-')][:2]
    for n, record in enumerate(good, 1):
        record["order_id"] = f"NUL-{n}"
    good[0]["coupon_code"] = "A\u0000B"  # one valid record with a NUL in a field
    (landing / "orders" / "orders_nul.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in good), encoding="utf-8")
    (landing / "orders" / "orders_empty.jsonl").write_bytes(b"")  # 0 bytes
    header = sorted((landing / "crm_eshop").glob("crm_eshop_2*.csv"))[0].read_text(
        "utf-8-sig").splitlines()[0]
    (landing / "crm_eshop" / "crm_eshop_header_only.csv").write_text(header + "\n", "utf-8")
    short = header.rsplit(";", 1)[0]  # no records, and a header short of a declared column
    (landing / "crm_eshop" / "crm_eshop_short_header.csv").write_text(short + "\n", "utf-8")
    packed = gzip.compress(first.read_bytes())
    (landing / "orders" / "orders_cut.jsonl.gz").write_bytes(packed[:len(packed) // 2])
    before = Lakehouse.from_config(spark, cfg).read("bronze.orders").count()
    results = {r.source: r for r in run_ingest(spark, cfg, ["orders", "crm_eshop"])}
    lake = Lakehouse.from_config(spark, cfg)
    assert sorted(Path(f).name for f, _ in results["orders"].files_rejected) == \
        ["orders_cut.jsonl.gz", "orders_junk.jsonl"]
    assert sorted(Path(f).name for f, _ in results["crm_eshop"].files_rejected) == \
        ["crm_eshop_latin1.csv", "crm_eshop_short_header.csv"]
    assert lake.read("bronze.orders").count() == before + len(lines) + 2
    assert results["orders"].files_loaded == 3  # the good new file, the NUL one, the empty one
    empty = {Path(r["file"]).name: (r["records"], r["status"]) for r in lake.read(INGEST_FILES)
             .where("records = 0").collect()}
    assert empty["orders_empty.jsonl"] == empty["crm_eshop_header_only.csv"] == (0, "loaded")
    nul_rows = lake.read("bronze.orders").where(F.col("_source_file").contains("orders_nul"))
    assert [r["order_id"] for r in nul_rows.where("_corrupt_record IS NOT NULL").collect()] \
        == ["NUL-1"]  # set aside alone (refine quarantines it as unparseable)
    assert nul_rows.where("_corrupt_record IS NULL").count() == 1
    files = lake.read(INGEST_FILES).where("status = 'rejected'").collect()
    reasons = {Path(r["file"]).name: r["reason"] for r in files}
    assert set(reasons) == {"orders_junk.jsonl", "crm_eshop_latin1.csv", "orders_cut.jsonl.gz",
                            "crm_eshop_short_header.csv"}
    assert reasons["crm_eshop_short_header.csv"].startswith("the header lacks ")
    assert "decode" in reasons["orders_junk.jsonl"]
    assert "decode" in reasons["crm_eshop_latin1.csv"]
    assert reasons["orders_cut.jsonl.gz"].startswith("cannot be read: ")  # a truncated archive
    logged = lake.read(RUN_LOG).where("stage = 'ingest' AND rejected_files > 0").collect()
    assert any("orders_junk.jsonl" in r["message"] for r in logged)
    assert lake.read("bronze.orders").where(
        F.col("_source_file").contains("junk")).count() == 0


# ------------------------------------------------------------------------------ refine

def test_refine_reconciles_bronze_with_silver_quarantine_and_duplicates(spark, config, lake):
    log = lake.read(RUN_LOG).where("stage = 'refine' AND status = 'ok'").collect()
    assert {r["source"] for r in log} == set(config.sources)
    dups = {r["source"]: r["count"] for r in truth(spark, config, "landing_rows")
            .where("defect = 'duplicate'").groupBy("source").count().collect()}
    for r in log:
        source, batch = r["source"], r["batch_id"]
        assert r["rows_in"] == r["rows_out"] + r["quarantined"] + r["duplicates"], source
        bronze = lake.read(f"bronze.{source}").where(F.col("_batch_id") == batch).count()
        assert r["rows_in"] == bronze, source
        mine = (F.col("_source") == source) & (F.col("_batch_id") == batch)
        assert lake.read(QUARANTINE).where(mine).count() == r["quarantined"], source
        if r["table"] not in ("silver.consents", "silver.products"):  # latest-state tables
            assert lake.read(r["table"]).where(mine).count() == r["rows_out"], source
        assert r["duplicates"] == dups.get(source, 0), source


def _landing_record(source: str, text: str, header: list[str]) -> dict:
    """A landing line as the record refine keeps in quarantine (JSON without nulls)."""
    spec = SOURCES[source]
    if spec.kind == "json":
        values = json.loads(text)
    else:  # an empty CSV field reads as null
        values = {k: v for k, v in zip(header, next(csv.reader([text], delimiter=spec.sep)),
                                       strict=False) if v != ""}
    return {k: (json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else str(v))
            for k, v in values.items() if v is not None}


def test_every_injected_bad_row_is_quarantined_under_its_rule_and_no_good_row_is(
        spark, config, lake):
    bad = truth(spark, config, "landing_rows") \
        .where("defect IS NOT NULL AND defect != 'duplicate'").collect()
    quarantine = lake.read(QUARANTINE).collect()
    assert len(quarantine) == len(bad)
    landing = Path(config.landing.root)
    texts: dict[str, list[str]] = {}
    expected = {}
    for row in bad:
        lines = texts.setdefault(row["file"], (landing / row["file"]).read_text(
            encoding="utf-8-sig").splitlines())
        text = lines[row["line"] - 1]
        header = lines[0].split(SOURCES[row["source"]].sep)
        rule = expected_rule(row["defect"], row["detail"])
        key = (row["source"], Path(row["file"]).name, text if rule == "parseable"
               else json.dumps(_landing_record(row["source"], text, header), sort_keys=True))
        expected.setdefault(key, []).append((rule, row["defect"]))
    for q in quarantine:
        raw = q["raw_record"]
        if q["rules"] != ["parseable"]:
            raw = json.dumps({k: (json.dumps(v, sort_keys=True) if isinstance(v, (list, dict))
                                  else str(v)) for k, v in json.loads(raw).items()},
                             sort_keys=True)
        key = (q["_source"], Path(q["_source_file"]).name, raw)
        assert key in expected and expected[key], f"not an injected bad row: {key}"
        rule, defect = expected[key].pop()
        empty_type = defect == "unknown_type" and rule.replace("known_value", "required") \
            in q["rules"]  # an empty value is indistinguishable from a missing one
        assert rule in q["rules"] or empty_type, (key, q["rules"])


@pytest.mark.parametrize("compiled", [False, True])
def test_delivered_text_is_trimmed_collapsed_and_empty_is_null(spark, compiled):
    """refine's cleaning of every delivered value, against Python's reading of the rule: runs
    of ASCII whitespace (Java's \\s) become one space, spaces are trimmed, empty is null; other
    spaces (no-break) stay. In Spark's compiled and interpreted modes alike."""
    from seglake.refine.tables import text

    values = [None, "", " ", " \t\n ", "a", " a ", "a  b", "a\t\tb", " x \n y ", "\u00a0a",
              "a\u00a0 \u00a0b", "\r\nline\f", "é  è"]
    expected = [(re.sub(r"[ \t\n\x0b\f\r]+", " ", v).strip(" ") or None) if v is not None
                else None for v in values]
    df = spark.createDataFrame([(i, v) for i, v in enumerate(values)], "i INT, v STRING")
    with expressions(spark, compiled):
        got = [r[1] for r in df.select("i", text(F.col("v"))).orderBy("i").collect()]
    assert got == expected


def test_silver_is_typed_in_utc_and_carries_no_direct_identifiers(spark, config, lake):
    landing = Path(config.landing.root) / "crm_eshop"
    first = sorted(landing.iterdir())[0].read_text(encoding="utf-8").splitlines()
    header, row = first[0].split(";"), dict(zip(first[0].split(";"),
                                                first[1].split(";"), strict=True))
    assert header[0] == "id_client"
    local = dt.datetime.strptime(row["date_creation"], "%d/%m/%Y %H:%M:%S")
    utc = local.replace(tzinfo=ZoneInfo("Europe/Paris")).astimezone(dt.timezone.utc)
    record = lake.read("silver.customers_raw").where(
        F.col("record_key") == f"eshop:{row['id_client']}").first()
    assert record["created_at"] == utc.replace(tzinfo=None)
    assert record["email_hash"] == hmac_hex(row["email"].strip().lower())
    loyalty = (Path(config.landing.root) / "crm_loyalty")
    lrow = sorted(loyalty.iterdir())[0].read_text(encoding="utf-8-sig").splitlines()[1] \
        .split(";")
    turnover = lake.read("silver.customers_raw").where(
        F.col("record_key") == f"loyalty:{lrow[0]}").first()["loyalty_turnover"]
    assert turnover == pytest.approx(float(lrow[11].replace(",", ".")))
    for table in ("silver.events", "silver.orders", "silver.order_lines", "silver.email_events",
                  "silver.customers_raw", "silver.consents"):
        df = lake.read(table)
        text = F.to_json(F.struct(*[c for c in df.columns if c != "_source_file"]))
        assert df.where(text.contains("@")).count() == 0, f"an email in {table}"
    pii = lake.read("silver.customers_raw_pii")
    assert pii.where(F.col("email").contains("@")).count() > 0.9 * pii.count()
    assert pii.where(F.col("phone").isNotNull() & ~F.col("phone").rlike(r"^\+33\d{9}$")) \
        .count() == 0


def test_email_and_phone_variants_hash_alike(spark):
    df = spark.createDataFrame(
        [(" Jean.Dupont@Orange.FR ", "+33 6 12 34 56 78"), ("jean.dupont@orange.fr", "0612345678"),
         ("JEAN.DUPONT@ORANGE.FR", "06.12.34.56.78")], "email STRING, phone STRING")
    out = df.select(keyed_hash(email_key(F.col("email")), TEST_KEY.encode()).alias("e"),
                    keyed_hash(e164_phone(F.col("phone"), "FR"), TEST_KEY.encode())
                    .alias("p"), e164_phone(F.col("phone"), "FR").alias("e164")).collect()
    assert {r["e"] for r in out} == {hmac_hex("jean.dupont@orange.fr")}
    # the mailbox, not the spelling: gmail ignores dots and +tags; orange.fr does neither
    mailboxes = spark.createDataFrame(
        [("Jean.Dupont+shop@gmail.com",), ("jeandupont@googlemail.com",),
         ("j.ean.dupont@gmail.com",), ("jean.dupont+news@orange.fr",), ("not an address",)],
        "email STRING")
    keys = [r[0] for r in mailboxes.select(email_key(F.col("email"))).collect()]
    assert keys == ["jeandupont@gmail.com"] * 3 + ["jean.dupont+news@orange.fr", None]
    assert [r[0] for r in mailboxes.select(canonical_email(F.col("email"))).collect()][0] \
        == "jean.dupont+shop@gmail.com"  # the address as written stays for display
    assert {r["e164"] for r in out} == {"+33612345678"}
    assert {r["p"] for r in out} == {hmac_hex("+33612345678")}


def test_the_duckdb_keyed_hash_is_the_hmac_for_keys_of_every_length():
    """The driver's SQL hashes (keys of new customers and anonymous visitors) must be those
    Spark and Python make: RFC 2104 pads a short key and hashes one over 64 bytes first."""
    import duckdb

    from seglake.privacy import keyed_digest, keyed_hash_macro

    texts = ["client:ck-1", "", "Gwenaëlle|日本", "x" * 200, None]
    for key in (TEST_KEY.encode(), b"k", bytes(range(64)), bytes(range(100))):
        con = duckdb.connect()
        keyed_hash_macro(con, key)
        found = [r[0] for r in con.execute("select keyed_hash(t) from unnest($texts) u(t)",
                                           {"texts": texts}).fetchall()]
        assert found == [None if t is None else keyed_digest(t, key) for t in texts], key
        assert found[0] == hmac.new(key, b"client:ck-1", hashlib.sha256).hexdigest()
        con.close()


def test_the_key_comes_from_the_environment_or_demo_mode_says_so(caplog):
    with pytest.raises(PrivacyError, match=KEY_VARIABLE):
        pseudonymization_key(PrivacyConfig(), environ={})
    with pytest.raises(PrivacyError, match="shorter"):
        pseudonymization_key(PrivacyConfig(), environ={KEY_VARIABLE: "short"})
    assert pseudonymization_key(PrivacyConfig(), environ={KEY_VARIABLE: TEST_KEY}) \
        == TEST_KEY.encode()
    with caplog.at_level(logging.WARNING):
        key = pseudonymization_key(PrivacyConfig(demo_mode=True), environ={})
    assert key == DEMO_KEY.encode() and "DEMO MODE" in caplog.text
    assert TEST_KEY not in caplog.text


def test_consents_hold_the_latest_state_per_subject_and_purpose(spark, config, lake):
    silver = lake.read("silver.consents")
    assert silver.count() == silver.select("subject_hash", "purpose").distinct().count()
    bronze = lake.read("bronze.consents").where("_corrupt_record IS NULL")
    rows = [r for r in bronze.withColumn("mailbox", email_key(F.col("email"))).collect()
            if r["email"] and r["status"] in ("granted", "withdrawn") and r["updated_at"]]
    latest: dict[str, tuple[dt.datetime, str]] = {}
    for r in rows:
        try:
            when = dt.datetime.fromisoformat(r["updated_at"])
        except ValueError:
            continue
        if when.year > 2100:
            continue
        h = hmac_hex(r["mailbox"]) if r["mailbox"] else None
        if h not in latest or when > latest[h][0]:
            latest[h] = (when, r["status"])
    states = {r["subject_hash"]: r["status"] for r in silver.collect()}
    assert {h: s for h, (_, s) in latest.items()} == states
    assert "withdrawn" in states.values() and "granted" in states.values()


def test_a_blocking_suite_stops_the_commit_and_a_warning_suite_records(
        spark, tiny, orders_capped_at):
    cfg = tiny
    run_ingest(spark, cfg, ["orders"])
    lake = Lakehouse.from_config(spark, cfg)
    orders_capped_at(1)
    with pytest.raises(RefineError, match="expect_column_values_to_be_between.*nothing was "
                                          "committed to silver.orders"):
        run_refine(spark, cfg, ["orders"])
    assert not lake.exists("silver.orders") and not lake.exists(QUARANTINE)
    from seglake.refine.stage import pending_batches

    batches = len(pending_batches(lake, "orders"))  # each judged on its own, each held back
    failed = lake.read("ops.quality_results").where("NOT success").collect()
    assert [r["table"] for r in failed] == ["silver.orders"] * batches
    assert all(r["blocking"] and r["unexpected_count"] > 0 for r in failed)
    warn = with_roots(cfg, Path(cfg.lakehouse.root).parent, quality={"blocking": []})
    [result] = run_refine(spark, warn, ["orders"])
    assert lake.read("silver.orders").count() == result.silver_rows > 0
    assert lake.read("ops.quality_results").where("NOT success AND NOT blocking").count() == \
        batches
    docs = list(Path(cfg.reports.root).rglob("quality/index.html"))
    assert docs, "GX Data Docs were not written"
    assert all("silver.orders" in d.read_text() for d in docs)  # built once, after the checks
    import seglake.refine.stage as stage

    with pytest.raises(QualityError):  # the capped gate, called directly
        gate = stage.QualityGate(lake, cfg.quality, "t", Path(cfg.reports.root) / "t")
        gate.check("silver.orders", lake.read("silver.orders"))


# ------------------------------------------------------------------------------ erasure

def test_erasure_removes_the_subject_from_every_version_and_nothing_else(
        spark, config, lake, featured, tmp_path):
    from seglake.erasure import erase

    shutil.copytree(config.lakehouse.root, tmp_path / "lakehouse")
    data = config.model_dump()
    data["lakehouse"]["root"] = str(tmp_path / "lakehouse")
    cfg = SeglakeConfig.model_validate(data)
    copy = Lakehouse.from_config(spark, cfg)
    # someone with one CRM record (identity resolution is another stage), orders, events
    crm = truth(spark, config, "crm_records").select("crm_id", "system", "person_id")
    single = crm.groupBy("person_id").count().where("count = 1").drop("count")
    ordered = lake.read("silver.orders").where("customer_id IS NOT NULL") \
        .select(F.col("customer_id").alias("crm_id")).distinct()
    known = lake.read("silver.customers_raw_pii").select(F.col("source_id").alias("crm_id"),
                                                     F.col("email").alias("pii_email"))
    persons = truth(spark, config, "persons").select("person_id", "email")
    person = crm.where("system = 'eshop'").join(single, "person_id").join(ordered, "crm_id") \
        .join(known, "crm_id").join(persons, "person_id") \
        .where(F.lower("email") == F.col("pii_email")).orderBy("person_id").first()
    email, crm_ids = person["email"], [person["crm_id"]]
    clients = {v for r in lake.read("silver.events").where(F.col("user_id").isin(crm_ids))
               .select("cookie_id", "device_id").collect() for v in r if v}
    assert clients
    mailbox = hmac_hex(spark.range(1).select(email_key(F.lit(email))).first()[0])
    orders = [r[0] for r in lake.read("silver.orders").where(
        F.col("customer_id").isin(crm_ids)
        | (F.col("customer_email_hash") == mailbox)).select("order_id").collect()]
    # after identity resolution: the subject's customer key(s) mark its rows in the new tables
    keys = [r[0] for r in lake.read("silver.identity_map").where(
        F.col("id_value").isin(mailbox, *crm_ids)).select("customer_key").distinct().collect()]
    assert len(keys) == 1
    needles = [email.lower(), mailbox, *crm_ids, *clients, *orders, *keys]

    def is_subject(df):
        # any needle anywhere in the row's JSON (a substring search per needle: a regex
        # alternation of them all made this test three times as slow)
        text = F.lower(F.to_json(F.struct(*df.columns)))
        hit = F.lit(False)
        for needle in needles:
            hit = hit | text.contains(needle.lower())
        for column in ("cookie_id", "device_id"):
            if column in df.columns and clients:
                hit = hit | F.col(column).isin(sorted(clients))
        return F.coalesce(hit, F.lit(False))

    def counted(names: list[str]) -> dict[str, tuple]:
        """Per table: subject rows, other rows, and an order-free sum of the other rows'
        hashes (equal for equal multisets of rows); every table in one Spark job."""
        parts = []
        for name in names:
            df = copy.read(name)
            columns = [F.array_sort(F.map_entries(f.name)) if isinstance(f.dataType, MapType)
                       else F.col(f.name) for f in df.schema.fields]  # maps cannot be hashed
            marked = df.select(is_subject(df).alias("_subject"),
                               F.xxhash64(*columns).cast("decimal(38,0)").alias("_hash"))
            parts.append(marked.select(
                F.lit(name).alias("table"), F.count(F.when(F.col("_subject"), 1)),
                F.count(F.when(~F.col("_subject"), 1)),
                F.sum(F.when(~F.col("_subject"), F.col("_hash")))))
        rows = functools.reduce(lambda a, b: a.unionAll(b), parts).collect()
        return {r[0]: tuple(r[1:]) for r in rows}

    tables = [f"{layer.name}.{t.name}" for layer in (tmp_path / "lakehouse").iterdir()
              if not layer.name.startswith("_") for t in layer.iterdir()]
    assert {"silver.identity_map", "gold.customer_features"} <= set(tables)
    before = counted(tables)
    assert sum(subject for subject, _, _ in before.values()) > 10
    log_before = {tuple(r) for r in copy.read(RUN_LOG).collect()}

    result = erase(spark, cfg, email=f"  {email.upper()} ", vacuum=True)
    assert set(result.vacuumed) == set(result.rows_deleted)

    counted_after = counted([t for t in tables if t not in ("ops.erasure_log", RUN_LOG)])
    for table in tables:
        folder = tmp_path / "lakehouse" / table.replace(".", "/")
        # files of old versions: gone from every table erased (the live version is checked for
        # the subject below), and subject-free where the table was not touched; no log entry
        # (whose statistics could name a row) may hold the subject
        left = {str(f.relative_to(folder)) for f in folder.rglob("*.parquet")
                if "_delta_log" not in f.parts}
        live = {os.path.relpath(u, folder) for u in DeltaTable(str(folder)).file_uris()}
        stale = sorted(left - live)
        if table in result.vacuumed:
            assert not stale, f"files of old versions in {table}"
        elif stale:
            old = spark.read.parquet(*(str(folder / f) for f in stale))
            assert old.where(is_subject(old)).count() == 0, f"subject in old files of {table}"
        for entry in (folder / "_delta_log").glob("*.json"):
            text = entry.read_text(encoding="utf-8").lower()
            assert not any(n.lower() in text for n in needles), f"subject in {entry}"
        if table == "ops.erasure_log":
            continue
        if table == RUN_LOG:  # the run log gains the erasure's entries
            after = {tuple(r) for r in copy.read(RUN_LOG).collect()}
            kept = {r for r in log_before if not any(n.lower() in str(r).lower() for n in needles)}
            assert kept <= after, "run log entries lost"
        else:
            assert counted_after[table] == (0, *before[table][1:]), \
                f"other rows changed in {table}"
    entry = copy.read("ops.erasure_log").first()
    assert entry["subject_hash"] == mailbox
    assert email.lower() not in json.dumps(entry.asDict(), default=str).lower()
    grep = {str(p) for p in Path(config.landing.root).rglob("*.*")
            if email.lower() in p.read_text(encoding="utf-8-sig").lower()}
    assert grep and grep <= {f.removeprefix("file:") for f in result.landing_files}
