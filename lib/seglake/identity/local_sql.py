"""Resolve's post-linkage steps as DuckDB SQL over the Delta tables' Parquet files, in the
driver: the identity map (what ``stitching.identity_map`` derives with Spark) and the golden
records (``golden.golden_customers``), for a resolve whose linkage ran on DuckDB. An incremental
run derives them in its scope only (``Scope``: what the batch regrouped and what arrived since
the last run, as ``incremental.map_scope`` and ``rederived_rows`` do in Spark; its untouched
records keep their last key as their group) and changes only the rows that differ from the
tables as written (the tables are written whole from here: ``Local.written``). At medium the
scope's 10,000 identifiers take 2 s where the whole map took 5.5 s.

On the medium demo world the map's 813,843 rows take 3.5 s here against 37 s as Spark jobs on
two cores (bench/identity_map_bench.py, which also holds the two equal; a test holds both steps
equal on the small world). The statements follow stitching.py, keys.py and golden.py step by
step: anchors and their owners, stable keys (inherited by votes, else a keyed hash of the
anchors), phones, login spans, anonymous keys (the last map's, once a sample of them shows the
same pseudonymisation key: hashing every cookie again cost a second at medium), then each
attribute's surviving record.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from seglake.config import IdentityConfig
from seglake.declarations import (
    CONSENTS,
    CUSTOMERS,
    CUSTOMERS_PII,
    CUSTOMERS_RAW,
    CUSTOMERS_RAW_PII,
    IDENTITY_MAP,
    MERGES,
    declared,
)
from seglake.identity.golden import ATTRIBUTES, PII_COLUMNS
from seglake.lakehouse import Lakehouse, parquet_scan
from seglake.privacy import keyed_hash_macro
from seglake.session import arrow_frame

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

# the columns each input gives the map (a view named after the table); a table that does not
# exist reads as empty
INPUTS = {CUSTOMERS_RAW: "record_key VARCHAR, system VARCHAR, source_id VARCHAR, "
                         "email_hash VARCHAR, phone_hash VARCHAR, birth_year INTEGER, "
                         "postcode VARCHAR, city VARCHAR, created_at TIMESTAMPTZ, "
                         "email_optin BOOLEAN, loyalty_points INTEGER, loyalty_turnover DOUBLE, "
                         "home_store VARCHAR",
          CUSTOMERS_RAW_PII: "record_key VARCHAR, title VARCHAR, first_name VARCHAR, "
                             "last_name VARCHAR, email VARCHAR, phone VARCHAR, birth_date DATE, "
                             "address VARCHAR",
          "silver.orders": "customer_email_hash VARCHAR, customer_id VARCHAR",
          "silver.email_events": "email_hash VARCHAR",
          CONSENTS: "subject_hash VARCHAR, purpose VARCHAR, status VARCHAR, "
                    "updated_at TIMESTAMPTZ",
          "silver.events": "user_id VARCHAR, cookie_id VARCHAR, device_id VARCHAR, "
                           "event_ts TIMESTAMPTZ",
          IDENTITY_MAP: "id_kind VARCHAR, id_value VARCHAR, customer_key VARCHAR, "
                        "anonymous BOOLEAN, valid_from TIMESTAMPTZ, valid_to TIMESTAMPTZ"}
# what an incremental run compares its rows with: the golden records as the last run left them
WRITTEN = {CUSTOMERS: ", ".join(f"{c} {t}" for c, t in (
               ("customer_key", "VARCHAR"), ("profile", "VARCHAR"), ("record_count", "BIGINT"),
               ("systems", "VARCHAR[]"), ("email_hash", "VARCHAR"), ("phone_hash", "VARCHAR"),
               ("birth_year", "INTEGER"), ("postcode", "VARCHAR"), ("city", "VARCHAR"),
               ("email_optin", "BOOLEAN"), ("loyalty_points", "INTEGER"),
               ("loyalty_turnover", "DOUBLE"), ("home_store", "VARCHAR"),
               ("first_seen_at", "TIMESTAMPTZ"), ("marketing_consent", "BOOLEAN"),
               ("marketing_consent_at", "TIMESTAMPTZ"))),
           CUSTOMERS_PII: "customer_key VARCHAR, title VARCHAR, first_name VARCHAR, "
                          "last_name VARCHAR, email VARCHAR, phone VARCHAR, birth_date DATE, "
                          "address VARCHAR, postcode VARCHAR, city VARCHAR"}

# the email hashes and account ids seen outside the CRM
SEEN_SQL = """
create temp table seen as
  select distinct 'email_hash' id_kind, v id_value from (select customer_email_hash v from orders
    union all select email_hash from email_events union all select subject_hash from consents)
  where v is not null
  union select distinct 'customer_id', v from (select cast(customer_id as varchar) v
    from orders union all select cast(user_id as varchar) from events) where v is not null
"""
# what the map is derived from when it is derived whole
WHOLE_SQL = """
create view groups as select * from clusters;
create temp table previous as select id_kind, id_value, customer_key from identity_map
  where valid_to is null;
create view client_events as select * from events
"""
# an incremental run's scope (incremental.map_scope): the identifiers of the records the batch
# regrouped (touched: record_key) and emails or accounts seen first, every identifier of the
# customers these were in, the records carrying any of them; the cookies and devices of these
# customers, and those in events since the last run (fresh_events) that are new to the map or
# logged in (an anonymous visit changes no row of a known one). The map is derived again
# there only (incremental.rederived_rows), from the inputs restricted to it.
SCOPE_SQL = """
create temp table now_ids as select id_kind, id_value, customer_key from identity_map
  where valid_to is null and id_kind <> 'client_id';
create temp table held as select record_key, 'record_key' id_kind, record_key id_value
  from customers_raw
  union all select record_key, 'email_hash', email_hash from customers_raw
  where email_hash is not null
  union all select record_key, 'customer_id', cast(source_id as varchar) from customers_raw
  where source_id is not null
  union all select record_key, 'phone_hash', phone_hash from customers_raw
  where phone_hash is not null;
create temp table first_ids as select id_kind, id_value from held semi join touched
  using (record_key)
  union select 'record_key', record_key from touched
  union select id_kind, id_value from seen anti join now_ids using (id_kind, id_value);
create temp table scope_keys as select distinct customer_key from now_ids
  semi join first_ids using (id_kind, id_value);
create temp table customer_ids as select * from first_ids
  union select id_kind, id_value from now_ids semi join scope_keys using (customer_key);
create temp table scope_ids as select * from customer_ids
  union select 'record_key', record_key from held semi join customer_ids using (id_kind, id_value);
create temp table scope_clients as select id_value from (
    select coalesce(cookie_id, device_id) id_value, bool_or(user_id is not null) logged_in
    from fresh_events where coalesce(cookie_id, device_id) is not null group by all)
  where logged_in or id_value not in (select id_value from identity_map
    where id_kind = 'client_id')
  union select id_value from identity_map semi join scope_keys using (customer_key)
  where id_kind = 'client_id';
create temp table scope_rows as select * from scope_ids
  union all select 'client_id', id_value from scope_clients;
create temp table groups as select * from clusters
  where record_key in (select id_value from scope_ids where id_kind = 'record_key');
delete from seen s where not exists (select 1 from scope_ids i
  where i.id_kind = s.id_kind and i.id_value = s.id_value);
create temp table previous as select id_kind, id_value, customer_key from identity_map
  semi join scope_rows using (id_kind, id_value) where valid_to is null;
create temp table client_events as select * from events
  where coalesce(cookie_id, device_id) in (select id_value from scope_clients)
"""
# the rows outside an incremental run's scope that give the scope's logins their customer
SETTLED = """
  union all select id_value, customer_key from now_ids where id_kind = 'customer_id'
  and id_value not in (select id_value from scope_ids where id_kind = 'customer_id')"""
IN_SCOPE = """;
delete from known k where not exists (select 1 from scope_ids i
  where i.id_kind = k.id_kind and i.id_value = k.id_value)"""

MAP_SQL = """
create temp table recs as select r.record_key, r.created_at, r.email_hash,
  cast(r.source_id as varchar) source_id, r.phone_hash, k."group"
  from customers_raw r join groups k using (record_key);
create temp table carried as
  select "group", created_at, record_key, 'email_hash' id_kind, email_hash id_value from recs
  where email_hash is not null
  union all select "group", created_at, record_key, 'customer_id', source_id from recs
  where source_id is not null
  union all select "group", created_at, record_key, 'phone_hash', phone_hash from recs
  where phone_hash is not null;
create temp table owned as select id_kind, id_value,
  arg_min("group", (created_at is null, -epoch_us(created_at), record_key)) "group"
  from carried group by all;
create temp table anchors as
  select 'record_key' id_kind, record_key id_value, "group" from recs
  union all select id_kind, id_value, "group" from owned where id_kind <> 'phone_hash'
  union all select s.id_kind, s.id_value, s.id_kind || ':' || s.id_value from seen s
  anti join owned o using (id_kind, id_value);
create temp table votes as select a."group", p.customer_key, count(*) votes from anchors a
  join previous p using (id_kind, id_value) group by all;
create temp table inherited as select "group", customer_key kept from (
  select *, row_number() over (partition by "group" order by votes desc, customer_key) g from (
    select *, row_number() over (partition by customer_key order by votes desc, "group") k
    from votes) where k = 1) where g = 1;
create temp table fresh as select "group", 'c_' || substr(keyed_hash(array_to_string(
  list_sort(list(id_kind || ':' || id_value)), '|')), 1, 24) new_key from anchors
  anti join inherited using ("group") group by all;
create temp table keyed as select a.id_kind, a.id_value,
  coalesce(i.kept, f.new_key) customer_key, a."group" from anchors a
  left join fresh f using ("group") left join inherited i using ("group");
create temp table known as select id_kind, id_value, customer_key from keyed
  union all select o.id_kind, o.id_value, g.customer_key from owned o join (
    select distinct "group", customer_key from keyed where id_kind = 'record_key') g
  using ("group") where o.id_kind = 'phone_hash'{in_scope};
create temp table account_keys as select id_value, customer_key from known
  where id_kind = 'customer_id'{settled};
-- a cookie or device that logged in to one customer only is one span from its first login
-- (nearly all): the windows order the logins of those that changed customers
create temp table followed as with l as (
    select coalesce(e.cookie_id, e.device_id) client_id, k.customer_key, e.event_ts
    from client_events e join account_keys k on k.id_value = cast(e.user_id as varchar)
    where coalesce(e.cookie_id, e.device_id) is not null),
  spans as (select client_id, min(customer_key) customer_key, max(customer_key) other,
    min(event_ts) valid_from from l group by all),
  many as (select * from l semi join (select client_id from spans
    where other <> customer_key) using (client_id)),
  last_at as (select * from (select *, lead(event_ts) over w nt from many window w as (
    partition by client_id order by event_ts, customer_key)) where nt is null or nt <> event_ts),
  starts as (select * from (select *, lag(customer_key) over w b from last_at window w as (
    partition by client_id order by event_ts, customer_key)) where b is null or b <> customer_key)
  select 'client_id' id_kind, client_id id_value, customer_key, event_ts valid_from,
  lead(event_ts) over (partition by client_id order by event_ts, customer_key) valid_to
  from starts
  union all select 'client_id', client_id, customer_key, valid_from, null from spans
  where other = customer_key;
create temp table anon_known as select distinct id_value, customer_key from identity_map
  where anonymous and id_kind = 'client_id';
delete from anon_known where (select count(*) from (select * from anon_known limit 8) s
  where s.customer_key <> 'a_' || substr(keyed_hash('client:' || s.id_value), 1, 24)) > 0;
create temp table anonymous as with c as (
    select distinct coalesce(cookie_id, device_id) id_value from client_events
    where coalesce(cookie_id, device_id) is not null),
  keyed as (select id_value, k.customer_key from c join anon_known k using (id_value)
    union all select id_value, 'a_' || substr(keyed_hash('client:' || id_value), 1, 24)
    from c anti join anon_known using (id_value))
  select 'client_id' id_kind, keyed.id_value, keyed.customer_key, f.valid_to from keyed
  left join (select id_value, min(valid_from) valid_to from followed group by all) f
  using (id_value)
"""
MAP_QUERY = """
select id_kind, id_value, customer_key, false anonymous, null::timestamptz valid_from,
  null::timestamptz valid_to from known
union all select id_kind, id_value, customer_key, false, valid_from, valid_to from followed
union all select id_kind, id_value, customer_key, true, null, valid_to from anonymous
"""


# customers_raw's columns with its PII's (crm_records): what golden records pick from
GOLDEN_SQL = """
create temp table records as select r.*, p.title, p.first_name, p.last_name, p.email, p.phone,
  p.birth_date, p.address, k.customer_key from customers_raw r
  join customers_raw_pii p using (record_key)
  join record_keys k using (record_key);
create temp table crm as select customer_key, 'crm' profile, {picks}, count(*) record_count,
  list_sort(list(distinct system) filter (where system is not null)) systems,
  min(created_at) first_seen_at from (select *{frequencies} from records) group by all;
create temp table others as select customer_key,
  max(case when id_kind = 'email_hash' then id_value end) email_hash,
  case when max(case when id_kind = 'email_hash' then 1 else 0 end) = 1 then 'email_only'
  else 'account_only' end profile
  from ids_keyed where id_kind in ('email_hash', 'customer_id')
  and customer_key not in (select customer_key from crm) group by all;
create temp table consent as select k.customer_key,
  arg_max(struct_pack(status := c.status, updated_at := c.updated_at), c.updated_at) c
  from consents c join ids_keyed k on k.id_kind = 'email_hash' and k.id_value = c.subject_hash
  where c.purpose = $purpose group by all
"""


def _golden_sql(config: IdentityConfig) -> str:
    """GOLDEN_SQL with each attribute's pick by its survivorship rule (golden._order): the
    record with the greatest order among those that have the attribute's lead column."""
    recent = "coalesce(created_at, timestamptz '1970-01-01 00:00:00+00'), record_key"
    systems = "[" + ", ".join("'" + s.replace("'", "''") + "'" for s in
                              config.source_priority) + "]"
    rank = f"coalesce(list_position({systems}, system), 0)"
    picks, frequencies = [], []
    for name, columns in ATTRIBUTES.items():
        lead = columns[0]
        rule = config.survivorship.get(name, "most_recent")
        if rule == "source_priority":
            order = f"case when {rank} = 0 then -1000000 else -{rank} end, {recent}"
        elif rule == "most_frequent":
            frequencies.append(f"count({lead}) over (partition by customer_key, {lead}) "
                               f"_f_{name}")
            order = f"_f_{name}, {recent}"
        else:
            order = recent
        fields = ", ".join(f"{c} := {c}" for c in columns)
        picks.append(f"arg_max(struct_pack({fields}), case when {lead} is not null then "
                     f"({order}) end) _p_{name}")
    return GOLDEN_SQL.format(picks=", ".join(picks),
                             frequencies="".join(f", {f}" for f in frequencies))


CUSTOMERS_QUERY = """
select customer_key, profile, coalesce(record_count, 0) record_count, systems, email_hash,
  phone_hash, birth_year, postcode, city, email_optin, loyalty_points, loyalty_turnover,
  home_store, first_seen_at, c.status = 'granted' marketing_consent,
  c.updated_at marketing_consent_at from (
    select customer_key, profile, record_count, systems, {crm}, first_seen_at from crm
    union all by name select * from others) left join consent using (customer_key)
"""


# what post_linkage makes (new_<short name>) for each table resolve writes
TABLES = {"rows": IDENTITY_MAP, "customers": CUSTOMERS, "pii": CUSTOMERS_PII}
STAMPED_AT = "cast($stamped_at as timestamptz)"  # the run's resolved_at (UTC, naive)


def stamp_params(stamp: tuple[str, dt.datetime]) -> dict[str, object]:
    """The SQL parameters ``$run_id`` and ``$stamped_at`` (STAMPED_AT) of ``stamp``."""
    return {"run_id": stamp[0], "stamped_at": stamp[1]}


def differing(a: str, b: str, columns: list[str], out: list[str]) -> str:
    """The distinct ``out`` columns of the rows of ``a`` or ``b`` that the other lacks: a full
    join on every column, nulls equal (at medium a seventh of two EXCEPT ALLs' time; rows
    are unique by their tables' keys, so multiplicities do not matter)."""
    on = " and ".join(f'a."{c}" is not distinct from b."{c}"' for c in columns)
    picked = ", ".join(f'coalesce(a."{c}", b."{c}") "{c}"' for c in out)
    return (f"select distinct {picked} from (select *, true _in from {a}) a full join "
            f"(select *, true _in from {b}) b on {on} where a._in is null or b._in is null")


def _names(columns: str) -> list[str]:
    return [c.split()[0] for c in columns.split(", ")]


# the rows of the new map and golden records that differ from those written (map_before,
# customers_before, pii_before: the rows in the run's scope): the identifiers and customers an
# incremental run writes again
CHANGES_SQL = f"""
create temp table changed_ids as {differing("map_before", "new_rows",
                                            _names(INPUTS[IDENTITY_MAP]), ["id_kind", "id_value"])};
create temp table changed_in_customers as {differing(
    "customers_before", "new_customers", _names(WRITTEN[CUSTOMERS]), ["customer_key"])};
create temp table changed_in_pii as {differing(
    "pii_before", "new_pii", _names(WRITTEN[CUSTOMERS_PII]), ["customer_key"])};
create temp table changed_customers as select * from changed_in_customers
  union select * from changed_in_pii
"""


# key changes (keys.key_changes) between the last map and the new one, and the merges' reasons
# from the graph's edges (links): record_key_l, record_key_r, match_probability
KEYS_SQL = f"""
create temp table moved as select p.customer_key old_key, n.customer_key new_key,
  count(*) ids_moved, bool_or(coalesce(p.anonymous, false)) _anonymous
  from map_before p join new_rows n using (id_kind, id_value)
  where p.valid_to is null and n.valid_to is null and p.customer_key <> n.customer_key
  group by all;
create temp table key_events as with keyed_before as (
    select id_value record, customer_key "key" from last_now where id_kind = 'record_key'),
  bridges as (select l.*, a."key" key_l, b."key" key_r from links l
    join keyed_before a on a.record = l.record_key_l
    join keyed_before b on b.record = l.record_key_r where a."key" <> b."key"),
  ends as (select key_l old_key, record_key_l, record_key_r, match_probability from bridges
    union all select key_r, record_key_l, record_key_r, match_probability from bridges),
  why as (select old_key, arg_max(struct_pack(record_key_l, record_key_r, match_probability),
    struct_pack(match_probability, record_key_l, record_key_r)) w from ends group by all),
  events as (select *, case when _anonymous then 'login'
    when old_key not in (select customer_key from new_map where valid_to is null) then 'merge'
    when new_key not in (select customer_key from last_now) then 'split' else 'move' end event
    from moved)
  select e.event, e.old_key, e.new_key, e.ids_moved, w.w.record_key_l, w.w.record_key_r,
  w.w.match_probability, $run_id run_id, {STAMPED_AT} merged_at
  from events e left join why w on w.old_key = e.old_key and e.event = 'merge'
"""


@dataclass
class Local:
    """Post-linkage rows, as Arrow: all of them, or (``changes``) those that differ from the
    tables as the last run left them."""

    identity_map: pa.Table               # MAP_COLUMNS
    map_rows: int                        # rows of the whole map
    customers: pa.Table | None = None    # CUSTOMER_COLUMNS (golden.py), when asked for
    customers_pii: pa.Table | None = None  # PII_COLUMNS
    changed_ids: pa.Table | None = None  # changes: id_kind, id_value of every map row that
    #                                      differs (the identity_map rows are theirs)
    changed_customers: pa.Table | None = None  # changes: customer_key of every golden record
    #                                            or PII row that differs (the rows are theirs)
    written: dict[str, pa.Table | None] | None = None  # with ``stamp`` (and ``config``): each
    #   table whole as it is to be written (in an incremental run rows nothing changed keep
    #   their stamps, None when none changed)
    key_changes: pa.Table | None = None  # with ``links`` and ``stamp``: the run's key changes
    #   (keys.key_changes, stamped), and those silver.identity_merges does not hold yet
    unrecorded: pa.Table | None = None
    previous_rows: int = 0               # rows of the last map
    scope_rows: int | None = None        # identifiers in an incremental run's scope


def readable(lakehouse: Lakehouse, max_bytes: int) -> bool:
    """Whether the driver can read the inputs from their files (the delta-rs backend), they
    hold at most ``max_bytes``, and the last map, if any, has validity intervals to take its
    current rows from."""
    if lakehouse.local_files(CUSTOMERS_RAW) is None:
        return False
    size = sum(os.path.getsize(f) for name in INPUTS for f in lakehouse.local_files(name) or [])
    if size > max_bytes:
        log.info("resolve: the identity map's inputs hold %.1f GB, more than "
                 "identity.local_max_bytes: derived with Spark", size / 1e9)
        return False
    return not lakehouse.exists(IDENTITY_MAP) or "valid_to" in lakehouse.columns(IDENTITY_MAP)


def files_view(con: duckdb.DuckDBPyConnection, view: str, files: list[str] | None,
               columns: str) -> None:
    """View ``view`` of ``columns`` ("name TYPE, …") read from a table's Parquet ``files``; an
    empty table of them when there are none (a table not yet written reads as empty)."""
    if files:
        con.sql(f"create view {view} as select {', '.join(_names(columns))} from "
                f"{parquet_scan(files)}")
    else:
        con.sql(f"create table {view} ({columns})")


@dataclass
class Scope:
    """Where an incremental run derives the map and golden records again (SCOPE_SQL)."""

    touched: pa.Table  # record_key of the records the batch regrouped, removed ones included
    marks: dict[str, dict[str, int] | None]  # of FRESH's tables: the batches the last run
    #   had read (incremental.batch_marks); later rows are new (all of them when None)


# what an incremental run reads as new since the last: view -> table, its columns
FRESH = {"fresh_events": ("silver.events", "user_id VARCHAR, cookie_id VARCHAR, "
                          "device_id VARCHAR"),
         "fresh_consents": (CONSENTS, "subject_hash VARCHAR"),
         "fresh_raw": (CUSTOMERS_RAW, "record_key VARCHAR"),
         "fresh_raw_pii": (CUSTOMERS_RAW_PII, "record_key VARCHAR")}
# the golden records an incremental run makes again (incremental.changed_customers): of the
# customers an identifier in the scope left or joined, those owning an email with a consent
# since the last run and those holding a CRM record delivered since
AFFECTED_SQL = """
create view new_map as select * from identity_map anti join scope_rows using (id_kind, id_value)
  union all by name select * from new_rows;
create view new_now as select id_kind, id_value, customer_key from new_map
  where valid_to is null and id_kind <> 'client_id';
create temp table affected as select customer_key from previous where id_kind <> 'client_id'
  union select customer_key from new_rows where valid_to is null and id_kind <> 'client_id'
  union select customer_key from new_now where id_kind = 'email_hash'
  and id_value in (select subject_hash from fresh_consents)
  union select customer_key from new_now where id_kind = 'record_key' and id_value in (
    select record_key from fresh_raw union all select record_key from fresh_raw_pii);
create temp table ids_keyed as select * from new_now semi join affected using (customer_key);
create view record_keys as select id_value record_key, customer_key from ids_keyed
  where id_kind = 'record_key';
create view map_before as select * from identity_map semi join scope_rows using (id_kind, id_value);
create view customers_before as select * from customers semi join affected using (customer_key);
create view pii_before as select * from customers_pii semi join affected using (customer_key)
"""
# the same names when the map and golden records are derived whole
WHOLE_GOLDEN_SQL = """
create view record_keys as select id_value record_key, customer_key from keyed
  where id_kind = 'record_key';
create view ids_keyed as select id_kind, id_value, customer_key from known;
create view map_before as select * from identity_map
"""
WHOLE_BEFORE_SQL = """
create view customers_before as select * from customers;
create view pii_before as select * from customers_pii
"""


def since_condition(marks: dict[str, int] | None) -> str:
    """SQL true for rows of batches after ``marks`` (incremental.since)."""
    if marks is None:
        return "true"
    seen = "".join(f" or (_source = '{source.replace(chr(39), chr(39) * 2)}' and "
                   f"_batch_id <= {int(last)})" for source, last in marks.items())
    return f"not (false{seen})"


def fresh_view(con: duckdb.DuckDBPyConnection, view: str, lakehouse: Lakehouse, name: str,
               columns: str, marks: dict[str, int] | None) -> None:
    """View ``view`` of ``columns`` of table ``name``'s rows in batches after ``marks`` (all
    of them when its rows carry no lineage: incremental.since), read from the files that may
    hold such rows only (their statistics: a file per batch and source, most of them seen)."""
    lineage = lakehouse.exists(name) and \
        {"_source", "_batch_id"} <= set(lakehouse.columns(name))
    condition = since_condition(marks) if lineage else "true"
    files = lakehouse.local_files(name, None if condition == "true" else condition)
    if not files:
        con.sql(f"create table {view} ({columns})")
        return
    con.sql(f"create view {view} as select {', '.join(_names(columns))} from "
            f"{parquet_scan(files)} where {condition}")


def post_linkage(lakehouse: Lakehouse, clusters: pa.Table, key: bytes,
                 config: IdentityConfig | None, inherit: bool = True,
                 changes: bool = False, stamp: tuple[str, dt.datetime] | None = None,
                 links: pa.Table | None = None, scope: Scope | None = None) -> Local:
    """The whole map and, with ``config``, the golden records, from the current files of the
    INPUTS tables (see readable) and ``clusters`` (record_key, group); every key new unless
    ``inherit`` (from the last map's keys). With ``changes`` (an incremental run: untouched
    records keep their last key as their group), only the rows that differ from the map and
    golden records as written, and which identifiers and customers they are; with ``scope``
    too, derived in its scope only (SCOPE_SQL), the rest kept as written. With ``stamp``
    (run_id, resolved_at) also the three tables whole as they are then to be written, and with
    ``links`` (the graph's edges) the key changes too."""
    import duckdb

    scoped = changes and scope is not None and config is not None
    con = duckdb.connect()
    try:
        con.sql("set timezone = 'UTC'")
        for name, columns in {**INPUTS, **(WRITTEN if changes else {})}.items():
            files_view(con, name.split(".")[1], lakehouse.local_files(name)
                       if inherit or name != IDENTITY_MAP else None, columns)
        con.register("clusters", clusters.select(["record_key", "group"]))
        keyed_hash_macro(con, key)
        con.sql(SEEN_SQL)
        if scoped:
            con.register("touched", scope.touched.select(["record_key"]))
            for view, (name, columns) in FRESH.items():
                fresh_view(con, view, lakehouse, name, columns, scope.marks.get(name))
        for statement in (SCOPE_SQL if scoped else WHOLE_SQL).split(";"):
            con.sql(statement)
        for statement in MAP_SQL.format(in_scope=IN_SCOPE if scoped else "",
                                        settled=SETTLED if scoped else "").split(";"):
            con.sql(statement)
        con.sql(f"create temp table new_rows as {MAP_QUERY}")
        scope_rows = con.sql("select count(*) from scope_rows").fetchall()[0][0] \
            if scoped else None
        if config is None:
            return Local(con.sql("select * from new_rows").to_arrow_table(),
                         con.sql("select count(*) from new_rows").fetchall()[0][0])
        for statement in (AFFECTED_SQL if scoped else WHOLE_GOLDEN_SQL).split(";"):
            con.sql(statement)
        if not scoped:
            con.sql("create view new_map as select * from new_rows")
        con.sql("create view last_now as select * from identity_map where valid_to is null")
        map_rows = con.sql("select count(*) from new_map").fetchall()[0][0]
        events = {}
        if links is not None and stamp is not None:
            con.register("links", links.select(["record_key_l", "record_key_r",
                                                "match_probability"]))
            files_view(con, "merges", lakehouse.local_files(MERGES),
                       "old_key VARCHAR, new_key VARCHAR")
            for statement in KEYS_SQL.split(";"):
                con.execute(statement, stamp_params(stamp) if "$run_id" in statement else None)
            events = {"key_changes": con.sql("select * from key_events").to_arrow_table(),
                      "unrecorded": con.sql("select * from key_events anti join merges "
                                            "using (old_key, new_key)").to_arrow_table()}
        events["previous_rows"] = con.sql("select count(*) from identity_map").fetchall()[0][0]
        for statement in _golden_sql(config).split(";"):
            con.execute(statement, {"purpose": config.marketing_purpose}
                        if "$purpose" in statement else None)
        crm = ", ".join(f"_p_{name}.{c} {c}" for name, columns in ATTRIBUTES.items()
                        for c in columns)
        pii = ", ".join(f"_p_{name}.{c} {c}" if c != "customer_key" else c
                        for c in PII_COLUMNS
                        for name in [next((n for n, cs in ATTRIBUTES.items() if c in cs),
                                          None)])
        con.sql(f"create temp table new_customers as {CUSTOMERS_QUERY.format(crm=crm)}")
        con.sql(f"create temp table new_pii as select {pii} from crm")
        if not changes:
            rows = {t: con.sql(f"select * from new_{t}").to_arrow_table()
                    for t in ("rows", "customers", "pii")}
            written = None if stamp is None else {  # a full run writes them whole, stamped
                name: rows[t] if name == CUSTOMERS_PII else con.sql(
                    f"select *, $run_id run_id, {STAMPED_AT} resolved_at from new_{t}",
                    params=stamp_params(stamp)).to_arrow_table()
                for t, name in TABLES.items()}
            return Local(rows["rows"], map_rows, rows["customers"], rows["pii"],
                         written=written, **events)
        for statement in ("" if scoped else WHOLE_BEFORE_SQL).split(";") + \
                CHANGES_SQL.split(";"):
            con.sql(statement)
        scopes = {"rows": "changed_ids using (id_kind, id_value)",
                  "customers": "changed_customers using (customer_key)",
                  "pii": "changed_customers using (customer_key)"}
        rows = {t: con.sql(f"select n.* from new_{t} n semi join {keys}").to_arrow_table()
                for t, keys in scopes.items()}
        changed = {"rows": "changed_ids", "customers": "changed_in_customers",
                   "pii": "changed_in_pii"}
        written = None if stamp is None else {  # a table without files: Spark's sync
            name: _rewritten(con, files, t, scopes[t], stamp) if con.sql(
                f"select exists (select * from {changed[t]})").fetchall()[0][0] else None
            for t, name in TABLES.items() if (files := lakehouse.local_files(name))}
        return Local(rows["rows"], map_rows, rows["customers"], rows["pii"],
                     con.sql("select * from changed_ids").to_arrow_table(),
                     con.sql("select * from changed_customers").to_arrow_table(), written,
                     scope_rows=scope_rows, **events)
    finally:
        con.close()


def _rewritten(con: duckdb.DuckDBPyConnection, files: list[str], table: str, scope: str,
               stamp: tuple[str, dt.datetime]) -> pa.Table:
    """Table ``table`` (rows: the map, customers, pii) whole as an incremental run writes it:
    the rows outside ``scope`` as they are, the new rows inside it, a new row equal to one
    written keeping that row's stamps (what Lakehouse.sync does)."""
    new = f"new_{table}"
    con.sql(f"create or replace temp view _written as select * from {parquet_scan(files)}")
    columns = [c for c, *_ in con.sql(f"describe {new}").fetchall()]
    stamped = "run_id" in [c for c, *_ in con.sql("describe _written").fetchall()]
    fresh = f"select n.* from {new} n semi join {scope}"
    if stamped:
        same = " and ".join(f'n."{c}" is not distinct from w."{c}"' for c in columns)
        fresh = (f"select n.*, coalesce(w.run_id, $run_id) run_id, coalesce(w.resolved_at, "
                 f"{STAMPED_AT}) resolved_at from ({fresh}) n left join _written w on {same}")
    return con.sql(f"select * from _written anti join {scope} union all by name {fresh}",
                   params=stamp_params(stamp) if stamped else None) \
        .to_arrow_table()


def local_identity_map(lakehouse: Lakehouse, clusters: pa.Table, key: bytes,
                       inherit: bool = True) -> pa.Table:
    """The whole map alone (see post_linkage)."""
    return post_linkage(lakehouse, clusters, key, None, inherit).identity_map


def as_declared(table: pa.Table, name: str) -> pa.Table:
    """Arrow rows of the declared types of table ``name``, in its columns' order: what
    ``Lakehouse.overwrite`` writes from the driver."""
    from seglake.lakehouse.schema import conform_arrow

    target = StructType.fromDDL(declared(name).ddl)
    return conform_arrow(table, StructType([f for f in target.fields
                                            if f.name in table.column_names]), name)


def as_spark(spark: SparkSession, table: pa.Table, name: str | None = None) -> DataFrame:
    """Arrow rows as a Spark frame (of the declared types of table ``name``, if named)."""
    frame = arrow_frame(spark, table)
    if name is None:
        return frame
    types = {f.name: f.dataType for f in StructType.fromDDL(declared(name).ddl).fields}
    return frame.select(*[F.col(c).cast(types[c]) for c in table.column_names])
