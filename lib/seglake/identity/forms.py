"""Comparison forms kept between resolves (``silver.identity_forms``).

Normalising a record (accent folding, phone parsing, keyed hashing: pandas UDFs) is the
resolve's per-record Python work. A record is normalised when it is new, when a value linkage
compares changed, or when the normalisation did (compared columns and methods, country, phone
region, the forms' version, the pseudonymisation key); every other record's forms are read
back, so the cost follows the records that changed, not the base.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from seglake.config import IdentityConfig
from seglake.identity.linkage import ID, comparison_frame
from seglake.lakehouse import parquet_scan
from seglake.privacy import keyed_digest, keyed_hash
from seglake.session import Deferred, held

# bump when a comparison form changes (identity.normalise, privacy.email_key / e164_phone,
# linkage.comparison_frame, or an upgrade of phonenumbers): every stored form is then made
# again. tests/test_identity.py pins each version's forms of a sample and fails without a bump
FORMS_VERSION = 1
FORMS_COLUMNS = ("record_key", "digest", "content_hash", "forms")
# compared columns whose text both Spark and DuckDB write alike (digests made by either match)
PORTABLE = (T.StringType, T.DateType, T.IntegerType, T.LongType, T.ShortType, T.BooleanType)


def content_hashes(frame: DataFrame, key: bytes) -> DataFrame:
    """unique_id, content_hash: a keyed hash of the record's compared values as normalised
    (a change that linkage cannot see is no change)."""
    return frame.select(ID, _content_hash([c for c in frame.columns if c != ID], key))


def _content_hash(values: list[str], key: bytes) -> Column:
    return keyed_hash(F.to_json(F.struct(*values)), key).alias("content_hash")


def form_signature(config: IdentityConfig, region: str, key: bytes) -> str:
    """What a record's forms depend on besides its values, as a keyed hash (the key itself
    never enters a plan): forms made under another signature are made again."""
    spec = json.dumps({"version": FORMS_VERSION, "country": config.country, "region": region,
                       "compared": [[c.column, c.method] for c in config.comparisons]},
                      sort_keys=True)
    return keyed_digest(spec, key)


def _digest(signature: str, compared: list[str]) -> Column:
    """SHA-256 of the signature and of each compared value's bytes in hex ('-' for null): the
    text ``_digest_sql`` builds in DuckDB, so either path reads the other's digests."""
    return F.sha2(F.concat_ws("|", F.lit(signature), *[
        F.coalesce(F.hex(F.col(c).cast("string")), F.lit("-")) for c in compared]), 256)


def _digest_sql(compared: list[str]) -> str:
    """``_digest`` in DuckDB SQL (the signature as parameter ``$signature``)."""
    return "sha256(concat_ws('|', $signature, " + ", ".join(
        f"coalesce(hex(cast(\"{c}\" as varchar)), '-')" for c in compared) + "))"


@dataclass
class Forms:
    """Every record's comparison frame and content hash, and what silver.identity_forms
    needs to follow the records. Made in the driver (``local``), the Spark frames are made
    on first use (session.Deferred): an incremental run in the driver needs none of them."""

    frame: DataFrame | Deferred   # unique_id and the compared forms of every record
    hashes: DataFrame | Deferred  # unique_id, content_hash of every record
    fresh: DataFrame | Deferred   # the table's rows of the records normalised this run
    scope: DataFrame | Deferred   # record_key of those records and of stored ones now gone
    normalised: int     # records normalised this run
    changed: int        # rows of ``scope``
    added_only: bool    # the scope holds new records only: the table only gains rows
    local: pa.Table | None = None  # ``frame`` in the driver, when made there (local_forms)
    local_hashes: pa.Table | None = None  # and ``hashes``
    local_fresh: pa.Table | None = None  # and ``fresh``


def _normalised(due: DataFrame, config: IdentityConfig, region: str, key: bytes,
                values: list[str]) -> DataFrame:
    """The forms table's rows of the ``due`` records (with their ``digest``): the one place
    records are normalised."""
    made = comparison_frame(due, config, region, keep=("digest",))
    return made.select(F.col(ID).alias("record_key"), "digest", _content_hash(values, key),
                       F.to_json(F.struct(*values)).alias("forms"))


def comparison_forms(records: DataFrame, stored: DataFrame | None, config: IdentityConfig,
                     region: str, key: bytes) -> Forms:
    """The comparison frame of ``records`` (CRM records with their PII), normalising only
    those ``stored`` (silver.identity_forms, or None) holds no current forms for. Raises
    ValueError when the comparisons name columns the records lack."""
    layout = comparison_frame(records, config, region).schema  # checks the columns (no job)
    compared = sorted({c.column for c in config.comparisons})
    signature = form_signature(config, region, key)
    digest = _digest(signature, compared)
    if stored is not None and set(FORMS_COLUMNS) <= set(stored.columns):
        # one comparison of digests: the records to normalise, and the stored ones gone
        was = stored.select("record_key", F.col("digest").alias("_was"))
        differ = records.select("record_key", digest.alias("digest")) \
            .join(was, "record_key", "full_outer") \
            .where(~F.col("digest").eqNullSafe(F.col("_was")))
        scope = held(differ.select("record_key", F.col("digest").isNull().alias("_gone"),
                                   F.col("_was").isNull().alias("_new")))
        due = records.join(scope.shipped().where(~F.col("_gone")), "record_key", "left_semi")
        kept = stored.select(*FORMS_COLUMNS).join(scope.shipped(), "record_key", "left_anti")
    else:  # first run, or a table of another layout: every record
        scope, due, kept = None, records, None
    values = [c for c in layout.names if c != ID]
    fresh = held(_normalised(due.withColumn("digest", digest), config, region, key, values))
    rows = fresh.frame if kept is None else kept.unionByName(fresh.frame)
    parsed = F.from_json("forms", T.StructType([f for f in layout.fields if f.name != ID]))
    # one pass over the stored forms: the frame and the hashes are parts of it
    every = rows.select(F.col("record_key").alias(ID), "content_hash", parsed.alias("_f")) \
        .persist()
    whole = every.select(ID, *[F.col(f"_f.`{c}`").alias(c) for c in values]).persist()
    hashes = every.select(ID, "content_hash").persist()
    whole.count()
    hashes.count()
    every.unpersist()
    if scope is None:  # every record normalised: the table is replaced whole
        return Forms(whole, hashes, fresh.frame, fresh.frame.select("record_key"), fresh.rows,
                     fresh.rows, False)
    added_only = scope.rows > 0 and scope.frame.where(~F.col("_new")).isEmpty()
    return Forms(whole, hashes, fresh.frame, scope.shipped().select("record_key"), fresh.rows,
                 scope.rows, added_only)


def local_forms(records: DataFrame, records_sql: str, stored: list[str] | None,
                config: IdentityConfig, region: str, key: bytes) -> Forms | None:
    """``comparison_forms`` with the digests compared and the stored forms read in the driver
    (DuckDB): ``records_sql`` selects the CRM records from their files, ``stored`` lists the
    forms table's files (None: normalise every record); Spark normalises only the records due.
    The frame is also kept as Arrow (``Forms.local``) for Splink on DuckDB. None when a
    compared column's type does not read alike in both (``PORTABLE``): use comparison_forms."""
    import duckdb

    from seglake.identity.local_sql import as_spark

    layout = comparison_frame(records, config, region).schema  # checks the columns (no job)
    compared = sorted({c.column for c in config.comparisons})
    if not all(isinstance(records.schema[c].dataType, PORTABLE) for c in compared) or \
            not all(isinstance(f.dataType, T.StringType | T.DateType) for f in layout.fields):
        return None
    values = [c for c in layout.names if c != ID]
    con = duckdb.connect()
    try:
        con.sql("set timezone = 'UTC'")
        listed = ", ".join(f'"{c}"' for c in compared)
        con.execute(f"create temp table digests as select record_key, {_digest_sql(compared)} "
                    f"digest, {listed} from ({records_sql})",
                    {"signature": form_signature(config, region, key)})
        if stored:
            con.sql(f"create view stored as select {', '.join(FORMS_COLUMNS)} from "
                    + parquet_scan(stored))
        else:
            con.sql(f"create table stored ({', '.join(f'{c} VARCHAR' for c in FORMS_COLUMNS)})")
        con.sql("create temp table scope as select record_key, d.digest is null _gone, "
                "s.digest is null _new, d.digest from digests d full join stored s "
                "using (record_key) where d.digest is distinct from s.digest")
        # the records due, from the driver's read: no Spark scan of every record for a few
        due = con.sql(f"select record_key, digest, {listed} from digests semi join (select "
                      "record_key from scope where not _gone) using (record_key)").to_arrow_table()
        spark = records.sparkSession
        # one Spark job normalises the due records, taken to the driver at once
        fresh = _normalised(as_spark(spark, due).select(
            "record_key", "digest", *[F.col(c).cast(records.schema[c].dataType) for c in compared]),
            config, region, key, values).toArrow() if due.num_rows else \
            con.sql(f"select {', '.join(FORMS_COLUMNS)} from stored limit 0").to_arrow_table()
        con.register("fresh", fresh)
        types = {f.name: "DATE" if isinstance(f.dataType, T.DateType) else "VARCHAR"
                 for f in layout.fields if f.name != ID}
        whole = con.sql(
            "with rows as (select * from stored anti join scope using (record_key) union all "
            f"select {', '.join(FORMS_COLUMNS)} from fresh), parsed as (select record_key, "
            f"content_hash, json_transform(forms, '{json.dumps(types)}') f from rows) "
            f"select record_key {ID}, content_hash, "
            + ", ".join(f'f."{c}" "{c}"' for c in values) + " from parsed").to_arrow_table()
        scope = con.sql("select record_key, _new from scope").to_arrow_table()
    finally:
        con.close()
    frame, hashes = whole.drop_columns(["content_hash"]), whole.select([ID, "content_hash"])
    added_only = bool(stored) and scope.num_rows > 0 and all(scope["_new"].to_pylist())
    def deferred(rows: pa.Table) -> Deferred:
        return Deferred(lambda: as_spark(spark, rows))

    return Forms(deferred(frame), deferred(hashes), deferred(fresh),
                 deferred(scope.select(["record_key"])), fresh.num_rows, scope.num_rows,
                 added_only, frame, hashes, fresh)

