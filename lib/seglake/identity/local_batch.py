"""Incremental linkage in the driver: ``incremental.link_batch`` as DuckDB SQL over the last
graph's files, for a resolve whose comparison frame is already in the driver (forms.local_forms)
and whose model runs on DuckDB. The batch found, Splink's scoring of it, the graph's edges, the
re-clustering of the touched customers, and silver.identity_links and silver.identity_records
whole as they are to be written come out of one connection, as Arrow: no Spark job, where the
Spark path took about 10 s of small jobs at medium (107,321 records) for a batch of 57.

The statements follow link_batch step by step; a test holds the two equal.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seglake.config import IdentityConfig
from seglake.identity.linkage import ID, Linkage, model_charts
from seglake.identity.local_sql import (
    STAMPED_AT,
    as_spark,
    differing,
    files_view,
    stamp_params,
)
from seglake.identity.stitching import RECORD
from seglake.session import Deferred

log = logging.getLogger(__name__)

PAIR = f"{ID}_l, {ID}_r"
EMPTY_PAIRS = (f"select ''::varchar {ID}_l, ''::varchar {ID}_r, 0.0::double match_probability, "
               "null::double match_weight, ''::varchar rule limit 0")

RECORD_CHANGES_SQL = f"""
create temp table kinds as select {ID}, case when s.content_hash is null then 'new'
  when h.content_hash is null then 'removed' else 'changed' end change
  from hashes h full join state s using ({ID})
  where h.content_hash is distinct from s.content_hash;
create temp table batch as select {ID} from kinds where change <> 'removed';
create temp table stale as select {ID} from kinds where change <> 'new'
"""

# the graph after the batch's pairs (table pairs): the edges, the touched customers' records
# (nodes) and the edges among them
GRAPH_SQL = f"""
create temp table new_edges as select {PAIR}, max(match_probability) match_probability,
  max(match_weight) match_weight from pairs where match_probability >= $threshold group by all;
create temp table edges as select * from (
  select * from edges_before where {ID}_l not in (select {ID} from stale)
  and {ID}_r not in (select {ID} from stale)) anti join new_edges using ({PAIR})
  union all select * from new_edges;
create temp table groups_before as select id_value {ID}, customer_key from identity_map
  where id_kind = '{RECORD}' and valid_to is null;
create temp table touched as select distinct customer_key from groups_before where {ID} in (
  select {ID}_l from new_edges union all select {ID}_r from new_edges
  union all select {ID} from stale);
create temp table nodes as select distinct {ID} from (
  select {ID} from groups_before semi join touched using (customer_key)
  union all select {ID} from batch) semi join frame using ({ID});
create temp table sub_edges as select {PAIR}, match_probability from edges
  where {ID}_l in (select {ID} from nodes) and {ID}_r in (select {ID} from nodes)
"""

CLUSTERS_QUERY = f"""
select {ID}, 'new:' || cast(cluster_id as varchar) cluster_id from touched_clusters
union all select {ID}, 'kept:' || customer_key from (
  select * from groups_before semi join frame using ({ID})) anti join nodes using ({ID})
"""


@dataclass
class LocalBatch:
    """What link_batch makes, as Arrow, with the two tables it decides written whole."""

    model_json: dict[str, Any]
    pairs: pa.Table      # unique_id_l, unique_id_r, match_probability, match_weight, rule
    edges: pa.Table      # the graph after the batch (unique_id_l, unique_id_r, probability,
    #                      weight)
    clusters: pa.Table   # unique_id, cluster_id (new:… re-clustered, kept:<key> untouched)
    touched: pa.Table    # unique_id of the records re-clustered and of the removed ones
    candidates: int
    batch_records: int
    touched_records: int
    charts: dict[str, Any]
    written: dict[str, pa.Table | None]  # links and records whole (None: no row changed,
    #                                        or only rows added: see appended)
    appended: dict[str, pa.Table]  # links or records that only gained rows: those rows
    #                                (appended, no file rewritten)


def local_link_batch(frame: pa.Table, hashes: pa.Table, files: dict[str, list[str]],
                     config: IdentityConfig, model_json: dict[str, Any],
                     stamp: tuple[str, dt.datetime]) -> LocalBatch:
    """link_batch in the driver. ``frame``: unique_id and the compared forms of every record;
    ``hashes``: unique_id, content_hash; ``files``: the Parquet files of the last run's
    ``links``, ``records`` (silver.identity_records) and ``map``; ``stamp``: the run's id and
    time, kept by the rows of links and records nothing changed."""
    import duckdb
    from splink import DuckDBAPI, Linker
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    con = duckdb.connect()
    try:
        con.sql("set timezone = 'UTC'")
        con.register("frame", frame)
        con.register("hashes", hashes)
        files_view(con, "links_before", files["links"],
                    "record_key_l VARCHAR, record_key_r VARCHAR, match_probability DOUBLE, "
                    "match_weight DOUBLE, run_id VARCHAR, linked_at TIMESTAMPTZ")
        files_view(con, "state_before", files["records"],
                    "record_key VARCHAR, content_hash VARCHAR, run_id VARCHAR, "
                    "resolved_at TIMESTAMPTZ")
        files_view(con, "identity_map", files["map"],
                    "id_kind VARCHAR, id_value VARCHAR, customer_key VARCHAR, "
                    "valid_to TIMESTAMPTZ")
        con.sql(f"create view state as select record_key {ID}, content_hash from state_before")
        con.sql(f"create view edges_before as select record_key_l {ID}_l, record_key_r {ID}_r, "
                "match_probability, match_weight from links_before")
        for statement in RECORD_CHANGES_SQL.split(";"):
            con.sql(statement)
        counts = dict(con.sql("select change, count(*) from kinds group by all").fetchall())
        n_batch = counts.get("new", 0) + counts.get("changed", 0)
        batch = con.sql(f"select f.* from frame f semi join batch using ({ID})").to_arrow_table()
        api = DuckDBAPI(connection=con)
        run = uuid.uuid4().hex[:8]
        linker = Linker([api.register(batch, dataset_display_name=f"batch_{run}"),
                         api.register(frame if n_batch else frame.slice(0, 0),
                                      dataset_display_name=f"records_{run}")],
                        {**model_json, "link_type": "link_only"})
        floor = min(0.5, config.match_threshold)
        if n_batch:
            candidates = int(linker.inference.compute_blocked_pairs_for_predict()
                             .as_duckdbpyrelation().aggregate("count(*)").fetchall()[0][0])
            con.register("scored_raw", linker.inference.predict(
                threshold_match_probability=floor).as_pyarrow_table())
            scored = (f"select distinct on ({PAIR}) least({ID}_l, {ID}_r) {ID}_l, "
                      f"greatest({ID}_l, {ID}_r) {ID}_r, match_probability, match_weight, "
                      f"'splink' rule from scored_raw where {ID}_l <> {ID}_r")
        else:
            candidates, scored = 0, EMPTY_PAIRS
        exact = []  # each record to its group's smallest id, ends in the batch
        if config.deterministic_links:
            for columns in config.deterministic:
                present = " and ".join(f'"{c}" is not null' for c in columns)
                over = ", ".join(f'"{c}"' for c in columns)
                rule = "exact: " + ", ".join(columns)
                exact.append(
                    f"select least(m, {ID}) {ID}_l, greatest(m, {ID}) {ID}_r, 1.0::double, "
                    f"null::double, '{rule}' from (select min({ID}) over (partition by {over}) "
                    f"m, {ID} from frame where {present}) where m <> {ID} and (m in (select "
                    f"{ID} from batch) or {ID} in (select {ID} from batch))")
        con.sql(f"create temp table pairs as select * from ({scored})" + "".join(
            f" union all select * from (select distinct * from ({p}))" for p in exact))
        for statement in GRAPH_SQL.split(";"):
            con.execute(statement, {"threshold": config.match_threshold}
                        if "$threshold" in statement else None)
        nodes = con.sql("select * from nodes").to_arrow_table()
        sub_edges = con.sql("select * from sub_edges").to_arrow_table()
        con.register("touched_clusters", cluster_pairwise_predictions_at_threshold(
            nodes, sub_edges, api, ID,
            threshold_match_probability=config.match_threshold).as_pyarrow_table())
        n_touched = con.sql("select count(*) from touched").fetchall()[0][0]
        log.info("resolve: incremental: %d new, %d changed, %d removed records; %d candidate "
                 "pairs; %d customers (%d records) re-clustered", counts.get("new", 0),
                 counts.get("changed", 0), counts.get("removed", 0), candidates, n_touched,
                 nodes.num_rows)
        params = stamp_params(stamp)
        links = con.sql(
            f"select e.{ID}_l record_key_l, e.{ID}_r record_key_r, e.match_probability, "
            "e.match_weight, coalesce(w.run_id, $run_id) run_id, "
            f"coalesce(w.linked_at, {STAMPED_AT}) linked_at from edges e left join "
            f"links_before w on w.record_key_l = e.{ID}_l and w.record_key_r = e.{ID}_r and "
            "w.match_probability = e.match_probability and "
            "w.match_weight is not distinct from e.match_weight", params=params)
        records = con.sql(
            f"select h.{ID} record_key, h.content_hash, coalesce(w.run_id, $run_id) run_id, "
            f"coalesce(w.resolved_at, {STAMPED_AT}) resolved_at from hashes h left join "
            f"state_before w on w.record_key = h.{ID} and w.content_hash = h.content_hash",
            params=params)
        weighed = [f"{ID}_l", f"{ID}_r", "match_probability", "match_weight"]
        links_changed = con.sql("select exists (" + differing(
            "edges", "edges_before", weighed, weighed[:1]) + ")").fetchall()[0][0]
        same = " and ".join(f"b.{c} is not distinct from e.{c}" for c in weighed)
        links_grown = links_changed and con.sql(  # every edge before kept as it was
            f"select not exists (select * from edges_before b anti join edges e on {same})"
        ).fetchall()[0][0]
        written = {"links": links.to_arrow_table() if links_changed else None,
                   "records": records.to_arrow_table() if counts else None}
        appended = {}
        for name, grown in (("links", links_grown), ("records", set(counts) == {"new"})):
            if grown:  # the rows of this run are the new ones
                appended[name] = written[name].filter(pc.equal(written[name]["run_id"],
                                                               stamp[0]))
                written[name] = None
        return LocalBatch(
            model_json,
            con.sql("select * from pairs").to_arrow_table(),
            con.sql("select * from edges").to_arrow_table(),
            con.sql(CLUSTERS_QUERY).to_arrow_table(),
            con.sql(f"select {ID} from nodes union select {ID} from stale").to_arrow_table(),
            candidates, n_batch, nodes.num_rows, model_charts(linker), written, appended)
    finally:
        con.close()


def batch_linkage(spark: Any, batch: LocalBatch) -> Linkage:
    """``batch`` as link_batch returns it (Spark frames of its Arrow rows, made if used)."""
    def frame(rows: pa.Table) -> Any:
        return Deferred(lambda: as_spark(spark, rows))

    return Linkage(batch.model_json, frame(batch.pairs), frame(batch.edges),
                   frame(batch.clusters), batch.candidates, batch.charts,
                   batch_records=batch.batch_records, touched_records=batch.touched_records,
                   touched=frame(batch.touched), engine="duckdb")
