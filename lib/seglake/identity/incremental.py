"""Incremental linkage: only the CRM records new or changed since the last resolve are scored
(against every record, with the persisted model: term frequencies from all records), and only
the customers they touch are re-clustered. Every other record keeps its previous group, hence
its key: the cost follows the batch, and nothing the batch did not touch moves.

Splink 5 dropped ``find_matches_to_new_records``; a ``link_only`` linker between the batch and
all records scores batch-to-base and batch-to-batch pairs alike (self pairs are dropped).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from seglake.config import IdentityConfig
from seglake.identity.linkage import (
    ID,
    Linkage,
    _clusters,
    _Engine,
    chosen_engine,
    deterministic_edges,
    exact_pairs,
    matched_edges,
    model_charts,
)
from seglake.identity.stitching import (
    ACCOUNT,
    CLIENT,
    EMAIL,
    MAP_COLUMNS,
    RECORD,
    carried,
    client_rows,
    current,
    keyed_anchors,
)
from seglake.lakehouse import Lakehouse, parquet_scan
from seglake.session import held

log = logging.getLogger(__name__)

# settings that shape the graph: a model trained under other values cannot extend it
GRAPH_SETTINGS = ("country", "comparisons", "blocking", "deterministic", "deterministic_links",
                  "match_threshold", "training_blocks", "prior_rules", "match_prior", "matching",
                  "max_pairs", "pairs_per_record")


@dataclass
class RecordChanges:
    """The records that differ from the last resolve's state (``silver.identity_records``)."""

    batch: DataFrame   # unique_id of new and changed records (persisted)
    stale: DataFrame   # unique_id of changed and removed records: their old edges go (persisted)
    new: int
    changed: int
    removed: int


def record_changes(hashes: DataFrame, state: DataFrame) -> RecordChanges:
    """Compare this run's content hashes with the stored state (record_key, content_hash)."""
    before = state.select(F.col("record_key").alias(ID), F.col("content_hash").alias("_before"))
    kinds = hashes.join(before, ID, "full_outer").select(
        ID, F.when(F.col("_before").isNull(), "new")
        .when(F.col("content_hash").isNull(), "removed")
        .when(F.col("content_hash") != F.col("_before"), "changed").alias("change")) \
        .where(F.col("change").isNotNull()).persist()
    counts = {r["change"]: r["count"] for r in kinds.groupBy("change").count().collect()}
    return RecordChanges(
        kinds.where(F.col("change") != "removed").select(ID).persist(),
        kinds.where(F.col("change") != "new").select(ID).persist(),
        counts.get("new", 0), counts.get("changed", 0), counts.get("removed", 0))


def changed_settings(trained: dict[str, Any], config: IdentityConfig) -> list[str]:
    """The graph settings whose value differs from the model's training run (``trained``:
    its recorded params)."""
    now = json.loads(json.dumps(config.model_dump(), default=str))
    return [k for k in GRAPH_SETTINGS if trained.get(k) != now.get(k)]


def _batch_linker(engine: _Engine, frame: DataFrame, batch: DataFrame,
                  model_json: dict[str, Any]) -> Any:
    """A Splink ``link_only`` linker of the batch against every record, with the model."""
    from splink import Linker

    settings = {**model_json, "link_type": "link_only"}
    run = uuid.uuid4().hex[:8]  # Spark's catalog outlives a run: the second one in a session
    tables = [engine.api.register(engine.local(batch), dataset_display_name=f"batch_{run}"),
              engine.api.register(engine.local(frame), dataset_display_name=f"records_{run}")]
    return Linker(tables, settings)


def _batch_pairs(engine: _Engine, linker: Any, floor: float) -> tuple[DataFrame, int]:
    """Scored pairs of each batch record with every other record (each pair once), and the
    candidate pairs blocking produced."""
    candidates = engine.count(linker.inference.compute_blocked_pairs_for_predict())
    scored = engine.to_spark(linker.inference.predict(threshold_match_probability=floor))
    pairs = scored.where(F.col(f"{ID}_l") != F.col(f"{ID}_r")).select(
        F.least(f"{ID}_l", f"{ID}_r").alias(f"{ID}_l"),
        F.greatest(f"{ID}_l", f"{ID}_r").alias(f"{ID}_r"),
        "match_probability", "match_weight", F.lit("splink").alias("rule")) \
        .dropDuplicates([f"{ID}_l", f"{ID}_r"])
    return pairs, candidates


def link_batch(spark: SparkSession, frame: DataFrame, changes: RecordChanges,
               config: IdentityConfig, model_json: dict[str, Any], edges_before: DataFrame,
               groups_before: DataFrame) -> Linkage:
    """Score the batch with the model, apply its links to the graph, re-cluster the touched
    customers.

    ``edges_before``: the last graph (unique_id_l, unique_id_r, match_probability,
    match_weight); ``groups_before``: unique_id -> the last run's customer_key, removed records
    included. Untouched records get the cluster ``kept:<their key>``."""
    engine = _Engine(spark, chosen_engine(config, 0, model_json))
    batch = frame.join(changes.batch, ID, "left_semi")
    floor = min(0.5, config.match_threshold)
    linker = _batch_linker(engine, frame if changes.new + changes.changed else frame.limit(0),
                           batch, model_json)
    if changes.new + changes.changed:
        scored, candidates = _batch_pairs(engine, linker, floor)
    else:
        scored, candidates = spark.createDataFrame(
            [], f"{ID}_l STRING, {ID}_r STRING, match_probability DOUBLE, match_weight DOUBLE, "
                "rule STRING"), 0
    scored = scored.persist()
    if config.deterministic_links:
        ends = changes.batch.select(F.col(ID).alias("_end"))
        exact = deterministic_edges(frame, config.deterministic)
        exact = exact.join(ends, F.col(f"{ID}_l") == F.col("_end"), "left_semi").unionByName(
            exact.join(ends, F.col(f"{ID}_r") == F.col("_end"), "left_semi")).distinct()
        pairs = exact_pairs(exact).unionByName(scored).persist()
    else:
        pairs = scored
    new_edges = matched_edges(pairs, config.match_threshold)
    stale = changes.stale
    kept = edges_before.join(stale.select(F.col(ID).alias(f"{ID}_l")), f"{ID}_l", "left_anti") \
        .join(stale.select(F.col(ID).alias(f"{ID}_r")), f"{ID}_r", "left_anti")
    edges = kept.join(new_edges, [f"{ID}_l", f"{ID}_r"], "left_anti") \
        .unionByName(new_edges).localCheckpoint()
    # the customers the batch touches: those of its changed or removed records, and those a
    # new edge reaches; their records are re-clustered, everyone else keeps their group
    reached = new_edges.select(F.col(f"{ID}_l").alias(ID)) \
        .unionByName(new_edges.select(F.col(f"{ID}_r").alias(ID))).unionByName(stale)
    touched = groups_before.join(reached, ID, "left_semi").select("customer_key").distinct()
    present = frame.select(ID)  # records that still exist
    nodes = groups_before.join(touched, "customer_key", "left_semi").select(ID) \
        .unionByName(changes.batch).distinct().join(present, ID, "left_semi").persist()
    inside = nodes.select(F.col(ID).alias("_in"))
    sub_edges = edges.join(inside, F.col(f"{ID}_l") == F.col("_in"), "left_semi") \
        .join(inside, F.col(f"{ID}_r") == F.col("_in"), "left_semi")
    touched_clusters = _clusters(engine, engine.local(nodes), sub_edges, config.match_threshold)
    untouched = groups_before.join(present, ID, "left_semi").join(nodes, ID, "left_anti") \
        .select(ID, F.concat(F.lit("kept:"), "customer_key").alias("cluster_id"))
    clusters = touched_clusters.select(
        ID, F.concat(F.lit("new:"), "cluster_id").alias("cluster_id")) \
        .unionByName(untouched).localCheckpoint()  # short plans for stitching and keys
    regrouped = nodes.unionByName(stale).distinct().localCheckpoint()
    n_nodes, n_touched = nodes.count(), touched.count()
    log.info("resolve: incremental: %d new, %d changed, %d removed records; %d candidate "
             "pairs; %d customers (%d records) re-clustered", changes.new, changes.changed,
             changes.removed, candidates, n_touched, n_nodes)
    nodes.unpersist()
    return Linkage(model_json, pairs, edges, clusters, candidates, model_charts(linker),
                   batch_records=changes.new + changes.changed, touched_records=n_nodes,
                   touched=regrouped, engine=engine.name)


@dataclass
class MapScope:
    """The identity-map rows an incremental resolve derives again; every other row is kept.

    Closed under what decides a row: every identifier of a customer the batch touches, every
    record carrying one of them (the newest carrier owns an email, account or phone), and every
    cookie or device that logged in to such a customer, or has events added since the last
    resolve and is new to the map or logged in in them (an anonymous visit changes no row of a
    known one). Each part is materialised and shipped whole to the joins with the map when small
    (see session.Held)."""

    ids: DataFrame      # id_kind, id_value of records, emails, accounts and phones
    clients: DataFrame  # id_value of cookies and devices
    rows: DataFrame     # id_kind, id_value of both
    size: int           # rows of ``rows``
    # the frames are for the right side of joins only (see session.Held.shipped)


def map_scope(previous: DataFrame, touched: DataFrame, records: DataFrame, emails: DataFrame,
              accounts: DataFrame, new_clients: DataFrame) -> MapScope:
    """``previous``: the last map whole (spans included); ``touched``: unique_id of the
    records linkage regrouped (removed ones included); ``records``: record_key, email_hash,
    source_id, phone_hash of every CRM record; ``emails`` / ``accounts``: id_value of every
    email hash and account id seen; ``new_clients``: id_value of cookies and devices in events
    added since the last resolve that are new to the map or logged in there."""
    pair = ["id_kind", "id_value"]

    def held_by(df: DataFrame) -> DataFrame:  # (id_kind, id_value) of what records carry
        return df.select(F.lit(RECORD).alias("id_kind"), F.col("record_key").alias("id_value")) \
            .unionByName(carried(df))

    now = previous.where(F.col("valid_to").isNull() & (F.col("id_kind") != CLIENT))
    seen = emails.select(F.lit(EMAIL).alias("id_kind"), "id_value").unionByName(
        accounts.select(F.lit(ACCOUNT).alias("id_kind"), "id_value"))
    regrouped = held(touched.select(F.col(ID).alias("record_key"))).shipped()
    first = held(held_by(records.join(regrouped, "record_key", "left_semi"))
                 .unionByName(touched.select(F.lit(RECORD).alias("id_kind"),
                                             F.col(ID).alias("id_value")))
                 .unionByName(seen.join(now, pair, "left_anti")).distinct())
    keys = held(now.join(first.shipped(), pair, "left_semi").select("customer_key")
                .distinct()).shipped()
    ids = held(first.frame.unionByName(now.join(keys, "customer_key", "left_semi")
                                       .select(*pair)).distinct())
    carriers = carried(records, "record_key").join(ids.shipped(), pair, "left_semi")
    ids = held(ids.frame.unionByName(carriers.select(F.lit(RECORD).alias("id_kind"),
                                                     F.col("record_key").alias("id_value")))
               .distinct())
    clients = held(new_clients.unionByName(
        previous.where(F.col("id_kind") == CLIENT).join(keys, "customer_key", "left_semi")
        .select("id_value")).distinct())
    rows = held(ids.frame.unionByName(clients.frame.select(F.lit(CLIENT).alias("id_kind"),
                                                           "id_value")))
    return MapScope(ids.shipped(), clients.shipped(), rows.shipped(), rows.rows)


def fresh_clients(events: DataFrame, marks: dict[str, int] | None,
                  previous: DataFrame) -> DataFrame:
    """id_value of the cookies and devices in ``events`` since ``marks`` (see since) whose map
    rows these can change: those new to the ``previous`` map and those that logged in (an
    anonymous visit changes no row of a known one). local_sql.SCOPE_SQL's scope_clients."""
    fresh = since(events, marks).select(
        F.coalesce("cookie_id", "device_id").alias("id_value"), "user_id") \
        .where(F.col("id_value").isNotNull())
    return fresh.where(F.col("user_id").isNotNull()).select("id_value").unionByName(
        fresh.select("id_value").join(previous.where(F.col("id_kind") == CLIENT), "id_value",
                                      "left_anti"))


def batch_marks(lakehouse: Lakehouse, name: str) -> dict[str, int] | None:
    """The last ingest batch of each source in refined table ``name`` (None when it does not
    exist or its rows carry no lineage): what a later run reads as already seen. Read in the
    driver from the table's files where it has some, not by a Spark job."""
    if not lakehouse.exists(name) or \
            not {"_source", "_batch_id"} <= set(lakehouse.columns(name)):
        return None
    files = lakehouse.local_files(name)
    if files is not None:
        import duckdb

        return dict(duckdb.sql(f"select _source, max(_batch_id) from {parquet_scan(files)} "
                               "group by all").fetchall()) if files else {}
    return {r["_source"]: r["last"] for r in lakehouse.read(name).groupBy("_source")
            .agg(F.max("_batch_id").alias("last")).collect()}


def since(df: DataFrame, marks: dict[str, int] | None) -> DataFrame:
    """The rows of batches after ``marks`` (see batch_marks), of sources unknown to it too; all
    of them when no marks were recorded or the rows carry no lineage to compare."""
    if marks is None or not {"_source", "_batch_id"} <= set(df.columns):
        return df
    seen = F.lit(False)
    for source, last in marks.items():
        seen = seen | ((F.col("_source") == source) & (F.col("_batch_id") <= last))
    return df.where(~seen)


def in_scope(rows: DataFrame, scope: MapScope, keep: bool = True) -> DataFrame:
    """The map rows (id_kind, id_value, …) inside ``scope``, or outside it unless ``keep``."""
    return rows.join(scope.rows, ["id_kind", "id_value"], "left_semi" if keep else "left_anti")


def rederived_rows(scope: MapScope, previous_map: DataFrame, records: DataFrame,
                   clusters: DataFrame, emails: DataFrame, accounts: DataFrame,
                   logins: DataFrame, clients: DataFrame, key: bytes) -> DataFrame:
    """The map rows in ``scope`` derived again from the same inputs as ``identity_map`` takes,
    the last map (``previous_map``, whole) giving the rest: what ``identity_map`` would give
    there, at the cost of the scope. The map is ``in_scope(previous_map, scope, keep=False)``
    and these rows."""
    def of_kind(kind: str, name: str = "id_value") -> DataFrame:
        return scope.ids.where(F.col("id_kind") == kind).select(F.col("id_value").alias(name))

    now = previous_map.where(F.col("valid_to").isNull())
    scoped = records.join(of_kind(RECORD, "record_key"), "record_key", "left_semi")
    known = in_scope(keyed_anchors(
        scoped, clusters.join(of_kind(RECORD, "record_key"), "record_key", "left_semi"),
        emails.join(of_kind(EMAIL), "id_value", "left_semi"),
        accounts.join(of_kind(ACCOUNT), "id_value", "left_semi"),
        in_scope(now, scope).select("id_kind", "id_value", "customer_key"), key), scope)
    settled = in_scope(now.where(F.col("id_kind") != CLIENT), scope, keep=False) \
        .select(*MAP_COLUMNS)
    inside = scope.clients.select(F.col("id_value").alias("client_id"))
    spans = client_rows(logins.join(inside, "client_id", "left_semi"),
                        clients.join(scope.clients, "id_value", "left_semi"),
                        known.unionByName(settled), key)
    return known.unionByName(spans)


def changed_customers(previous: DataFrame, derived: DataFrame, new_map: DataFrame,
                      consented: DataFrame | None, delivered: DataFrame) -> DataFrame:
    """customer_key of every customer whose golden record an incremental run can change
    (materialised, for the right side of joins): those an identifier in the scope left or
    joined (``previous`` / ``derived``: the scope's current rows before and after; cookies and
    devices are no part of a golden record), those owning an email with a consent that arrived
    since the last resolve (``consented``: subject_hash) and those holding a CRM record
    delivered since (``delivered``: record_key; a change linkage does not compare, such as
    loyalty points, is a change of the golden record)."""
    def keys(rows: DataFrame) -> DataFrame:
        return rows.where(F.col("id_kind") != CLIENT).select("customer_key")

    now = current(new_map)
    changed = keys(previous).unionByName(keys(derived))
    for kind, ids in ((EMAIL, consented), (RECORD, delivered)):
        if ids is not None:
            fresh = held(ids.toDF("id_value").distinct()).shipped()
            changed = changed.unionByName(now.where(F.col("id_kind") == kind)
                                          .join(fresh, "id_value", "left_semi")
                                          .select("customer_key"))
    return held(changed.distinct()).shipped()
