"""Bring your own data: exports in other shapes than the demo's, mapped by configuration only.

The files are written here by hand, with the defects real exports have, and every figure
asserted is worked out by hand from them (not by seglake's demo generator).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import io
import json
import random
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import TEST_KEY
from pyspark.sql import functions as F

from seglake import cli
from seglake.config import SeglakeConfig
from seglake.declarations import QUARANTINE, RUN_LOG
from seglake.ingest import run_ingest
from seglake.lakehouse import Lakehouse
from seglake.refine import RefineError, mapping_problems, run_refine

ORDERS_CSV = """order_no,client,order_date,total,qty
A1,C1,2025-10-01,12.50,2
A2,C2,2025-10-03,100,1
A3,C1,2025-10-05,NaN,1
A4,C3,2025-10-06,-5,1
A5,C2,01/10/2025,20,1
A2,C2,2025-10-03,100,1
A6,,2025-10-07,30,1
"""
MEMBERS_CSV = "member;joined\nC1;01.02.2024\nC2;15.03.2024\nC3;\n"

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "bring-your-own-data.md"


def guide_block(name: str) -> dict:
    """The YAML block of the guide marked ``<!-- tested: name -->``: the docs are what runs."""
    text = GUIDE.read_text(encoding="utf-8")
    match = re.search(rf"<!-- tested: {name} -->\s*```yaml\n(.*?)```", text, re.S)
    assert match, f"no tested block {name} in {GUIDE.name}"
    return yaml.safe_load(match.group(1))


FLAT = guide_block("flat-export")["sources"]


def test_the_guide_holds_the_generated_reference_of_canonical_inputs():
    from seglake.inputs import inputs_markdown

    assert inputs_markdown() in GUIDE.read_text(encoding="utf-8"), \
        "regenerate the guide's canonical inputs from seglake.inputs.inputs_markdown()"


def flat_export(customers: int = 240, seed: int = 7) -> dict[str, str]:
    """A shop's flat order export (one CSV per month, its own column names, day dates, no
    status, no products) and its ids-only member list, drawn with Python's random."""
    rng = random.Random(seed)
    months: dict[str, list[str]] = {}
    for n in range(1, customers + 1):
        rate = rng.choice([0.0, 0.01, 0.03, 0.08])  # orders per day
        day = dt.date(2025, 5, 1)
        while day < dt.date(2025, 9, 30):
            if rng.random() < rate:
                total = round(rng.uniform(5, 150), 2)
                months.setdefault(day.strftime("%Y-%m"), []).append(
                    f"O{n:04d}{day:%m%d},C{n:04d},{day:%Y-%m-%d},{total},{rng.randint(1, 4)}")
            day += dt.timedelta(days=1)
    files = {f"shop_orders/orders_{m}.csv": "order_no,client,order_date,total,qty\n"
             + "\n".join(rows) + "\n" for m, rows in months.items()}
    files["members/members.csv"] = "member;joined\n" + "".join(
        f"C{n:04d};{1 + n % 28:02d}.0{1 + n % 4}.2024\n" for n in range(1, customers + 1))
    return files


def own_config(config: SeglakeConfig, root: Path, sources: dict) -> SeglakeConfig:
    data = config.model_dump(mode="json")
    for section in ("lakehouse", "landing", "truth", "reports"):
        data[section]["root"] = str(root / section)
    data["sources"] = sources
    # these retailers' tests assert that clusters and scores exist for everyone, not their
    # quality (the demo world's tests do): a smaller k range, one start, fewer trees; models
    # fitted on a sample of 150 customers where there are more (the flat export's 240)
    data["clustering"].update(k_min=2, k_max=4, starts=1, bootstrap_runs=1, fit_sample=150)
    data["scoring"].update(num_trees=[20], fit_sample=150)
    return SeglakeConfig.model_validate(data)


def refined_lake(spark, config: SeglakeConfig, root: Path, sources: dict) -> Lakehouse:
    """The lakehouse under ``root`` after ingest and refine of what its landing holds."""
    cfg = own_config(config, root, sources)
    run_ingest(spark, cfg)
    run_refine(spark, cfg)
    return Lakehouse.from_config(spark, cfg)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "landing" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_mapping_errors_are_named_with_their_key_before_spark_starts(config, tmp_path):
    broken = {"shop_orders": {**FLAT["shop_orders"],
                              "mapping": {"order_id": "order_nr", "ordered_at": "order_date",
                                          "customer_id": "reflect('java.lang.System', 'exit')",
                                          "amount": "total", "basket": "qty"},
                              "defaults": {}}}
    cfg = own_config(config, tmp_path, broken)
    problems = "\n".join(mapping_problems(cfg))
    assert "sources.shop_orders.mapping.basket: orders has no column 'basket'" in problems
    assert "sources.shop_orders.mapping.order_id: unknown column 'order_nr' (did you mean " \
           "order_no, order_date?)" in problems
    assert "sources.shop_orders.mapping.customer_id: function reflect() is not allowed" \
        in problems
    assert "required column 'status' of orders is not mapped; set sources.shop_orders." \
           "mapping.status" in problems and "or sources.shop_orders.defaults.status" in problems
    with pytest.raises(RefineError, match="sources.shop_orders.mapping.basket"):
        run_refine(None, cfg)  # refused before it needs Spark
    path = tmp_path / "seglake.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    assert cli.main(["check", "--config", str(path)]) == 1


def test_a_role_is_required_and_unknown_sources_are_refused(config, tmp_path):
    from seglake.config import ConfigError, load_config

    source = {k: v for k, v in FLAT["members"].items() if k != "role"}
    path = tmp_path / "seglake.yaml"
    path.write_text(yaml.safe_dump({"sources": {"members": source}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="sources.members.role"):
        load_config(path)
    with pytest.raises(RefineError, match=r"unknown source\(s\) \['crm'\]"):
        run_refine(None, own_config(config, tmp_path, FLAT), ["crm"])


@pytest.fixture(scope="module")
def flat(spark, config, tmp_path_factory):
    root = tmp_path_factory.mktemp("flat")
    write(root, {"shop_orders/orders_2025-10.csv": ORDERS_CSV,
                 "members/members.csv": MEMBERS_CSV})
    refined_lake(spark, config, root, FLAT)
    return own_config(config, root, FLAT)


def test_check_samples_each_source_and_names_the_rows_that_will_not_parse(flat, capsys):
    path = Path(flat.reports.root).parent / "seglake.yaml"
    path.write_text(yaml.safe_dump(flat.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    assert cli.main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "source shop_orders (orders): 7 rows sampled" in out
    assert "warning: shop_orders.ordered_at: 1 of 7 values do not parse as timestamp " \
           "(yyyy-MM-dd)" in out
    assert "warning: shop_orders: 2 of 7 sampled rows break amount_in_range:total" in out
    assert "source members (customers): 3 rows sampled, no finding(s)" in out
    returns = Path(flat.landing.root) / "returns"  # delivered, and read by no source
    returns.mkdir()
    try:
        (returns / "r.csv").write_text("order_no\nA1\n", encoding="utf-8")
        assert cli.main(["check", "--config", str(path)]) == 1
        assert "error: landing folder 'returns' is read by no source: declare it under " \
               "sources" in capsys.readouterr().out
    finally:
        shutil.rmtree(returns)


def test_bronze_of_a_source_no_longer_declared_is_an_error_not_dropped(spark, flat):
    cfg = flat.model_copy(update={"sources": {"shop_orders": flat.sources["shop_orders"]}})
    with pytest.raises(RefineError, match="bronze.members has no declared source 'members': "
                                          "its rows go no further"):
        run_refine(spark, cfg)
    with pytest.raises(RefineError, match="unknown source"):
        run_refine(spark, cfg, ["members"])
    run_refine(spark, cfg, ["shop_orders"])  # named sources: the others are not judged


def test_a_flat_order_export_refines_to_orders_with_hand_computed_amounts(spark, flat):
    lake = Lakehouse.from_config(spark, flat)
    orders = {r["order_id"]: r for r in lake.read("silver.orders").collect()}
    assert sorted(orders) == ["A1", "A2"]
    a1 = orders["A1"]
    assert (a1["customer_id"], a1["customer_email_hash"], a1["status"], a1["currency"]) == \
        ("C1", None, "completed", "EUR")
    assert (a1["gross_amount"], a1["items"], a1["discount"], a1["net_amount"]) == \
        (12.5, 2, 0.0, 12.5)
    # a date without a zone is midnight in the source's zone (New York, UTC-4 in October)
    assert a1["ordered_at"] == dt.datetime(2025, 10, 1, 4, 0)
    assert orders["A2"]["gross_amount"] == 100.0
    assert lake.read("silver.order_lines").count() == 0  # no products: no lines
    rules = {r["raw_record"]: r["rules"] for r in lake.read(QUARANTINE).collect()}
    by_order = {next(k for k in ("A3", "A4", "A5", "A6") if f'"{k}"' in raw): rule
                for raw, rule in rules.items()}
    assert by_order == {"A3": ["amount_in_range:total"], "A4": ["amount_in_range:total"],
                        "A5": ["timestamp:order_date"], "A6": ["required:client"]}
    log = lake.read(RUN_LOG).where("stage = 'refine' AND source = 'shop_orders'").first()
    assert (log["rows_in"], log["rows_out"], log["quarantined"], log["duplicates"]) == \
        (7, 2, 4, 1)


def test_an_ids_only_customer_list_refines_with_its_system_and_no_identifiers(spark, flat):
    lake = Lakehouse.from_config(spark, flat)
    records = {r["record_key"]: r for r in lake.read("silver.customers_raw").collect()}
    assert sorted(records) == ["members:C1", "members:C2", "members:C3"]
    assert records["members:C1"]["created_at"] == dt.datetime(2024, 1, 31, 23, 0)  # Paris
    assert records["members:C3"]["created_at"] is None
    assert all(r["email_hash"] is None and r["phone_hash"] is None for r in records.values())
    pii = lake.read("silver.customers_raw_pii").where(F.col("last_name").isNotNull())
    assert pii.count() == 0
    # the email expectation could not be met: recorded, and not blocking
    failed = lake.read("ops.quality_results").where(
        "NOT success AND table = 'silver.customers_raw'").collect()
    assert [r["column"] for r in failed] == ["email_hash"]


@pytest.fixture(scope="module")
def flat_run(spark, config, tmp_path_factory):
    """The whole pipeline, by configuration only, on the flat export: no events, no emails,
    no consents, no products, no personal data."""
    root = tmp_path_factory.mktemp("flat_run")
    files = flat_export()
    write(root, files)
    cfg = own_config(config, root, FLAT)
    path = root / "seglake.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), "utf-8")
    code = cli.main(["run", "--config", str(path)])
    return cfg, files, code


def test_the_whole_pipeline_runs_on_orders_and_ids_alone(spark, flat_run):
    cfg, files, code = flat_run
    assert code == 0
    lake = Lakehouse.from_config(spark, cfg)
    orders: dict[str, list[tuple[dt.date, float]]] = {}
    for name, text in files.items():
        if name.startswith("shop_orders/"):
            for line in text.splitlines()[1:]:
                _, client, day, total, _ = line.split(",")
                orders.setdefault(client, []).append((dt.date.fromisoformat(day), float(total)))
    features = lake.read("gold.customer_features")
    as_of = features.agg(F.max("as_of")).first()[0]
    assert as_of == max(d for rows in orders.values() for d, _ in rows) + dt.timedelta(days=1)
    keys = {r["id_value"]: r["customer_key"] for r in lake.read("silver.identity_map")
            .where("id_kind = 'customer_id'").collect()}
    assert len(keys) == 240  # every member its own customer: nothing to match them on
    now = {r["customer_key"]: r for r in features.where(F.col("as_of") == as_of).collect()}
    for client in sorted(orders)[:5]:
        rows = [(d, t) for d, t in orders[client] if (as_of - d).days <= 365]
        got = now[keys[client]]
        assert got["frequency_365d"] == len(rows), client
        assert got["monetary_365d"] == pytest.approx(sum(t for _, t in rows)), client
        assert got["recency_days"] == (as_of - max(d for d, _ in rows)).days, client
    never = sorted(set(keys) - set(orders))[0]
    assert not now[keys[never]]["orders_total"]
    # no email platform: its features are unknown (null), not zero, and rules reading them say so
    assert all(r["email_opened_30d"] is None for r in now.values())
    assert all(r["frequency_30d"] is not None for r in now.values())
    message = lake.read(RUN_LOG).where("stage = 'segment' AND table = 'gold.rule_segments'") \
        .first()["message"]
    assert "reads only-null email_opened_30d" in message
    scores = lake.read("gold.customer_scores").where(F.col("as_of") == as_of)
    assert scores.count() == 240
    assert scores.where("propensity_probability BETWEEN 0 AND 1").count() == 240
    assert lake.read("gold.customer_clusters").where(F.col("as_of") == as_of).count() == 240
    model = json.loads(lake.read("ops.models").where("kind = 'propensity'").first()["metrics"])
    assert any(n.startswith("email_") for n in model["inputs_left_out"])  # no email family
    # fitted on a seeded sample of about scoring/clustering.fit_sample (150) customers; all
    # 240 scored and clustered above
    assert model["labelled"] == 240 and 100 <= model["fitted_on"] < 200
    clusters = json.loads(lake.read("ops.models").where("kind = 'clustering'").first()["metrics"])
    assert clusters["customers"] == 240 and 100 <= clusters["fitted_on"] < 200
    assert lake.read("gold.segment_membership").where(F.col("as_of") == as_of).count() > 0


CRM = {"crm_shop": {
    "path": "crm_shop", "format": "csv", "options": {"header": "true", "sep": ";"},
    "columns": "card_no STRING, first STRING, last STRING, mail STRING, signup STRING",
    "role": "customers", "timezone": "Europe/Berlin",
    "mapping": {"source_id": "card_no", "first_name": "first", "last_name": "last",
                "email": "mail", "created_at": "signup", "system": "'shop'"},
    "formats": {"created_at": "MM/dd/yyyy HH:mm"},
    "subject": {"card_no": "customer_id", "mail": "email"}}}


def test_csv_fields_are_bound_by_header_name_and_a_header_short_of_a_column_is_rejected(
        spark, config, tmp_path):
    write(tmp_path, {
        "crm_shop/day1.csv": "card_no;first;last;mail;signup\n"
                             "K1;Anna;Berg;anna@example.org;03/01/2025 09:30\n",
        # the same export a day later, its columns in another order, one column more
        "crm_shop/day2.csv": "card_no;last;first;signup;mail;segment\n"
                             "K2;Roth;Ben;03/02/2025 18:05;ben@example.org;gold\n",
        "crm_shop/day3.csv": "card_no;first;last;signup\nK3;Cara;Vogt;03/03/2025 10:00\n",
    })
    lake = refined_lake(spark, config, tmp_path, CRM)
    files = {Path(r["file"]).name: r for r in lake.read("ops.ingest_files").collect()}
    assert files["day1.csv"]["status"] == files["day2.csv"]["status"] == "loaded"
    assert files["day3.csv"]["status"] == "rejected"
    assert "the header lacks mail" in files["day3.csv"]["reason"]
    pii = {r["source_id"]: r for r in lake.read("silver.customers_raw_pii").collect()}
    assert sorted(pii) == ["K1", "K2"]
    assert (pii["K2"]["first_name"], pii["K2"]["last_name"], pii["K2"]["email"]) == \
        ("Ben", "Roth", "ben@example.org")
    raw = {r["source_id"]: r for r in lake.read("silver.customers_raw").collect()}
    # 18:05 in Berlin (UTC+1 in March) is 17:05 UTC
    assert raw["K2"]["created_at"] == dt.datetime(2025, 3, 2, 17, 5)
    assert raw["K2"]["record_key"] == "shop:K2"


CLICKS = {
    "clicks": {
        "path": "clicks", "format": "parquet",
        "columns": "evt_uuid STRING, kind STRING, ts BIGINT, visitor STRING, member STRING, "
                   "url STRING, sku STRING",
        "role": "events",
        "mapping": {"event_id": "evt_uuid", "event_ts": "ts", "cookie_id": "visitor",
                    "user_id": "member", "page": "url", "product_id": "sku", "source": "'web'",
                    "event_type": "CASE kind WHEN 'view' THEN 'page_view' WHEN 'pdp' THEN "
                                  "'product_view' WHEN 'cart' THEN 'add_to_cart' ELSE kind END"},
        "formats": {"event_ts": "epoch_s"},
        "subject": {"member": "customer_id", "visitor": "client_id"}},
    "mailer": {
        "path": "mailer", "format": "json",
        "columns": "id STRING, recipient STRING, type STRING, at STRING, campaign STRING",
        "role": "email_events", "timezone": "Europe/London",
        "mapping": {"event_id": "id", "email": "recipient", "event": "lower(type)",
                    "event_ts": "at", "campaign_id": "campaign"},
        "subject": {"recipient": "email"}},
}


def test_parquet_events_in_epoch_seconds_and_json_email_events_by_configuration(
        spark, config, tmp_path):
    spark.createDataFrame([
        ("e1", "view", 1756900000, "ck1", None, "/home", None),
        ("e2", "pdp", 1756900060, "ck1", "M7", "/p/42", "P42"),
        ("e3", "cart", 1756900120, "ck1", "M7", "/p/42", "P42"),
        ("e4", "wishlist", 1756900180, "ck1", "M7", "/p/42", "P42"),  # not a known type
        ("e5", "view", 1756900240, None, None, "/home", None),        # no client at all
    ], CLICKS["clicks"]["columns"]).coalesce(1).write.parquet(str(tmp_path / "spark"))
    (tmp_path / "landing" / "clicks").mkdir(parents=True)
    next((tmp_path / "spark").glob("part-*.parquet")).rename(
        tmp_path / "landing" / "clicks" / "2025-09-03.parquet")  # one file, as delivered
    write(tmp_path, {"mailer/2025-09-03.jsonl": "\n".join([
        '{"id": "m1", "recipient": " Ben@Example.org", "type": "Open", '
        '"at": "2025-09-03 10:00:00", "campaign": "autumn"}',
        '{"id": "m2", "recipient": "ben@example.org", "type": "Click", '
        '"at": "2025-09-03T10:05:00Z", "campaign": "autumn"}',
        # valid JSON with a 21-million-character value (past Jackson's default limit)
        json.dumps({"id": "m3", "recipient": "ben@example.org", "type": "Sent",
                    "at": "2025-09-03 08:00:00", "campaign": "c" * 21_000_000})]) + "\n"})
    lake = refined_lake(spark, config, tmp_path, CLICKS)
    events = {r["event_id"]: r for r in lake.read("silver.events").collect()}
    assert sorted(events) == ["e1", "e2", "e3"]
    assert [events[e]["event_type"] for e in ("e1", "e2", "e3")] == \
        ["page_view", "product_view", "add_to_cart"]
    assert events["e2"]["event_ts"] == dt.datetime(2025, 9, 3, 11, 47, 40)  # 1756900060 UTC
    assert (events["e2"]["source"], events["e2"]["cookie_id"], events["e2"]["user_id"]) == \
        ("web", "ck1", "M7")
    rules = sorted(r["rules"] for r in lake.read(QUARANTINE).collect())
    assert rules == [["known_value:event_type"], ["required:visitor|member"]]
    mails = {r["event_id"]: r for r in lake.read("silver.email_events").collect()}
    digest = hmac.new(TEST_KEY.encode(), b"ben@example.org", hashlib.sha256).hexdigest()
    assert {m["email_hash"] for m in mails.values()} == {digest}
    assert (mails["m1"]["event"], mails["m2"]["event"]) == ("open", "click")
    assert len(mails["m3"]["campaign_id"]) == 21_000_000
    # a time without a zone is London time (UTC+1 in September); one with a zone is kept
    assert mails["m1"]["event_ts"] == dt.datetime(2025, 9, 3, 9, 0)
    assert mails["m2"]["event_ts"] == dt.datetime(2025, 9, 3, 10, 5)


def test_bad_arguments_are_refused_before_spark_starts(config, tmp_path, monkeypatch, capsys):
    import seglake.session

    def no_spark(*_, **__):
        raise AssertionError("Spark was started")
    monkeypatch.setattr(seglake.session, "get_spark", no_spark)
    path = tmp_path / "seglake.yaml"
    path.write_text(yaml.safe_dump(own_config(config, tmp_path, FLAT).model_dump(mode="json"),
                                   sort_keys=False), encoding="utf-8")
    assert cli.main(["ingest", "--config", str(path), "--source", "shop_order"]) == 2
    assert "unknown source(s) ['shop_order']; declared in the configuration: shop_orders, " \
           "members" in capsys.readouterr().err
    assert cli.main(["erase", "--config", str(path), "--email", "not-an-email"]) == 2
    assert "not an email address: 'not-an-email'" in capsys.readouterr().err


def test_a_batch_a_blocking_suite_refuses_is_held_back_alone(spark, config, tmp_path,
                                                              orders_capped_at):
    from seglake.refine.stage import pending_batches

    orders_capped_at(1000)  # orders above 1,000 are a delivery error for this shop
    sources = {"shop_orders": FLAT["shop_orders"]}
    cfg = own_config(config, tmp_path, sources)
    header = "order_no,client,order_date,total,qty\n"
    deliveries = [("d1.csv", "B1,C1,2025-10-01,20,1\n"),
                  ("d2.csv", "B2,C2,2025-10-02,5000,1\nB3,C3,2025-10-02,30,1\n"),
                  ("d3.csv", "B4,C1,2025-10-03,40,1\n")]
    for name, rows in deliveries[:2]:  # two deliveries, two ingest batches, one refine
        write(tmp_path, {f"shop_orders/{name}": header + rows})
        run_ingest(spark, cfg)
    with pytest.raises(RefineError, match=r"batch 1 held back: quality suite of silver.orders"):
        run_refine(spark, cfg)
    lake = Lakehouse.from_config(spark, cfg)
    assert sorted(r[0] for r in lake.read("silver.orders").select("order_id").collect()) == \
        ["B1"]
    assert pending_batches(lake, "shop_orders") == [1]  # recorded, kept for a re-run
    write(tmp_path, {f"shop_orders/{deliveries[2][0]}": header + deliveries[2][1]})
    run_ingest(spark, cfg)
    with pytest.raises(RefineError, match="batch 1 held back"):
        run_refine(spark, cfg)
    assert sorted(r[0] for r in lake.read("silver.orders").select("order_id").collect()) == \
        ["B1", "B4"]  # the later good delivery went through


TILLS = {"tills": {
    "path": "tills", "format": "csv", "options": {"header": "true", "sep": "|"},
    "columns": "ticket STRING, line STRING, card STRING, placed STRING, sku STRING, "
               "units STRING, price STRING, discount STRING",
    "role": "orders", "grain": "line", "timezone": "Europe/Paris",
    "mapping": {"order_id": "ticket", "line_no": "line", "customer_id": "card",
                "ordered_at": "placed", "product_id": "sku", "quantity": "units",
                "unit_price": "price", "channel": "'store'"},
    "formats": {"ordered_at": "dd/MM/yyyy HH:mm", "unit_price": "decimal_comma",
                "discount": "decimal_comma"},
    "defaults": {"status": "completed", "currency": "EUR"},
    "subject": {"card": "customer_id"}}}
TILLS_CSV = """ticket|line|card|placed|sku|units|price|discount
T1|2|K1|02/09/2025 10:15|P2|1|25,00|0
T1|1|K1|02/09/2025 10:15|P1|2|9,90|0
T2|1|K2|02/09/2025 11:00|P1|1|9,90|
T2|1|K2|02/09/2025 11:00|P1|1|9,90|
T3|1|K1|03/09/2025 09:00|P3|1|-4,00|0
T3|2|K1|03/09/2025 09:00|P1|1|9,90|0
T4|1|K3|03/09/2025 12:00|P2|2|25,00|5
T4|2|K3|03/09/2025 12:00|P1|1|9,90|5
"""


def test_an_export_of_one_row_per_line_is_grouped_into_orders(spark, config, tmp_path):
    write(tmp_path, {"tills/2025-09-03.csv": TILLS_CSV})
    lake = refined_lake(spark, config, tmp_path, TILLS)
    orders = {r["order_id"]: r for r in lake.read("silver.orders").collect()}
    assert sorted(orders) == ["T1", "T2", "T4"]
    t1 = orders["T1"]
    assert (t1["items"], t1["gross_amount"], t1["net_amount"], t1["customer_id"]) == \
        (3, 44.8, 44.8, "K1")  # 2 x 9.90 + 25.00
    assert t1["ordered_at"] == dt.datetime(2025, 9, 2, 8, 15)  # Paris, UTC+2
    assert (orders["T2"]["items"], orders["T2"]["gross_amount"]) == (1, 9.9)  # one line twice
    t4 = orders["T4"]
    assert (t4["gross_amount"], t4["discount"], t4["net_amount"]) == (59.9, 5.0, 54.9)
    lines = sorted((r["order_id"], r["line_no"], r["product_id"], r["amount"])
                   for r in lake.read("silver.order_lines").collect())
    assert lines == [("T1", 1, "P1", 19.8), ("T1", 2, "P2", 25.0), ("T2", 1, "P1", 9.9),
                     ("T4", 1, "P2", 50.0), ("T4", 2, "P1", 9.9)]
    # a broken line sets its whole order aside: no order is kept short of a line
    rules = sorted(r["rules"] for r in lake.read(QUARANTINE).collect())
    assert rules == [["amount_in_range:price"], ["incomplete:order_id"]]
    log = lake.read(RUN_LOG).where("stage = 'refine' AND source = 'tills'").first()
    assert (log["rows_in"], log["rows_out"], log["quarantined"], log["duplicates"]) == \
        (8, 5, 2, 1)


# ------------------------------------------------------------------ a second retailer
# Web clicks as Parquet (epoch seconds, own field names), email events as JSON lines (London
# local times), web accounts as a CSV whose second delivery reorders its header and adds a
# column (US dates), store loyalty cards without names, and till receipts one row per line
# (Paris times, decimal commas). Accounts and cards meet only on the loyalty card number.
BOUTIQUE = {
    "clicks": {**CLICKS["clicks"], "columns": "evt_uuid STRING, kind STRING, ts BIGINT, "
               "visitor STRING, member STRING, url STRING, sku STRING"},
    "mailer": CLICKS["mailer"],
    "accounts": {
        "path": "accounts", "format": "csv", "options": {"header": "true", "sep": ";"},
        "columns": "account STRING, mail STRING, fname STRING, lname STRING, created STRING, "
                   "card STRING",
        "role": "customers", "timezone": "America/New_York",
        "mapping": {"source_id": "account", "email": "mail", "first_name": "fname",
                    "last_name": "lname", "created_at": "created", "shared_id": "card",
                    "system": "'web'"},
        "formats": {"created_at": "MM/dd/yyyy"},
        "subject": {"account": "customer_id", "mail": "email"}},
    "cards": {
        "path": "cards", "format": "csv", "options": {"header": "true"},
        "columns": "card_no STRING, since STRING, zip STRING",
        "role": "customers",
        "mapping": {"source_id": "card_no", "shared_id": "card_no", "created_at": "since",
                    "postcode": "zip", "system": "'store'"},
        "formats": {"created_at": "dd-MM-yyyy"},
        "subject": {"card_no": "customer_id"}},
    "tills": TILLS["tills"],
}
FIRST = ["Anna", "Ben", "Cara", "Dario", "Eva", "Felix", "Greta", "Hugo", "Ines", "Jonas",
         "Kira", "Lars", "Mila", "Nils", "Olga", "Paul", "Rosa", "Sven", "Tara", "Uwe"]
LAST = ["Albers", "Brandt", "Conti", "Dietz", "Engel", "Fuchs", "Graf", "Hahn", "Imhof",
        "Jung", "Kraus", "Lenz", "Maier", "Noll", "Ott", "Pohl", "Quast", "Reis", "Sauer",
        "Thiel"]
PRICES = {f"P{n}": round(4.5 + 7.25 * n, 2) for n in range(1, 13)}


def boutique(persons: int = 150, seed: int = 11) -> tuple[dict, dict, dict]:
    """(text files, parquet rows, truth per person): every timestamp drawn in UTC, then
    written in the zone and format each system uses."""
    from zoneinfo import ZoneInfo

    rng = random.Random(seed)
    paris, london = ZoneInfo("Europe/Paris"), ZoneInfo("Europe/London")
    start, days = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc), 122
    names = rng.sample([(f, la) for f in FIRST for la in LAST], persons)
    accounts, cards, tills, clicks, mails, truth = [], [], [], [], [], {}
    for n in range(1, persons + 1):
        kind = rng.choice(["web", "web", "both", "both", "both", "store"])
        p = truth[n] = {"account": f"W-{n:04d}" if kind != "store" else None,
                        "card": f"88{n:05d}" if kind != "web" else None,
                        "orders": [], "views": [], "campaigns": {}}
        first, last = names[n - 1]
        joined = start - dt.timedelta(days=rng.randint(30, 900))
        if p["account"]:
            email = f"{first}.{last}{n}@mail.example".lower()
            accounts.append((p["account"], email if rng.random() < .7 else f" {email.upper()}",
                             first, last, joined.strftime("%m/%d/%Y"), p["card"] or ""))
        if p["card"]:
            cards.append(f"{p['card']},{joined:%d-%m-%Y},{rng.randint(10000, 99999)}")
            for day in range(days):
                if rng.random() < 0.04:
                    at = start + dt.timedelta(days=day, hours=rng.randint(7, 16),
                                              minutes=rng.randint(0, 59))
                    ticket, skus = f"T{n:04d}{day:03d}", rng.sample(sorted(PRICES), 3)
                    lines = [(s, rng.randint(1, 3)) for s in skus[:rng.randint(1, 3)]]
                    discount = rng.choice([0, 0, 0, 5])
                    gross = sum(PRICES[s] * q for s, q in lines)
                    p["orders"].append((at, round(gross - discount, 2)))
                    local = at.astimezone(paris).strftime("%d/%m/%Y %H:%M")
                    for no, (s, q) in enumerate(lines, 1):
                        price = f"{PRICES[s]:.2f}".replace(".", ",")
                        tills.append(f"{ticket}|{no}|{p['card']}|{local}|{s}|{q}|{price}|"
                                     f"{discount},00")
        if p["account"]:
            for day in range(days):
                if rng.random() < 0.08:
                    at = start + dt.timedelta(days=day, hours=rng.randint(8, 21))
                    member = p["account"] if rng.random() < 0.6 or not p["views"] else None
                    for step in range(rng.randint(1, 4)):
                        when, sku = at + dt.timedelta(minutes=step), rng.choice(sorted(PRICES))
                        kind_ = "pdp" if step else "view"
                        if kind_ == "pdp":
                            p["views"].append(when)
                        clicks.append((f"c{n}-{day}-{step}", kind_, int(when.timestamp()),
                                       f"ck{n}", member, f"/p/{sku}" if step else "/", sku
                                       if step else None))
            for week in range(17):
                sent = start + dt.timedelta(days=7 * week + 1, hours=7)
                campaign, opened = f"news{week:02d}", None
                events = [("sent", sent)]
                if rng.random() < 0.45:
                    opened = sent + dt.timedelta(hours=rng.randint(1, 40))
                    events.append(("Open", opened))
                    if rng.random() < 0.3:
                        events.append(("Click", opened + dt.timedelta(minutes=3)))
                p["campaigns"][campaign] = (sent, opened)
                for m, (what, at) in enumerate(events):
                    local = at.astimezone(london).strftime("%Y-%m-%d %H:%M:%S")
                    mails.append(json.dumps({"id": f"m{n}-{week}-{m}", "recipient": email,
                                             "type": what, "at": local,
                                             "campaign": campaign}))
    for k in range(40):  # visitors who never log in
        at = start + dt.timedelta(days=rng.randint(0, days - 1), hours=12)
        clicks.append((f"anon{k}", "view", int(at.timestamp()), f"anon{k}", None, "/", None))
    cut = len(accounts) * 3 // 5
    files = {
        "accounts/2025-09-01.csv": "account;mail;fname;lname;created;card\n" + "".join(
            ";".join(a) + "\n" for a in accounts[:cut]),
        # a later delivery: the same export, its columns reordered and one more
        "accounts/2025-09-15.csv": "fname;lname;account;card;created;newsletter;mail\n" +
        "".join(f"{a[2]};{a[3]};{a[0]};{a[5]};{a[4]};yes;{a[1]}\n" for a in accounts[cut:]),
        "cards/cards.csv": "card_no,since,zip\n" + "\n".join(cards) + "\n",
        "tills/receipts.csv": "ticket|line|card|placed|sku|units|price|discount\n"
        + "\n".join(tills) + "\n",
        "mailer/export.jsonl": "\n".join(mails) + "\n",
    }
    return files, {"clicks/clicks.parquet": clicks}, truth


@pytest.fixture(scope="module")
def boutique_run(spark, config, tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("boutique")
    files, tables, truth = boutique()
    write(root, files)
    for name, rows in tables.items():
        path = root / "landing" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = ["evt_uuid", "kind", "ts", "visitor", "member", "url", "sku"]
        pq.write_table(pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)}),
                       path)
    cfg = own_config(config, root, BOUTIQUE)
    path = root / "seglake.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), "utf-8")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        checked = cli.main(["check", "--config", str(path)]), out.getvalue()
    return cfg, truth, checked, cli.main(["run", "--config", str(path)])


def test_a_second_retailer_runs_end_to_end_on_its_own_exports(spark, boutique_run):
    cfg, truth, checked, code = boutique_run
    assert (checked[0], code) == (0, 0)
    # the reordered delivery is read by name in check too; its extra column is named
    assert "break parseable" not in checked[1]
    assert "accounts: 2025-09-15.csv: header fields not declared in sources.accounts.columns, " \
           "not loaded: newsletter" in checked[1]
    lake = Lakehouse.from_config(spark, cfg)
    ids = {(r["id_kind"], r["id_value"]): r["customer_key"]
           for r in lake.read("silver.identity_map").collect()}
    both = [p for p in truth.values() if p["account"] and p["card"]]
    # the web account and the store card of one person meet on the card number alone
    for p in both:
        assert ids[("customer_id", p["account"])] == ids[("customer_id", p["card"])], p["card"]
    keys = {n: ids[("customer_id", p["account"] or p["card"])] for n, p in truth.items()}
    assert len(set(keys.values())) == len(truth)  # and no two persons were merged
    features = lake.read("gold.customer_features")
    as_of = features.agg(F.max("as_of")).first()[0]
    latest = max([at for p in truth.values() for at, _ in p["orders"]]
                 + [at for p in truth.values() for at in p["views"]]
                 + [o or s for p in truth.values() for s, o in p["campaigns"].values()])
    assert as_of == latest.date() + dt.timedelta(days=1)
    now = {r["customer_key"]: r for r in features.where(F.col("as_of") == as_of).collect()}

    def days(at: dt.datetime) -> int:
        return (as_of - at.date()).days
    checked_people = [n for n, p in truth.items() if p["orders"] and p["views"]][:6]
    assert len(checked_people) == 6
    for n in checked_people:
        p, got = truth[n], now[keys[n]]
        orders = [net for at, net in p["orders"] if days(at) <= 365]
        assert got["frequency_365d"] == len(orders), n
        assert got["monetary_365d"] == pytest.approx(sum(orders)), n
        assert got["product_views_30d"] == sum(days(at) <= 30 for at in p["views"]), n
        sent = [c for c, (s, _) in p["campaigns"].items() if days(s) <= 30]
        opened = [c for c, (_, o) in p["campaigns"].items() if o and days(o) <= 30]
        assert (got["email_sent_30d"], got["email_opened_30d"]) == (len(sent), len(opened)), n
    scores = {r["customer_key"]: r for r in lake.read("gold.customer_scores")
              .where(F.col("as_of") == as_of).collect()}
    assert all(0 <= scores[keys[n]]["propensity_probability"] <= 1 for n in truth)
    buyers = [n for n, p in truth.items() if p["orders"]]
    assert all(0 <= scores[keys[n]]["churn_probability"] <= 1 for n in buyers)
    assert all(scores[keys[n]]["churn_probability"] is None for n in truth if n not in buyers)
    assert lake.read("gold.customer_clusters").where(F.col("as_of") == as_of) \
        .where(F.col("customer_key").isin(list(keys.values()))).count() == len(truth)
    assert lake.read("gold.segment_membership").where(F.col("as_of") == as_of).count() > 0
    files = {Path(r["file"]).name: r["status"] for r in lake.read("ops.ingest_files").collect()}
    assert files["2025-09-15.csv"] == "loaded"  # the reordered header bound by name
