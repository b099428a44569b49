"""``seglake resolve``: CRM records -> customers, every identifier -> customer_key.

Reads silver only (customers_raw, customers_raw_pii, orders, email_events, consents, events) and
the previous identity map; writes silver.customers, silver.customers_pii, silver.identity_merges
(key changes and why), silver.identity_links (the graph's edges), silver.identity_map (last, so
a run killed before it re-runs from the same previous keys), the model to ops.models and the
diagnostics to the run's report folder.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from seglake.config import IdentityConfig, SeglakeConfig
from seglake.declarations import (
    CONSENTS,
    CUSTOMERS,
    CUSTOMERS_PII,
    CUSTOMERS_RAW,
    CUSTOMERS_RAW_PII,
    FORMS,
    IDENTITY_MAP,
    LINKS,
    MERGES,
    RECORD_STATE,
)
from seglake.drift import binned, histogram, population_stability
from seglake.identity import diagnostics
from seglake.identity.blocking import pair_budget
from seglake.identity.forms import FORMS_COLUMNS, comparison_forms, local_forms
from seglake.identity.golden import (
    CUSTOMER_COLUMNS,
    PII_COLUMNS,
    check_survivorship,
    golden_customers,
)
from seglake.identity.incremental import (
    batch_marks,
    changed_customers,
    changed_settings,
    fresh_clients,
    in_scope,
    link_batch,
    map_scope,
    record_changes,
    rederived_rows,
    since,
)
from seglake.identity.keys import key_changes
from seglake.identity.linkage import ID, chosen_engine, link
from seglake.identity.local_batch import batch_linkage, local_link_batch
from seglake.identity.local_sql import Scope, as_declared, as_spark, post_linkage, readable
from seglake.identity.stitching import RECORD, current, identity_map
from seglake.lakehouse import Lakehouse, parquet_scan
from seglake.models import latest_model, record_model
from seglake.privacy import pseudonymization_key
from seglake.runlog import RunLog, utc_now
from seglake.session import Deferred, held, made
from seglake.tables import LINEAGE

log = logging.getLogger(__name__)

MODEL_KIND = "identity-linkage"
# bins of the scored pairs' match weights (the drift guard): Splink scores pairs from a match
# probability of 0.5, which the demo's priors put at a weight of about 10 to 15
WEIGHT_EDGES = (0.0, 5.0, 10.0, 12.5, 15.0, 17.5, 20.0, 22.5, 25.0, 30.0)
DRIFT_MIN_PAIRS = 200  # scored pairs below which the match weights' shift is not measured
INPUTS = ("silver.customers_raw", "silver.customers_raw_pii", "silver.orders",
          "silver.email_events", "silver.consents", "silver.events")


class ResolveError(RuntimeError):
    """Resolve cannot run on what the lakehouse holds."""


@dataclass
class ResolveResult:
    run_id: str
    records: int
    customers: int
    crm_customers: int
    candidate_pairs: int
    matched_pairs: int
    merges: int                   # key changes: silver.identity_merges events of the run
    model_version: int
    seconds: float
    report_files: list[str] = field(default_factory=list)
    retrain_advised: bool = False
    mode: str = "full"            # or incremental
    batch_records: int | None = None
    normalised_records: int | None = None  # records whose comparison forms were made


def _optional(lakehouse: Lakehouse, name: str) -> DataFrame | None:
    return lakehouse.read(name) if lakehouse.exists(name) else None


def _ids(spark: SparkSession, frames: list[tuple[DataFrame | None, str]]) -> DataFrame:
    out = spark.createDataFrame([], "id_value STRING")
    for df, c in frames:
        if df is not None:
            out = out.unionByName(df.select(F.col(c).alias("id_value")))
    return out.where(F.col("id_value").isNotNull()).distinct()


PII_LEFT = (*LINEAGE, "system", "source_id", "postcode", "city")  # customers_raw's are taken


def crm_records(lakehouse: Lakehouse) -> DataFrame:
    """Every CRM record with its personal data: what linkage compares."""
    pii = lakehouse.read(CUSTOMERS_RAW_PII).drop(*PII_LEFT)
    return lakehouse.read(CUSTOMERS_RAW).join(pii, "record_key")


def local_records(lakehouse: Lakehouse, records: DataFrame,
                  config: IdentityConfig) -> str | None:
    """``crm_records`` as DuckDB SQL over the tables' files, when the driver can read them
    and links them itself (Splink on DuckDB: ``identity.local_max_records``); else None."""
    raw, pii = lakehouse.local_files(CUSTOMERS_RAW), lakehouse.local_files(CUSTOMERS_RAW_PII)
    if not raw or not pii or config.engine == "spark":
        return None
    import duckdb

    if duckdb.sql(f"select count(*) from {parquet_scan(raw)}").fetchall()[0][0] \
            > config.local_max_records:
        return None
    from_pii = set(lakehouse.columns(CUSTOMERS_RAW_PII)) - set(PII_LEFT)
    columns = ", ".join(f'{"p" if c in from_pii and c != "record_key" else "r"}."{c}"'
                        for c in records.columns)
    return (f"select {columns} from {parquet_scan(raw)} r join {parquet_scan(pii)} p "
            "using (record_key)")


def graph_base(lakehouse: Lakehouse, config: IdentityConfig,
               full: bool) -> tuple[dict[str, Any] | None, str]:
    """The model an incremental resolve extends the last graph with, or None and why the
    run re-links everything."""
    if full:
        return None, "--full"
    if not config.incremental:
        return None, "identity.incremental is off"
    missing = [n for n in (IDENTITY_MAP, LINKS, RECORD_STATE) if not lakehouse.exists(n)]
    if missing:
        return None, f"no previous graph ({', '.join(missing)})"
    if "valid_to" not in lakehouse.read(IDENTITY_MAP).columns:
        return None, "the identity map predates validity intervals (valid_to)"
    model = latest_model(lakehouse, MODEL_KIND)
    if model is None:
        return None, f"ops.models holds no {MODEL_KIND} model"
    if "matching" in json.loads(model["artifact"]):
        return None, "the last model links on exact identifiers only"
    changed = changed_settings(json.loads(model["params"]), config)
    if changed:
        return None, (f"identity settings changed since model version {model['version']}: "
                      + ", ".join(f"identity.{c}" for c in changed))
    return model, ""


def run_resolve(spark: SparkSession, config: SeglakeConfig,
                runlog: RunLog | None = None, full: bool = False) -> ResolveResult:
    """Link (incrementally when a graph and its model exist, unless ``full``), key, stitch and
    write; see the module docstring for what is read and written."""
    started = time.monotonic()
    lakehouse = Lakehouse.from_config(spark, config)
    for name in INPUTS[:2]:
        if not lakehouse.exists(name):
            raise ResolveError(f"{name} does not exist: run `seglake refine` first")
    key = pseudonymization_key(config.privacy)
    runlog = runlog or RunLog(lakehouse, "resolve")
    ident = config.identity
    if spark.sparkContext.getCheckpointDir() is None:  # Splink's clustering checkpoints
        spark.sparkContext.setCheckpointDir(f"{config.lakehouse.root}/_checkpoints/resolve")
    versions = {n: lakehouse.version(n) for n in INPUTS if lakehouse.exists(n)}

    records = crm_records(lakehouse).persist()
    try:  # config that names what the data lacks fails before any Splink work
        check_survivorship(ident)
        forms = None
        records_sql = local_records(lakehouse, records, ident)
        if records_sql is not None:  # in the driver, where Splink will read them
            stored = lakehouse.local_files(FORMS) if lakehouse.exists(FORMS) and set(
                FORMS_COLUMNS) <= set(lakehouse.columns(FORMS)) else None
            forms = local_forms(records, records_sql, stored, ident,
                                config.privacy.phone_region, key)
        if forms is None:
            forms = comparison_forms(records, _optional(lakehouse, FORMS), ident,
                                     config.privacy.phone_region, key)
    except ValueError as exc:
        raise ResolveError(str(exc)) from exc
    n_records = forms.local.num_rows if forms.local is not None else records.count()
    log.info("resolve: %d CRM records", n_records)
    log.info("resolve: comparison frame ready: %d of %d records normalised, the others' forms "
             "read back (%.1f s)", forms.normalised, n_records, time.monotonic() - started)

    run_id = runlog.run_id
    stamp = utc_now()
    previous_map = _optional(lakehouse, IDENTITY_MAP)
    previous, previous_rows = None, 0
    if previous_map is not None:  # materialised (the table is rewritten below) unless the
        previous_map = previous_map.persist()  # driver derives the map (see below)
        previous = current(previous_map).select(
            "id_kind", "id_value", "customer_key",  # anonymous: a first login is its own event
            *[c for c in ("anonymous",) if c in previous_map.columns])
    base, why_full = graph_base(lakehouse, ident, full)
    mode = "full" if base is None else "incremental"
    in_driver = readable(lakehouse, ident.local_max_bytes)  # the map and golden records
    batch = None  # an incremental linkage made in the driver
    base_model = json.loads(base["artifact"]) if base is not None else None
    if base is not None and forms.local is not None and in_driver and \
            chosen_engine(ident, 0, base_model) == "duckdb":
        previous_model = base
        batch = local_link_batch(forms.local, forms.local_hashes, {
            short: lakehouse.local_files(name) or [] for short, name in
            (("links", LINKS), ("records", RECORD_STATE), ("map", IDENTITY_MAP))},
            ident, base_model, (run_id, stamp))
        linkage = batch_linkage(spark, batch)
    elif base is not None:
        previous_model = base
        changes = record_changes(made(forms.hashes), lakehouse.read(RECORD_STATE))
        edges_before = lakehouse.read(LINKS).select(
            F.col("record_key_l").alias(f"{ID}_l"), F.col("record_key_r").alias(f"{ID}_r"),
            "match_probability", "match_weight").persist()
        edges_before.count()
        groups_before = previous.where(F.col("id_kind") == RECORD).select(
            F.col("id_value").alias(ID), "customer_key")
        linkage = link_batch(spark, made(forms.frame), changes, ident, base_model,
                             edges_before, groups_before)
    else:
        log.info("resolve: linking every record (%s)", why_full)
        previous_model = latest_model(lakehouse, MODEL_KIND) if ident.reuse_model else None
        if ident.reuse_model and previous_model is None:
            log.warning("identity.reuse_model is on but ops.models holds no %s model: "
                        "training", MODEL_KIND)
        linkage = link(spark, made(forms.frame), ident,
                       json.loads(previous_model["artifact"]) if previous_model else None,
                       records=n_records, local=forms.local)
    # Spark frames the driver path may never use are made when used (session.Deferred)
    clusters = Deferred(lambda: linkage.clusters.select(F.col(ID).alias("record_key"),
                                                        F.col("cluster_id").alias("group")))
    # an incremental run's writes keep the stamps of rows nothing changed (Lakehouse.sync)
    links = Deferred(lambda: linkage.edges.select(
        F.col(f"{ID}_l").alias("record_key_l"), F.col(f"{ID}_r").alias("record_key_r"),
        "match_probability", "match_weight", F.lit(run_id).alias("run_id"),
        F.lit(stamp).alias("linked_at")).persist())
    matched = batch.edges.num_rows if batch is not None else links.count()
    log.info("resolve: %d linked pairs in the graph, %d candidate pairs scored, clustered "
             "(%.1f s)", matched, linkage.candidate_pairs, time.monotonic() - started)

    marks = batch_marks(lakehouse, "silver.events")
    # what golden records read besides the map: the next incremental run re-makes the
    # customers whose records or consents arrived after these batches
    golden_inputs = [n for n in (CUSTOMERS_RAW, CUSTOMERS_RAW_PII, CONSENTS)
                     if lakehouse.exists(n)]
    batches = {name: batch_marks(lakehouse, name) for name in golden_inputs}
    local = None
    before = json.loads(base["metrics"]) if base is not None else {}
    if linkage.engine == "duckdb" and in_driver:
        # where Splink ran: the map and golden records in the driver, from the tables' files;
        # an incremental run derives them in its scope and changes the rows that differ
        touched = batch.touched if batch is not None else \
            linkage.touched.select(ID).toArrow() if linkage.touched is not None else None
        local = post_linkage(lakehouse, clusters.toArrow() if batch is None else
                             batch.clusters.rename_columns(["record_key", "group"]), key, ident,
                             changes=base is not None, stamp=(run_id, stamp),
                             links=links.select("record_key_l", "record_key_r",
                                                "match_probability").toArrow()
                             if batch is None else batch.edges.rename_columns(
                                 ["record_key_l", "record_key_r", "match_probability",
                                  "match_weight"]),
                             scope=None if base is None or touched is None else Scope(
                                 touched.rename_columns(["record_key"]),
                                 {"silver.events": before.get("event_batches"),
                                  **{name: before.get("batches", {}).get(name)
                                     for name in golden_inputs}}))
        previous_rows = local.previous_rows
        if local.scope_rows is not None:
            log.info("resolve: %d identifiers in the incremental run's scope",
                     local.scope_rows)
    elif previous_map is not None:
        previous_rows = previous_map.count()
    orders = email_events = consents = events = emails = accounts = None
    if local is None:  # what the map and golden records are derived from with Spark
        orders = _optional(lakehouse, "silver.orders")
        email_events = _optional(lakehouse, "silver.email_events")
        consents = _optional(lakehouse, CONSENTS)
        events = _optional(lakehouse, "silver.events")
        # persisted: an incremental run reads them to scope the map and again to derive it
        emails = _ids(spark, [(orders, "customer_email_hash"), (email_events, "email_hash"),
                       (consents, "subject_hash")]).persist()
        accounts = _ids(spark, [(orders, "customer_id"), (events, "user_id")]).persist()
    scope = None
    if local is None and base is not None and linkage.touched is not None:
        # the map rows the batch can change: derived again, every other row kept
        new_clients = spark.createDataFrame([], "id_value STRING") if events is None else \
            fresh_clients(events, before.get("event_batches"), previous_map)
        scope = map_scope(previous_map, linkage.touched, records, emails, accounts,
                          new_clients)
        log.info("resolve: %d identifiers in the incremental run's scope", scope.size)
    if events is not None and local is None:  # read once: every event's ids (in scope)
        events = events.select("user_id", F.coalesce("cookie_id", "device_id")
                               .alias("client_id"), "event_ts")
        if scope is not None:
            events = events.join(scope.clients.select(F.col("id_value").alias("client_id")),
                                 "client_id", "left_semi")
        events = events.persist()
        logins = events.where(F.col("user_id").isNotNull()).select(
            "client_id", F.col("user_id").alias("customer_id"), "event_ts")
        clients = events.select(F.col("client_id").alias("id_value"))
    else:
        logins = spark.createDataFrame([], "client_id STRING, customer_id STRING, "
                                           "event_ts TIMESTAMP")
        clients = spark.createDataFrame([], "id_value STRING")
    def stamped(df: DataFrame) -> DataFrame:
        return df.withColumn("run_id", F.lit(run_id)).withColumn("resolved_at", F.lit(stamp)) \
            .persist()

    # derived: the map rows this run derives (all of them in a full run), materialised
    if local is not None:
        derived = Deferred(lambda: stamped(as_spark(spark, local.identity_map, IDENTITY_MAP)))
    elif scope is None:
        derived = stamped(identity_map(records, clusters, emails, accounts, logins, clients,
                                       previous, key))
    else:
        derived = stamped(rederived_rows(scope, previous_map, records, clusters, emails,
                                         accounts, logins, clients, key))
    derived_rows = derived.count() if local is None else local.identity_map.num_rows
    ids = ["id_kind", "id_value"]
    changed = None  # an incremental run in the driver: the identifiers whose rows differ
    if local is not None and local.changed_ids is not None:
        changed = Deferred(lambda: as_spark(spark, local.changed_ids))
        log.info("resolve: %d identifiers' map rows and %d customers differ from the last "
                 "run's", local.changed_ids.num_rows, local.changed_customers.num_rows)
    if scope is None and changed is None:
        new_map, map_rows, affected = derived, derived_rows, None
        if local is None:  # what Spark's key changes compare
            previous_in, derived_now = previous, current(derived)
    elif changed is not None:  # the tables come whole from the driver (Local.written); one
        # without files yet takes Lakehouse.sync of these identifiers' and customers' rows
        map_rows = local.map_rows
        affected = Deferred(lambda: as_spark(spark, local.changed_customers))
    else:  # the rows outside the scope, as they were
        new_map = in_scope(previous_map, scope, keep=False).select(*derived.columns) \
            .unionByName(derived)
        previous_in = in_scope(previous, scope)
        map_rows = previous_rows - in_scope(previous_map, scope).count() + derived_rows
        derived_now = current(derived).select("id_kind", "id_value", "customer_key")
        marks_before = before.get("batches", {})
        fresh = {name: since(lakehouse.read(name), marks_before.get(name))
                 for name in golden_inputs}
        affected = changed_customers(
            previous_in, derived_now, new_map,
            fresh[CONSENTS].select("subject_hash") if CONSENTS in fresh else None,
            fresh[CUSTOMERS_RAW].select("record_key").unionByName(
                fresh[CUSTOMERS_RAW_PII].select("record_key")))
    log.info("resolve: identity map of %d rows, %d derived%s (%.1f s)", map_rows, derived_rows,
             " in the driver (DuckDB)" if local is not None else "",
             time.monotonic() - started)

    def of_changed(df: DataFrame) -> DataFrame:  # the rows of customers this run can change
        return df if affected is None else df.join(affected, "customer_key", "left_semi")

    if local is not None:
        crm = Deferred(lambda: as_spark(spark, local.customers_pii, CUSTOMERS_PII).persist())
        customers = Deferred(lambda: stamped(as_spark(spark, local.customers, CUSTOMERS)
                                             .select(*CUSTOMER_COLUMNS)))
        golden_pii = Deferred(lambda: crm.select(*PII_COLUMNS))
    else:
        customers, crm = golden_customers(records, of_changed(new_map), consents, ident)
        customers = stamped(customers.select(*CUSTOMER_COLUMNS))
        golden_pii = crm.select(*PII_COLUMNS)
    moved = None  # the key changes, unless the driver found them
    if local is None:
        moved = key_changes(previous_in, derived_now, links,
                            None if affected is None else (previous, current(new_map))) \
            .withColumn("run_id", F.lit(run_id)).withColumn("merged_at", F.lit(stamp)).persist()
    stamps = ("run_id", "resolved_at", "linked_at")
    written = {**(local.written or {} if local is not None else {}),
               **({LINKS: batch.written["links"], RECORD_STATE: batch.written["records"]}
                  if batch is not None else {})}
    appended = {name: batch.appended[short] for short, name in (("links", LINKS), (
        "records", RECORD_STATE)) if batch is not None and short in batch.appended}
    # (tables that only gained rows: those rows)

    def write(name: str, df: DataFrame | Deferred | None,
              within: tuple[DataFrame | Deferred, list[str]] | None = None) -> None:
        """Whole from the driver where made there; else ``df``, in an incremental run the
        rows of ``within`` only."""
        if name in appended:  # the new rows only: no file rewritten
            lakehouse.append(name, as_declared(appended[name], name))
            log.info("resolve: %s: %d rows appended from the driver", name,
                     appended[name].num_rows)
        elif name in written:
            whole = written[name]  # made whole in the driver, unchanged rows as they were
            if whole is None:
                log.info("resolve: %s: no row changed, nothing written", name)
            else:  # a full run: the declared schema whole (an older layout is replaced)
                lakehouse.overwrite(name, as_declared(whole, name), overwrite_schema=base is None)
                log.info("resolve: %s: written from the driver", name)
        elif base is None:
            lakehouse.overwrite(name, made(df), overwrite_schema=True)
        else:
            if within is not None:
                within = (made(within[0]), within[1])
            upserted, deleted = lakehouse.sync(name, made(df), stamps, within=within)
            log.info("resolve: %s: %d rows upserted, %d deleted", name, upserted, deleted)

    by_key = None if affected is None else (affected, ["customer_key"])
    write(CUSTOMERS, customers, by_key)
    write(CUSTOMERS_PII, golden_pii, by_key)
    n_merges = moved.count() if moved is not None else local.key_changes.num_rows
    if moved is None:  # a re-run after a kill records the same merges once (an anti-join)
        if local.unrecorded.num_rows or not lakehouse.exists(MERGES):
            lakehouse.append(MERGES, as_declared(local.unrecorded, MERGES))
    elif not lakehouse.exists(MERGES):
        lakehouse.append(MERGES, moved)
    elif n_merges:  # a re-run after a kill records the same merges once: the others added
        unrecorded = held(moved.join(lakehouse.read(MERGES).select("old_key", "new_key"),
                                     ["old_key", "new_key"], "left_anti"))
        if unrecorded.rows:  # an append rewrites no file (a MERGE took 3 s at medium)
            lakehouse.append(MERGES, unrecorded.frame)
    write(LINKS, links)
    new_forms = made(forms.fresh) if forms.local_fresh is None else \
        as_declared(forms.local_fresh, FORMS)  # in the driver: written from there
    if not lakehouse.exists(FORMS) or forms.normalised == n_records:
        lakehouse.overwrite(FORMS, new_forms, overwrite_schema=True)
    elif forms.added_only:  # new records only: their forms are added, no file rewritten
        lakehouse.append(FORMS, new_forms)
    elif forms.changed:  # the forms of records normalised this run in, of records gone out
        lakehouse.sync(FORMS, made(forms.fresh), within=(made(forms.scope), ["record_key"]))
    record_state = None if RECORD_STATE in written else forms.hashes.select(
        F.col(ID).alias("record_key"), "content_hash", F.lit(run_id).alias("run_id"),
        F.lit(stamp).alias("resolved_at")).persist()
    if record_state is None:  # made whole in the driver
        write(RECORD_STATE, None)
    elif linkage.touched is None:
        write(RECORD_STATE, record_state)
    else:  # the records linkage regrouped hold every new, changed and removed one
        regrouped = linkage.touched.select(F.col(ID).alias("record_key"))
        write(RECORD_STATE, record_state.join(regrouped, "record_key", "left_semi"),
              (regrouped, ["record_key"]))
    write(IDENTITY_MAP, derived, (changed, ids) if changed is not None
          else None if scope is None else (scope.rows, ids))
    figures = diagnostics.golden_figures(lakehouse, ident.largest_clusters)  # as written
    n_customers, n_crm = figures.customers, figures.crm_customers
    log.info("resolve: %d golden records (%.1f s)", n_customers, time.monotonic() - started)

    weights = binned(batch.pairs["match_weight"], WEIGHT_EDGES) if batch is not None else \
        list(linkage.pairs.agg(*histogram("match_weight", WEIGHT_EDGES)).first())
    trained = json.loads(previous_model["metrics"]) if previous_model else {}
    trained_records = trained.get("trained_records", n_records)  # this run when it trained
    trained_weights = trained.get("trained_weights", weights)
    drift = retrain_advice(trained_records, n_records, trained_weights, weights, ident)
    if drift["retrain_advised"]:
        log.warning("resolve: retraining advised: %.0f%% of the CRM records are newer than "
                    "the reused model, and the match weights moved by a PSI of %.2f "
                    "(identity.retrain_new_share %.2f, retrain_weight_psi %.2f); run with "
                    "identity.reuse_model false", 100 * drift["new_records_share"],
                    drift["weight_psi"], ident.retrain_new_share, ident.retrain_weight_psi)
    summary = {"records": n_records, "customers": n_customers, "crm_customers": n_crm,
               "candidate_pairs": linkage.candidate_pairs, "matched_pairs": matched,
               "merges": n_merges, "threshold": ident.match_threshold,
               "pair_budget": pair_budget(ident, n_records),
               "blocking": [u.as_dict() for u in linkage.blocking] or trained.get("blocking", []),
               "trained_records": trained_records, "trained_weights": trained_weights,
               "drift": drift, "mode": mode, "full_because": why_full or None,
               "batch_records": linkage.batch_records,
               "touched_records": linkage.touched_records, "event_batches": marks,
               "batches": batches}
    model_json = json.dumps(linkage.model_json, sort_keys=True)
    version = record_model(lakehouse, MODEL_KIND, run_id, params=ident.model_dump(),
                           metrics=summary, data_versions=versions, artifact=model_json,
                           tracking=config.tracking, files={"splink_model.json": model_json})
    folder = Path(config.reports.root) / run_id / "identity"
    files = diagnostics.write(folder, linkage.charts, figures.sizes, figures.largest,
                              {**summary, "model_version": version})
    runlog.record(table="silver.customers_raw", rows_in=n_records, rows_out=n_crm,
                  message=f"{matched} matched pairs of {linkage.candidate_pairs} candidates")
    runlog.record(table=CUSTOMERS, rows_in=n_records, rows_out=n_customers)
    runlog.record(table=CUSTOMERS_PII, rows_in=n_records, rows_out=n_crm)
    runlog.record(table=IDENTITY_MAP, rows_in=previous_rows if previous is not None else 0,
                  rows_out=map_rows)
    runlog.record(table=MERGES, rows_in=0, rows_out=n_merges)
    runlog.record(table=LINKS, rows_in=linkage.candidate_pairs, rows_out=matched)
    runlog.record(table=FORMS, rows_in=n_records, rows_out=n_records,
                  message=f"{forms.normalised} records normalised, the others' forms kept")
    runlog.record(table=RECORD_STATE, rows_in=n_records, rows_out=n_records,
                  message=f"{mode}: {linkage.batch_records} new or changed records linked"
                  if base is not None else f"full: {why_full}")
    runlog.flush()
    for df in (records, forms.frame, forms.hashes, derived, crm, customers, linkage.pairs,
               linkage.edges, linkage.clusters, links):
        df.unpersist()
    if record_state is not None:
        record_state.unpersist()
    for df in (previous_map, events, emails, accounts, moved):
        if df is not None:
            df.unpersist()
    seconds = time.monotonic() - started
    log.info("resolve: %d records -> %d customers (%d with a CRM profile), %d merges, %.1f s",
             n_records, n_customers, n_crm, n_merges, seconds)
    return ResolveResult(run_id, n_records, n_customers, n_crm, linkage.candidate_pairs,
                         matched, n_merges, version, seconds, [str(f) for f in files],
                         drift["retrain_advised"], mode, linkage.batch_records,
                         forms.normalised)


def retrain_advice(trained_records: int, records: int, trained_weights: list[int],
                   weights: list[int], config: IdentityConfig) -> dict[str, Any]:
    """How far the records and the match weights moved from the model's training run, and
    whether that calls for retraining (either past its threshold)."""
    new_share = max(0.0, 1 - trained_records / records) if records else 0.0
    # an incremental batch of a few pairs says nothing about a shift
    psi = population_stability(trained_weights, weights) if sum(weights) >= DRIFT_MIN_PAIRS \
        else 0.0
    return {"new_records_share": round(new_share, 4), "weight_psi": round(psi, 4),
            "retrain_advised": new_share >= config.retrain_new_share
            or psi >= config.retrain_weight_psi}
