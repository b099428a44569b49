"""The lakehouse contract, run against every backend available on the machine."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql import types as T

from seglake.lakehouse import (
    Lakehouse,
    LakehouseError,
    MergeKeyError,
    SchemaMismatchError,
    TableNotFoundError,
    Txn,
    make_backend,
)
from seglake.lakehouse.delta_spark import delta_spark_available

UTC = dt.timezone.utc

ALL_TYPES = T.StructType(
    [
        T.StructField("id", T.LongType(), False),
        T.StructField("ts", T.TimestampType()),
        T.StructField("day", T.DateType()),
        T.StructField("amount", T.DecimalType(12, 2)),
        T.StructField("score", T.DoubleType()),
        T.StructField("name", T.StringType()),
        T.StructField("active", T.BooleanType()),
        T.StructField("tags", T.ArrayType(T.StringType())),
        T.StructField("attrs", T.MapType(T.StringType(), T.StringType())),
        T.StructField(
            "address",
            T.StructType(
                [
                    T.StructField("street", T.StringType()),
                    T.StructField("geo", T.StructType([T.StructField("lat", T.DoubleType())])),
                ]
            ),
        ),
        T.StructField("country", T.StringType()),
    ]
)

ALL_TYPES_ROWS = [
    (
        1,
        dt.datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=UTC),
        dt.date(2026, 3, 29),
        Decimal("-12345.67"),
        1e-300,
        "Élodie Lefèvre-Dupont 🛒💳",
        True,
        ["soldes", "été"],
        {"canal": "e-mail", "préféré": "oui"},
        ("12 av. des Champs-Élysées", (48.8698,)),
        "FR",
    ),
    (
        2,
        dt.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
        dt.date(1969, 12, 31),
        Decimal("0.01"),
        -0.5,
        "Zoë Ñúñez",
        False,
        [],
        {},
        ("r. de l'Église", None),
        "Côte d'Ivoire",
    ),
    (3, None, None, None, None, None, None, None, None, None, None),
]


def _micros(value: dt.datetime) -> int:
    aware = value if value.tzinfo else value.astimezone()
    delta = aware - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def normalise(value, field: T.DataType | None = None):
    """Python values of Spark rows and Arrow rows in one comparable form."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return _micros(value)
    if isinstance(field, T.MapType):
        items = value.items() if isinstance(value, dict) else value
        return sorted((k, normalise(v)) for k, v in items)
    if isinstance(field, T.StructType):
        get = value.__getitem__
        return tuple(normalise(get(f.name) if isinstance(value, dict) else value[i], f.dataType)
                     for i, f in enumerate(field.fields))
    if isinstance(field, T.ArrayType):
        return [normalise(v, field.elementType) for v in value]
    return value


def rows_of(records, schema: T.StructType) -> list[tuple]:
    """Sorted, normalised rows from Spark Rows, tuples or Arrow dicts."""
    out = []
    for record in records:
        if isinstance(record, dict):
            values = [record[f.name] for f in schema.fields]
        else:
            values = list(record)
        pairs = zip(values, schema.fields, strict=True)
        out.append(tuple(normalise(v, f.dataType) for v, f in pairs))
    return sorted(out, key=repr)


def independent_rows(lakehouse: Lakehouse, name: str, schema: T.StructType) -> list[tuple]:
    """The table as delta-rs alone reads it, without seglake or Spark."""
    table = DeltaTable(lakehouse.path(name)).to_pyarrow_table()
    return rows_of(table.to_pylist(), schema)


def assert_table_equals(lakehouse: Lakehouse, name: str, expected, schema: T.StructType):
    want = rows_of(expected, schema)
    assert rows_of(lakehouse.read(name).collect(), schema) == want
    assert independent_rows(lakehouse, name, schema) == want


def log_files(lakehouse: Lakehouse, name: str) -> set[str]:
    root = lakehouse.path(name)
    return {os.path.relpath(u, root) for u in DeltaTable(root).file_uris()}


def frame(spark, rows, schema=ALL_TYPES, parts: int = 1):
    return spark.createDataFrame(rows, schema).repartition(parts)


# -- round trips ---------------------------------------------------------------------------

@pytest.mark.parametrize("partition_by", [None, ["country"]], ids=["unpartitioned", "partitioned"])
def test_round_trip_of_every_type(spark, lakehouse, partition_by):
    commit = lakehouse.append("bronze.all_types", frame(spark, ALL_TYPES_ROWS, parts=2),
                              partition_by=partition_by)
    assert commit.version == 0 and commit.rows_added == 3
    assert_table_equals(lakehouse, "bronze.all_types", ALL_TYPES_ROWS, ALL_TYPES)
    read = lakehouse.read("bronze.all_types")
    assert [(f.name, f.dataType) for f in read.schema.fields] == [
        (f.name, f.dataType) for f in ALL_TYPES.fields]
    assert DeltaTable(lakehouse.path("bronze.all_types")).metadata().partition_columns == (
        partition_by or [])


def test_arrow_rows_from_the_driver_round_trip_every_type(spark, lakehouse):
    """Rows made in the driver (Arrow) are written as a Spark frame would be: every type, a
    new table, an overwrite and an append, a partitioned table, and a NULL refused in a
    non-null column."""
    rows = frame(spark, ALL_TYPES_ROWS).toArrow()
    commit = lakehouse.overwrite("bronze.arrow_types", rows)
    assert commit.version == 0 and commit.rows_added == 3 and commit.files_added == 1
    assert_table_equals(lakehouse, "bronze.arrow_types", ALL_TYPES_ROWS, ALL_TYPES)
    read = lakehouse.read("bronze.arrow_types")
    assert [(f.name, f.dataType) for f in read.schema.fields] == [
        (f.name, f.dataType) for f in ALL_TYPES.fields]
    # columns in another order and of narrower types are conformed to the table's
    narrower = frame(spark, ALL_TYPES_ROWS[:2]).select(
        F.col("country"), F.col("id").cast("int").alias("id"), "ts", "day", "amount", "score",
        "name", "active", "tags", "attrs", "address").toArrow()
    assert lakehouse.overwrite("bronze.arrow_types", narrower).version == 1
    assert_table_equals(lakehouse, "bronze.arrow_types", ALL_TYPES_ROWS[:2], ALL_TYPES)
    # appended: the rows join those there
    added = lakehouse.append("bronze.arrow_types", frame(spark, ALL_TYPES_ROWS[2:]).toArrow())
    assert added.version == 2 and added.rows_added == 1
    assert_table_equals(lakehouse, "bronze.arrow_types", ALL_TYPES_ROWS, ALL_TYPES)
    lakehouse.append("bronze.arrow_parts", frame(spark, ALL_TYPES_ROWS),
                     partition_by=["country"])
    lakehouse.overwrite("bronze.arrow_parts", rows)
    assert_table_equals(lakehouse, "bronze.arrow_parts", ALL_TYPES_ROWS, ALL_TYPES)
    bad = frame(spark, [(None, *ALL_TYPES_ROWS[2][1:])], ALL_TYPES.fromJson(
        {**ALL_TYPES.jsonValue(), "fields": [{**ALL_TYPES.fields[0].jsonValue(),
                                              "nullable": True},
                                             *[f.jsonValue() for f in ALL_TYPES.fields[1:]]]}))
    with pytest.raises(Exception, match="NULL in a non-null column"):
        lakehouse.overwrite("bronze.arrow_types", bad.toArrow())
    assert lakehouse.version("bronze.arrow_types") == 2


def test_partitioned_reads_filter_by_partition(spark, lakehouse):
    lakehouse.append("bronze.all_types", frame(spark, ALL_TYPES_ROWS), partition_by=["country"])
    got = lakehouse.read("bronze.all_types").where("country = 'Côte d''Ivoire'").collect()
    assert [r.id for r in got] == [2]
    assert lakehouse.read("bronze.all_types").where("country IS NULL").count() == 1
    actions = pa.table(DeltaTable(lakehouse.path("bronze.all_types")).get_add_actions(
        flatten=True))
    values = set(actions.column("partition.country").to_pylist())
    assert values == {"FR", "Côte d'Ivoire", None}


def test_read_version_and_history(spark, lakehouse):
    lakehouse.append("silver.t", spark.range(5))
    lakehouse.append("silver.t", spark.range(5, 8))
    lakehouse.delete("silver.t", "id = 0")
    assert lakehouse.version("silver.t") == 2
    assert lakehouse.read("silver.t", version=0).count() == 5
    assert lakehouse.read("silver.t", version=1).count() == 8
    assert lakehouse.read("silver.t").count() == 7
    ops = [(h["version"], h["operation"]) for h in lakehouse.history("silver.t")]
    assert ops == [(2, "DELETE"), (1, "APPEND"), (0, "APPEND")]


def test_missing_table_and_bad_names(lakehouse):
    with pytest.raises(TableNotFoundError):
        lakehouse.read("silver.nothing_here")
    assert not lakehouse.exists("silver.nothing_here")
    with pytest.raises(LakehouseError, match="<layer>.<table>"):
        lakehouse.path("Silver/orders")


# -- schema evolution ----------------------------------------------------------------------

def test_append_adds_a_new_nullable_column(spark, lakehouse):
    lakehouse.append("silver.evolve", spark.range(3))
    lakehouse.append("silver.evolve", spark.range(3, 5).withColumn("note", F.lit("new")))
    rows = sorted(lakehouse.read("silver.evolve").collect())
    assert [tuple(r) for r in rows] == [(0, None), (1, None), (2, None), (3, "new"), (4, "new")]
    schema = DeltaTable(lakehouse.path("silver.evolve")).schema()
    assert [(f.name, f.nullable) for f in schema.fields] == [("id", False), ("note", True)]
    # data without the new nullable column still appends
    lakehouse.append("silver.evolve", spark.range(5, 6))
    assert lakehouse.read("silver.evolve").where("note IS NULL").count() == 4


def test_append_widens_compatible_types(spark, lakehouse):
    lakehouse.append("silver.widen", spark.range(2).selectExpr("id", "CAST(1.5 AS DOUBLE) AS x"))
    lakehouse.append("silver.widen", spark.range(2, 3).selectExpr(
        "CAST(id AS INT) AS id", "CAST(2.5 AS FLOAT) AS x", "CAST(NULL AS STRING) AS y"))
    read = lakehouse.read("silver.widen")
    assert read.schema["id"].dataType == T.LongType()
    assert sorted(tuple(r) for r in read.collect()) == [(0, 1.5, None), (1, 1.5, None),
                                                        (2, 2.5, None)]


def test_incompatible_changes_fail_clearly_and_change_nothing(spark, lakehouse):
    lakehouse.append("silver.strict", spark.range(3).withColumn("label", F.lit("a")))
    with pytest.raises(SchemaMismatchError, match="'label' changes type from string to int"):
        lakehouse.append("silver.strict", spark.range(1).withColumn("label", F.lit(1)))
    with pytest.raises(SchemaMismatchError, match="non-null column 'id' is missing"):
        lakehouse.append("silver.strict", spark.range(1).select(F.lit("b").alias("label")))
    with pytest.raises(SchemaMismatchError, match="partitioning cannot change"):
        lakehouse.append("silver.strict", spark.range(1).withColumn("label", F.lit("c")),
                         partition_by=["label"])
    assert lakehouse.version("silver.strict") == 0
    assert lakehouse.read("silver.strict").count() == 3


def test_null_in_a_non_null_column_fails_the_write(spark, lakehouse):
    lakehouse.append("silver.nn", spark.range(3))
    bad = spark.createDataFrame([(None,)], "id long")
    with pytest.raises(Exception, match="NULL in a non-null column"):
        lakehouse.append("silver.nn", bad)
    assert lakehouse.version("silver.nn") == 0


def test_overwrite_schema_replaces_the_table(spark, lakehouse):
    lakehouse.append("gold.o", spark.range(3))
    with pytest.raises(SchemaMismatchError):
        lakehouse.overwrite("gold.o", spark.range(2).select(F.col("id").cast("string")))
    lakehouse.overwrite("gold.o", spark.range(2).select(F.col("id").cast("string")),
                        overwrite_schema=True)
    assert lakehouse.read("gold.o").schema["id"].dataType == T.StringType()
    assert sorted(r.id for r in lakehouse.read("gold.o").collect()) == ["0", "1"]
    assert independent_rows(lakehouse, "gold.o", lakehouse.read("gold.o").schema) == [
        ("0",), ("1",)]


# -- replace where, delete -----------------------------------------------------------------

def test_replace_where_rewrites_only_matching_rows(spark, lakehouse):
    base = spark.range(20).selectExpr("id", "CAST(id % 2 AS INT) AS part", "'old' AS v")
    lakehouse.append("gold.rw", base, partition_by=["part"])
    before = log_files(lakehouse, "gold.rw")
    fresh = spark.range(100, 103).selectExpr("id", "1 AS part", "'new' AS v")
    commit = lakehouse.overwrite("gold.rw", fresh, replace_where="part = 1")
    rows = lakehouse.read("gold.rw").collect()
    assert sorted(r.id for r in rows if r.part == 1) == [100, 101, 102]
    assert sorted(r.id for r in rows if r.part == 0) == list(range(0, 20, 2))
    even_files = {f for f in before if f.startswith("part=0/")}
    assert even_files <= log_files(lakehouse, "gold.rw"), "files of other partitions kept"
    assert commit.files_removed == len(before - even_files)
    # a row outside the predicate fails the write and leaves the table as it was
    with pytest.raises(Exception, match="does not match replace_where"):
        lakehouse.overwrite("gold.rw", spark.range(1).selectExpr("id", "0 AS part", "'x' AS v"),
                            replace_where="part = 1")
    assert lakehouse.version("gold.rw") == 1
    # a predicate on a data column keeps the non-matching rows of rewritten files
    lakehouse.overwrite("gold.rw", spark.range(1).selectExpr("150 AS id", "1 AS part", "'v' AS v"),
                        replace_where="id >= 100")
    assert sorted(r.id for r in lakehouse.read("gold.rw").where("part = 1").collect()) == [150]
    assert lakehouse.read("gold.rw").count() == 11


def test_replace_where_on_a_new_table_creates_it(spark, lakehouse):
    """Stages that replace one date write the same way on their first run."""
    rows = spark.range(3).selectExpr("id", "1 AS part")
    lakehouse.overwrite("gold.rw_new", rows, partition_by=["part"], replace_where="part = 1")
    assert sorted(r.id for r in lakehouse.read("gold.rw_new").collect()) == [0, 1, 2]
    assert log_files(lakehouse, "gold.rw_new") and all(
        f.startswith("part=1/") for f in log_files(lakehouse, "gold.rw_new"))


def test_delete_rewrites_only_files_with_matching_rows(spark, lakehouse):
    for start in range(0, 100, 25):  # four files with disjoint id ranges
        lakehouse.append("silver.del", spark.range(start, start + 25).coalesce(1))
    before = log_files(lakehouse, "silver.del")
    assert len(before) == 4
    commit = lakehouse.delete("silver.del", "id IN (3, 7) OR id IS NULL")
    after = log_files(lakehouse, "silver.del")
    assert commit.files_removed == 1 and len(before & after) == 3
    assert lakehouse.read("silver.del").count() == 98
    assert lakehouse.read("silver.del").where("id IN (3, 7)").count() == 0
    lakehouse.delete("silver.del", "id >= 75")  # a whole file: removed, nothing rewritten
    assert lakehouse.read("silver.del").count() == 73
    assert len(log_files(lakehouse, "silver.del")) == 2 + 1
    id_schema = T.StructType([T.StructField("id", T.LongType())])
    assert independent_rows(lakehouse, "silver.del", id_schema) == rows_of(
        [(i,) for i in range(75) if i not in (3, 7)], id_schema)


# -- merge ---------------------------------------------------------------------------------

MERGE_SCHEMA = "id long, name string, amount int"


def test_merge_updates_inserts_and_deletes_in_one_commit(spark, lakehouse):
    for start in range(0, 100, 25):
        rows = [(i, f"n{i}", i) for i in range(start, start + 25)]
        lakehouse.append("silver.m", spark.createDataFrame(rows, MERGE_SCHEMA).coalesce(1))
    files = {f: None for f in log_files(lakehouse, "silver.m")}
    assert len(files) == 4
    version = lakehouse.version("silver.m")
    source = spark.createDataFrame(
        [(10, "updated", 1000, "U"), (30, None, None, "D"), (200, "inserted", 5, "U"),
         (201, "not inserted", 6, "D")],
        MERGE_SCHEMA + ", op string")
    commit = lakehouse.merge("silver.m", source, on="id", when_matched_delete="s.op = 'D'",
                             when_not_matched_insert="s.op <> 'D'")
    assert commit.version == version + 1 and commit.operation == "MERGE"
    expected = {i: (i, f"n{i}", i) for i in range(100)}
    expected[10] = (10, "updated", 1000)
    del expected[30]
    expected[200] = (200, "inserted", 5)
    schema = T.StructType.fromDDL(MERGE_SCHEMA)
    assert_table_equals(lakehouse, "silver.m", list(expected.values()), schema)
    after = log_files(lakehouse, "silver.m")
    # only the files holding ids 10 and 30 were rewritten; the ones with 50-99 are untouched
    assert commit.files_removed == 2
    assert len(set(files) & after) == 2
    kept = DeltaTable(lakehouse.path("silver.m")).get_add_actions(flatten=True)
    mins = sorted(pa.table(kept).column("min.id").to_pylist())
    assert 50 in mins and 75 in mins
    assert lakehouse.read("silver.m").columns == ["id", "name", "amount"]


def test_merge_condition_on_update_and_missing_source_columns(spark, lakehouse):
    lakehouse.append("silver.m2", spark.createDataFrame([(1, "a", 1), (2, "b", 2)], MERGE_SCHEMA))
    source = spark.createDataFrame([(1, 10), (2, 20), (3, 30)], "id long, amount int")
    lakehouse.merge("silver.m2", source, on=["id"], when_matched_update="s.amount > 15")
    rows = {r.id: tuple(r) for r in lakehouse.read("silver.m2").collect()}
    assert rows == {1: (1, "a", 1), 2: (2, "b", 20), 3: (3, None, 30)}


def test_sync_keeps_the_stamps_of_unchanged_rows_and_writes_nothing_when_nothing_changed(
        spark, lakehouse):
    schema = "id long, name string, stamp string"
    lakehouse.append("silver.s", spark.createDataFrame(
        [(1, "a", "run1"), (2, "b", "run1"), (3, "c", "run1")], schema))
    version = lakehouse.version("silver.s")
    same = spark.createDataFrame([(1, "a", "run2"), (2, "b", "run2"), (3, "c", "run2")], schema)
    assert lakehouse.sync("silver.s", same, ("stamp",), ["id"]) == (0, 0)
    assert lakehouse.version("silver.s") == version  # nothing written
    changed = spark.createDataFrame([(1, "a", "run3"), (2, "B", "run3"), (4, "d", "run3")],
                                    schema)
    assert lakehouse.sync("silver.s", changed, ("stamp",), ["id"]) == (2, 1)
    rows = {tuple(r) for r in lakehouse.read("silver.s").collect()}
    assert rows == {(1, "a", "run1"), (2, "B", "run3"), (4, "d", "run3")}
    assert lakehouse.version("silver.s") == version + 1  # one commit


def test_sync_matches_null_key_parts(spark, lakehouse):
    """A key with a null part (the identity map's valid_from) is a key like any other."""
    schema = "id long, since string, name string, stamp string"
    lakehouse.append("silver.sn", spark.createDataFrame(
        [(1, None, "a", "run1"), (1, "x", "b", "run1"), (2, None, "c", "run1")], schema))
    changed = spark.createDataFrame(
        [(1, None, "a", "run2"), (1, "x", "B", "run2"), (3, None, "d", "run2")], schema)
    assert lakehouse.sync("silver.sn", changed, ("stamp",), ["id", "since"]) == (2, 1)
    rows = {tuple(r) for r in lakehouse.read("silver.sn").collect()}
    assert rows == {(1, None, "a", "run1"), (1, "x", "B", "run2"), (3, None, "d", "run2")}


def test_sync_within_a_scope_replaces_its_rows_only(spark, lakehouse):
    """Rows outside the scope stay as they are, though ``df`` does not hold them; inside it,
    rows missing from ``df`` go and unchanged ones keep their stamps."""
    schema = "grp string, id long, name string, stamp string"
    lakehouse.append("silver.sw", spark.createDataFrame(
        [("x", 1, "a", "run1"), ("x", 2, "b", "run1"), ("y", 3, "c", "run1"),
         ("z", 4, "d", "run1")], schema))
    rows = spark.createDataFrame([("x", 1, "a", "run2"), ("y", 3, "C", "run2"),
                                  ("y", 5, "e", "run2")], schema)
    scope = spark.createDataFrame([("x",), ("y",)], "grp string")
    assert lakehouse.sync("silver.sw", rows, ("stamp",), ["id"], within=(scope, ["grp"])) \
        == (2, 1)
    assert {tuple(r) for r in lakehouse.read("silver.sw").collect()} == {
        ("x", 1, "a", "run1"), ("y", 3, "C", "run2"), ("y", 5, "e", "run2"),
        ("z", 4, "d", "run1")}
    version = lakehouse.version("silver.sw")
    assert lakehouse.sync("silver.sw", rows.where("id = 1"), ("stamp",), ["id"],
                          within=(scope.where("grp = 'x'"), ["grp"])) == (0, 0)
    assert lakehouse.version("silver.sw") == version  # nothing in the scope changed


def test_merge_rejects_duplicate_source_keys(spark, lakehouse):
    lakehouse.append("silver.m3", spark.createDataFrame([(1, "a", 1)], MERGE_SCHEMA))
    source = spark.createDataFrame([(1, "x", 1), (1, "y", 2)], MERGE_SCHEMA)
    with pytest.raises(MergeKeyError, match="several rows for the same key"):
        lakehouse.merge("silver.m3", source, on="id")
    assert lakehouse.version("silver.m3") == 0


def test_merge_into_a_new_table_creates_it(spark, lakehouse):
    source = spark.createDataFrame([(1, "a", 1)], MERGE_SCHEMA)
    lakehouse.merge("silver.m4", source, on="id")
    assert [tuple(r) for r in lakehouse.read("silver.m4").collect()] == [(1, "a", 1)]


# -- idempotence and atomicity -------------------------------------------------------------

def test_idempotent_writes_apply_once(spark, lakehouse):
    df = spark.range(10)
    first = lakehouse.append("bronze.idem", df, txn=Txn("ingest-orders", 1))
    second = lakehouse.append("bronze.idem", df, txn=Txn("ingest-orders", 1))
    assert not first.skipped and second.skipped
    assert lakehouse.read("bronze.idem").count() == 10
    assert lakehouse.version("bronze.idem") == 0
    lakehouse.append("bronze.idem", df, txn=Txn("ingest-orders", 2))
    lakehouse.append("bronze.idem", df, txn=Txn("other-app", 1))
    assert lakehouse.read("bronze.idem").count() == 30
    merged = lakehouse.merge("bronze.idem", spark.range(100, 101), on="id",
                             txn=Txn("ingest-orders", 2))
    assert merged.skipped
    assert DeltaTable(lakehouse.path("bronze.idem")).transaction_version("ingest-orders") == 2


def test_failure_half_way_leaves_the_previous_version(spark, lakehouse):
    def _fail_on_partition(index, rows):  # nested: Spark workers cannot import test modules
        if index == 2:
            raise RuntimeError("simulated executor failure")
        yield from rows

    lakehouse.append("silver.atomic", spark.range(100))
    history = lakehouse.history("silver.atomic")
    failing = spark.range(1000, 2000, numPartitions=4).rdd.mapPartitionsWithIndex(
        _fail_on_partition).toDF("id long")
    for write in (
        lambda: lakehouse.append("silver.atomic", failing),
        lambda: lakehouse.overwrite("silver.atomic", failing),
        lambda: lakehouse.merge("silver.atomic", failing, on="id"),
    ):
        with pytest.raises(Exception, match="simulated executor failure"):
            write()
        assert lakehouse.history("silver.atomic") == history
        assert lakehouse.read("silver.atomic").count() == 100
    assert DeltaTable(lakehouse.path("silver.atomic")).to_pyarrow_table().num_rows == 100
    staging = os.path.join(lakehouse.path("silver.atomic"), "_staging")
    leftovers = [f for _, _, names in os.walk(staging) for f in names]
    assert leftovers == []


# -- statistics and maintenance ------------------------------------------------------------

def test_statistics_let_an_independent_reader_skip_files(spark, lakehouse):
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    for month in range(4):
        rows = [(month * 100 + i, base + dt.timedelta(days=31 * month, microseconds=i),
                 f"cust-{month}-{i:03d}", dt.date(2026, month + 1, 1)) for i in range(50)]
        df = spark.createDataFrame(rows, "id long, ts timestamp, name string, day date")
        lakehouse.append("silver.stats", df.coalesce(1))
    table = DeltaTable(lakehouse.path("silver.stats"))
    assert len(table.file_uris()) == 4
    assert len(table.file_uris(file_pruning_predicate="id >= 300")) == 1
    assert len(table.file_uris(file_pruning_predicate="id < 100 OR id > 349")) == 1
    assert len(table.file_uris(file_pruning_predicate="name >= 'cust-2'")) == 2
    assert len(table.file_uris(file_pruning_predicate="day = '2026-02-01'")) == 1
    assert len(table.file_uris(file_pruning_predicate="ts > '2026-03-05T00:00:00Z'")) == 1
    # microsecond bounds are widened to milliseconds, never narrowed: a file holding a
    # matching row is never skipped
    assert len(table.file_uris(
        file_pruning_predicate="ts >= '2026-03-04T00:00:00.000049Z'")) == 2
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    for action in actions:
        ids = lakehouse.read("silver.stats").where(
            f"id BETWEEN {action['min.id']} AND {action['max.id']}")
        assert action["num_records"] == 50 == ids.count()
        assert action["null_count.name"] == 0
    # the bounds really hold the data: a filtered read through pruned files loses no row
    pruned = DeltaTable(lakehouse.path("silver.stats")).to_pyarrow_table(
        filters=[("ts", ">", pa.scalar(base + dt.timedelta(days=93, microseconds=48)))])
    assert pruned.num_rows == 1


def test_vacuum_deletes_files_no_version_needs(spark, lakehouse):
    lakehouse.append("silver.vac", spark.range(10).coalesce(1))
    old_files = log_files(lakehouse, "silver.vac")
    lakehouse.overwrite("silver.vac", spark.range(3).coalesce(1))
    removed = lakehouse.vacuum("silver.vac", retention_hours=0)
    if lakehouse.backend.name == "delta-rs":
        assert {os.path.basename(f) for f in removed} >= {os.path.basename(f) for f in old_files}
    for rel in old_files:
        assert not os.path.exists(os.path.join(lakehouse.path("silver.vac"), rel))
    assert lakehouse.read("silver.vac").count() == 3
    with pytest.raises(Exception):  # noqa: B017 - the old version's files are gone
        lakehouse.read("silver.vac", version=0).count()


def test_reads_follow_other_writers_and_a_table_made_again(spark, lakehouse, tmp_path):
    """Snapshots kept between calls (delta-rs) never serve a stale table: a commit by another
    writer, a table dropped and created again under the same path with fewer versions, and one
    restored from a copy are each read as they now are."""
    import shutil

    from deltalake import write_deltalake

    name = "silver.again"
    for n in (3, 4, 5):
        lakehouse.append(name, spark.range(n).coalesce(1))
    assert lakehouse.read(name).count() == 12 and lakehouse.version(name) == 2
    root = lakehouse.path(name).removeprefix("file:")
    write_deltalake(root, pa.table({"id": pa.array([100], pa.int64())}), mode="append")
    assert lakehouse.version(name) == 3 and lakehouse.read(name).count() == 13
    assert len(lakehouse.local_files(name)) == 4
    copy = str(tmp_path / "copy")
    shutil.copytree(root, copy)
    shutil.rmtree(root)
    assert not lakehouse.exists(name)
    lakehouse.append(name, spark.range(7).coalesce(1))  # made again: version 0
    assert lakehouse.version(name) == 0 and lakehouse.read(name).count() == 7
    assert len(lakehouse.local_files(name)) == 1
    shutil.rmtree(root)
    shutil.copytree(copy, root)  # the old table back, its versions as they were
    assert lakehouse.version(name) == 3 and lakehouse.read(name).count() == 13


# ------------------------------------------------------------------- delta-rs on a cluster

def test_delta_rs_refuses_an_object_store_before_any_work(spark, tmp_path):
    from pydantic import ValidationError

    from seglake.config import SeglakeConfig

    with pytest.raises(ValidationError, match="object store: the delta-rs backend"):
        SeglakeConfig.model_validate({"lakehouse": {"root": "s3a://bucket/lake",
                                                    "backend": "delta-rs"}})
    config = SeglakeConfig.model_validate({"lakehouse": {"root": "abfss://lake@acct/seglake"}})
    if delta_spark_available(spark):
        pytest.skip("auto picks delta-spark where the Delta jars are loaded")
    with pytest.raises(LakehouseError, match="--packages io.delta:delta-spark"):
        Lakehouse.from_config(spark, config)


def test_files_the_driver_cannot_see_fail_the_write(spark, tmp_path, monkeypatch):
    """On a cluster without a shared file system the executors' files land elsewhere: the
    commit must fail instead of committing no rows."""
    import seglake.lakehouse.delta_rs as rs

    class Elsewhere(rs.pafs.LocalFileSystem):  # lists nothing, as a driver on another disk
        def get_file_info(self, selector):
            return []

    lake = Lakehouse(spark, str(tmp_path / "lh"), make_backend(spark, "delta-rs"))
    monkeypatch.setattr(rs.pafs, "LocalFileSystem", Elsewhere)
    with pytest.raises(LakehouseError, match="not visible to the driver"):
        lake.append("silver.t", spark.range(5))
    # an empty partitioned write legitimately has no file
    lake.append("silver.p", spark.range(5).withColumn("p", F.col("id") % 2).where("id > 9"),
                partition_by=["p"])
    monkeypatch.undo()
    assert not lake.exists("silver.t")
