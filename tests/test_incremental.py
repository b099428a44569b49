"""Incremental resolve on a copy of the resolved small world: CRM records added and changed by
hand (people the demo generator never made), linked without re-linking the rest."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from typing import Any

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from seglake.config import SeglakeConfig
from seglake.lakehouse import Lakehouse
from seglake.privacy import email_key, keyed_hash, pseudonymization_key

RAW, PII = "silver.customers_raw", "silver.customers_raw_pii"


def person(first: str, last: str, birth: str | None, email: str | None, phone: str | None,
           address: str | None, postcode: str | None, city: str | None) -> dict[str, Any]:
    return {"first_name": first, "last_name": last, "birth_date": birth, "email": email,
            "phone": phone, "address": address, "postcode": postcode, "city": city}


def put_records(lake: Lakehouse, records: dict[str, dict[str, Any]], key: bytes) -> None:
    """Add or replace CRM records (``loyalty:<id>`` -> a ``person``) in both silver tables,
    as refine would have written them (keyed hashes of the email's mailbox and the phone)."""
    raw_t, pii_t = lake.read(RAW), lake.read(PII)
    raw_row, pii_row = raw_t.first().asDict(), pii_t.first().asDict()
    raws, piis = [], []
    for record, p in records.items():
        system, source_id = record.split(":")
        ids = {"record_key": record, "system": system, "source_id": source_id}
        raws.append({**raw_row, **ids, "email_hash": p["email"], "phone_hash": p["phone"],
                     "postcode": p["postcode"], "city": p["city"],
                     "created_at": dt.datetime(2025, 11, 1),
                     "birth_year": int(p["birth_date"][:4]) if p["birth_date"] else None})
        piis.append({**pii_row, **ids, **p, "birth_date": dt.date.fromisoformat(
            p["birth_date"]) if p["birth_date"] else None})
    spark = lake.spark
    raw = spark.createDataFrame(raws, raw_t.schema) \
        .withColumn("email_hash", keyed_hash(email_key(F.col("email_hash")), key)) \
        .withColumn("phone_hash", keyed_hash(F.col("phone_hash"), key))
    lake.merge(RAW, raw, "record_key")
    lake.merge(PII, spark.createDataFrame(piis, pii_t.schema), "record_key")


def record_keys(lake: Lakehouse) -> dict[str, str]:
    return {r["id_value"]: r["customer_key"] for r in lake.read("silver.identity_map")
            .where("id_kind = 'record_key'").select("id_value", "customer_key").collect()}


def current_pii(lake: Lakehouse, key: str) -> dict[str, Any]:
    row = lake.read(PII).where(F.col("record_key") == key).first().asDict()
    return person(row["first_name"], row["last_name"], str(row["birth_date"]), row["email"],
                  row["phone"], row["address"], row["postcode"], row["city"])


def run_ids(df: DataFrame) -> set[str]:
    return {r[0] for r in df.select("run_id").distinct().collect()}


NEW = person("Ophélie", "Vandenberghe", "1959-02-11", "ophelie.vdb@orange.fr", "+33611223344",
             "7 impasse des Lilas", "29200", "Brest")
# one woman under two names: a maiden-name record without contact details and a married-name
# newsletter sign-up with contact details only; nothing ties them until a record has both
MAIDEN = person("Gwenaëlle", "Kerhervé", "1971-03-04", None, None, "3 rue de Siam", "29200",
                "Brest")
MARRIED = person("Gwenaëlle", "Le Goff", None, "gwen.legoff@laposte.net", "+33698765432",
                 None, None, None)
# her married name, her birth date, her phone, her former address, another mailbox
BRIDGE = person("Gwenaëlle", "Le Goff", "1971-03-04", "gwen.legoff@gmail.com",
                "+33698765432", "3 rue de Siam", "29200", "Brest")
STRANGER = person("Thibault", "Roussel", "1990-10-10", "thibault.roussel@yahoo.fr",
                  "+33655443322", "40 avenue Jean Jaurès", "69007", "Lyon")


@pytest.fixture
def copied(spark, config, resolved, tmp_path) -> tuple[SeglakeConfig, Lakehouse]:
    shutil.copytree(config.lakehouse.root, tmp_path / "lakehouse")
    copy = config.model_copy(update={
        "lakehouse": config.lakehouse.model_copy(update={"root": str(tmp_path / "lakehouse")}),
        "reports": config.reports.model_copy(update={"root": str(tmp_path / "reports")})})
    return copy, Lakehouse.from_config(spark, copy)


def test_incremental_resolves_link_the_batch_and_keep_every_untouched_key(spark, copied):
    """Day 1: a duplicate, a new person, two unlinked records, a change; day 2: a bridge and
    a change back; day 3: the bridge is erased."""
    from seglake.erasure import erase
    from seglake.identity import run_resolve

    config, lake = copied
    before = record_keys(lake)
    first_run = run_ids(lake.read("silver.customers"))
    sizes: dict[str, list[str]] = {}
    for record, key in sorted(before.items()):
        sizes.setdefault(key, []).append(record)
    single = next(r[0] for r in sizes.values() if len(r) == 1)
    changed, partner = next(r for r in sizes.values() if len(r) == 2)
    original = current_pii(lake, changed)
    key = pseudonymization_key(config.privacy)
    put_records(lake, {"loyalty:T1": current_pii(lake, single), "loyalty:T2": NEW,
                       "loyalty:T3": MAIDEN, "loyalty:T4": MARRIED, changed: STRANGER}, key)
    # and a customer the batch does not touch opts in to marketing (a later consent batch)
    consenting = lake.read("silver.customers").where(
        F.col("email_hash").isNotNull() & ~F.coalesce("marketing_consent", F.lit(False))
        & ~F.col("customer_key").isin(before[single], before[changed])) \
        .orderBy("customer_key").first()
    consents = lake.read("silver.consents")
    template = consents.orderBy(F.desc("_batch_id")).first().asDict()
    lake.merge("silver.consents", spark.createDataFrame([{
        **template, "subject_hash": consenting["email_hash"],
        "purpose": config.identity.marketing_purpose, "status": "granted",
        "updated_at": dt.datetime(2030, 1, 1), "_batch_id": template["_batch_id"] + 1}],
        consents.schema), ["subject_hash", "purpose"])

    # and a one-record customer's loyalty points change (no compared value: not a linkage
    # change, but a golden record's), delivered in a later batch
    points = next(r[0] for k, r in sorted(sizes.items())
                  if len(r) == 1 and r[0] != single and k != consenting["customer_key"])
    raw = lake.read(RAW).where(F.col("record_key") == points)
    lake.merge(RAW, raw.withColumn("loyalty_points", F.lit(987_654).cast(
        raw.schema["loyalty_points"].dataType)).withColumn("_batch_id", F.col("_batch_id") + 1)
        .localCheckpoint(), "record_key")

    day1 = run_resolve(spark, config)
    after = record_keys(lake)
    assert day1.mode == "incremental" and day1.batch_records == 5
    assert day1.normalised_records == 5  # the points changed no compared value
    assert after["loyalty:T1"] == before[single]                   # a duplicate joins
    assert after["loyalty:T2"] not in set(before.values())         # a new person: a new key
    assert after["loyalty:T3"] != after["loyalty:T4"]              # not linked (yet)
    assert after[changed] != after[partner] == before[partner]     # the changed record splits
    untouched = {r for r in before if before[r] not in (before[single], before[changed])}
    assert after[points] == before[points]  # not re-linked: the same key
    assert all(after[r] == before[r] for r in untouched)
    events = lake.read("silver.identity_merges").where(F.col("run_id") == day1.run_id)
    split = events.collect()
    assert [(e["event"], e["old_key"], e["new_key"]) for e in split] == [
        ("split", before[changed], after[changed])]
    # nothing the batch did not touch was rewritten: only the touched customers carry the run
    customers = lake.read("silver.customers")
    rewritten = customers.where(F.col("run_id") == day1.run_id).select("customer_key")
    assert {r[0] for r in rewritten.collect()} <= {
        before[single], before[changed], after[changed], after["loyalty:T2"],
        after["loyalty:T3"], after["loyalty:T4"], consenting["customer_key"], before[points]}
    opted = customers.where(F.col("customer_key") == consenting["customer_key"]).first()
    assert opted["marketing_consent"] is True and opted["run_id"] == day1.run_id
    loyal = customers.where(F.col("customer_key") == before[points]).first()
    assert loyal["loyalty_points"] == 987_654 and loyal["run_id"] == day1.run_id
    assert run_ids(customers.where(F.col("customer_key").isin(
        [before[r] for r in sorted(untouched)[:200]
         if before[r] not in (consenting["customer_key"], before[points])]))) == first_run
    links = lake.read("silver.identity_links")
    assert run_ids(links.where(~F.col("record_key_l").isin(changed, "loyalty:T1", single) &
                               ~F.col("record_key_r").isin(changed, "loyalty:T1", single))) \
        == first_run

    put_records(lake, {"loyalty:T5": BRIDGE, changed: original}, key)  # changed back
    day2 = run_resolve(spark, config)
    final = record_keys(lake)
    assert day2.batch_records == day2.normalised_records == 2
    assert final["loyalty:T3"] == final["loyalty:T4"] == final["loyalty:T5"]  # bridged
    assert final[changed] == final[partner] == before[partner]     # rejoined its customer
    assert all(final[r] == before[r] for r in untouched)
    events = {(e["event"], e["old_key"]): e for e in lake.read("silver.identity_merges")
              .where(F.col("run_id") == day2.run_id).collect()}
    assert set(events) == {("merge", after[changed]), (
        "merge", after["loyalty:T3"] if final["loyalty:T3"] != after["loyalty:T3"]
        else after["loyalty:T4"])}
    bridge = events[("merge", after[changed])]
    assert bridge["new_key"] == before[partner]
    assert {bridge["record_key_l"], bridge["record_key_r"]} == {changed, partner}
    assert bridge["match_probability"] >= config.identity.match_threshold
    model = json.loads(lake.read("ops.models").where(F.col("run_id") == day2.run_id)
                       .first()["metrics"])
    assert model["mode"] == "incremental" and model["batch_records"] == 2

    # the bridge's subject asks for erasure: her maiden-name and married-name records stay,
    # released, and the next resolve splits them again (no link holds them without her)
    shared = final["loyalty:T5"]
    erased = erase(spark, config, email=f" {BRIDGE['email'].upper()}")
    assert erased.released == 2 and erased.shared_keys == [shared]
    kept = record_keys(lake)
    assert "loyalty:T5" not in kept and kept["loyalty:T3"] == kept["loyalty:T4"] == shared
    assert lake.read("silver.customers").where(F.col("customer_key") == shared).count() == 0
    gone = lake.read("silver.identity_links").where(F.col("record_key_l").isin("loyalty:T5")
                                                    | F.col("record_key_r").isin("loyalty:T5"))
    assert gone.count() == 0
    state = {r[0] for r in lake.read("silver.identity_records").select("record_key").collect()}
    assert not state & {"loyalty:T3", "loyalty:T4", "loyalty:T5"} and changed in state
    forms = {r[0] for r in lake.read("silver.identity_forms").select("record_key").collect()}
    assert "loyalty:T5" not in forms and {"loyalty:T3", "loyalty:T4", changed} <= forms
    day3 = run_resolve(spark, config)
    last = record_keys(lake)
    assert day3.mode == "incremental" and day3.batch_records == 2
    assert day3.normalised_records == 0  # released, not changed: their forms are kept
    assert last["loyalty:T3"] != last["loyalty:T4"] and shared in (
        last["loyalty:T3"], last["loyalty:T4"])
    assert all(last[r] == before[r] for r in untouched)
    events = lake.read("silver.identity_merges").where(F.col("run_id") == day3.run_id).collect()
    split = ({last["loyalty:T3"], last["loyalty:T4"]} - {shared}).pop()
    assert [(e["event"], e["old_key"], e["new_key"]) for e in events] == [
        ("split", shared, split)]
    profiles = lake.read("silver.customers").where(F.col("customer_key").isin(shared, split))
    assert {r["customer_key"]: r["record_count"] for r in profiles.collect()} == {
        shared: 1, split: 1}

    # day 4: a new record only (a copy of one): links and record states only gain rows,
    # appended (no file of theirs rewritten)
    put_records(lake, {"loyalty:T6": current_pii(lake, partner)}, key)
    day4 = run_resolve(spark, config)
    fourth = record_keys(lake)
    assert day4.batch_records == 1 and fourth["loyalty:T6"] == fourth[partner]
    assert all(fourth[r] == before[r] for r in untouched)
    for name in ("silver.identity_links", "silver.identity_records"):
        assert [h["operation"] for h in lake.history(name, 1)] == ["APPEND"], name
    added = lake.read("silver.identity_links").where(F.col("run_id") == day4.run_id).collect()
    assert added and all("loyalty:T6" in (r["record_key_l"], r["record_key_r"]) for r in added)
    states = lake.read("silver.identity_records")
    assert states.count() == states.select("record_key").distinct().count()
    assert [r["record_key"] for r in states.where(F.col("run_id") == day4.run_id)
            .collect()] == ["loyalty:T6"]


def test_a_map_written_before_validity_intervals_makes_one_full_resolve_that_replaces_it(
        spark, copied):
    """A lakehouse resolved by an older seglake (one row per identifier, key_before instead of
    valid_to): the next resolve re-links in full, keeps every key and writes the new layout."""
    from seglake.identity import run_resolve

    config, lake = copied
    before = record_keys(lake)
    name = "silver.identity_map"
    old = lake.read(name).where("valid_to IS NULL").drop("valid_to") \
        .withColumn("key_before", F.lit(None).cast("string"))
    lake.backend.write(lake.path(name), old.localCheckpoint(), mode="overwrite",
                       overwrite_schema=True)  # as the older declaration had it
    assert "valid_to" not in lake.read(name).columns

    result = run_resolve(spark, config)
    assert result.mode == "full"
    model = json.loads(lake.read("ops.models").where(F.col("run_id") == result.run_id)
                       .first()["metrics"])
    assert "predates validity intervals" in model["full_because"]
    columns = lake.read(name).columns
    assert "valid_to" in columns and "key_before" not in columns
    assert record_keys(lake) == before  # keys inherited from the old map
    assert lake.read(name).where("valid_to IS NOT NULL").count() > 0  # cookies' anonymous rows
