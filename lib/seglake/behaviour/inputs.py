"""What the features read: silver activity strictly before ``as_of``, each row keyed to its
customer through ``silver.identity_map``.

Point-in-time correctness lives here and only here: every family function receives frames that
hold nothing at or after ``as_of`` (midnight UTC), so no feature can see the future.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from seglake.tables import ddl_fields

if TYPE_CHECKING:
    from seglake.lakehouse import Lakehouse

# The columns each input must have (DDL; tiny test frames are built from these too).
SCHEMAS = {
    "events": "event_id STRING, source STRING, event_type STRING, event_ts TIMESTAMP, "
              "cookie_id STRING, device_id STRING, session_id STRING, user_id STRING, "
              "page STRING, product_id STRING, category STRING, device_type STRING, "
              "duration_s INT",
    "orders": "order_id STRING, customer_email_hash STRING, customer_id STRING, "
              "ordered_at TIMESTAMP, status STRING, net_amount DOUBLE, coupon_code STRING",
    "email_events": "event_id STRING, campaign_id STRING, email_hash STRING, event STRING, "
                    "event_ts TIMESTAMP",
    "consents": "subject_hash STRING, purpose STRING, status STRING, updated_at TIMESTAMP",
    "products": "product_id STRING, price DOUBLE",
    "customers": "customer_key STRING, profile STRING, first_seen_at TIMESTAMP",
    "identity_map": "id_kind STRING, id_value STRING, customer_key STRING, "
                    "valid_from TIMESTAMP, valid_to TIMESTAMP",
}
TABLES = {"events": "silver.events", "orders": "silver.orders",
          "email_events": "silver.email_events", "consents": "silver.consents",
          "products": "silver.products", "customers": "silver.customers",
          "identity_map": "silver.identity_map"}
TIME_COLUMN = {"events": "event_ts", "orders": "ordered_at", "email_events": "event_ts",
               "consents": "updated_at"}
KEYED = ("events", "orders", "email_events")  # the activity a customer is keyed by
EMAIL, ACCOUNT, CLIENT = "email_hash", "customer_id", "client_id"  # identity_map id kinds


# columns an older table may lack (null there): a map resolved before validity was kept
OPTIONAL = frozenset({"valid_from", "valid_to"})




@dataclass
class Sources:
    """The silver tables (or tiny test frames) the features are computed from."""

    events: DataFrame
    orders: DataFrame
    email_events: DataFrame
    consents: DataFrame
    products: DataFrame
    customers: DataFrame
    identity_map: DataFrame
    absent: frozenset[str] = field(default=frozenset(), kw_only=True)  # inputs not sent at all

    @classmethod
    def of(cls, spark: SparkSession, frames: dict[str, DataFrame | None]) -> Sources:
        """Each input reduced to the columns features use; a missing one is an empty frame
        (and named in ``absent``)."""
        chosen = {}
        for name, schema in SCHEMAS.items():
            df = frames.get(name)
            chosen[name] = spark.createDataFrame([], schema) if df is None \
                else df.select(*[c if c in df.columns or c not in OPTIONAL else
                                 F.lit(None).cast(type_).alias(c)
                                 for c, type_ in ddl_fields(schema)])
        return cls(**chosen, absent=frozenset(n for n in SCHEMAS if frames.get(n) is None))


@dataclass
class Activity(Sources):
    """Sources cut at ``as_of`` and keyed: events, orders and email events carry
    ``customer_key``; ``emails`` are the identity-map rows of email hashes."""

    as_of: dt.date
    emails: DataFrame

    def persist(self) -> Activity:
        """The keyed frames computed once and kept: every feature family scans them again."""
        return replace(self, **{name: getattr(self, name).persist() for name in KEYED})

    def unpersist(self) -> None:
        for name in KEYED:
            getattr(self, name).unpersist()


def cutoff(as_of: dt.date) -> Column:
    """Midnight UTC at the start of ``as_of``: rows must be strictly earlier."""
    return F.lit(as_of).cast("timestamp")


def not_cancelled() -> Column:
    """An order that counts as bought (completed or returned, or of no known status)."""
    return F.coalesce(F.col("status"), F.lit("")) != "cancelled"


def days_before(as_of: dt.date, ts: Column | str) -> Column:
    """Whole days from the day of ``ts`` to ``as_of``: 1 for the day before."""
    return F.datediff(F.lit(as_of), F.to_date(ts))


def within(as_of: dt.date, ts: Column | str, days: int) -> Column:
    """``ts`` falls in the ``days`` days before ``as_of`` (as_of - days ... as_of - 1)."""
    return days_before(as_of, ts) <= days


PARTITION_BYTES = 64 << 20  # input bytes per customer partition of the activity


def customer_partitions(sources: Sources) -> int:
    """Partitions for the activity: ~64 MB of input each (from the plan's size estimate, no
    job), at least the cores, at most ``spark.sql.shuffle.partitions``."""
    spark = sources.events.sparkSession
    size = sum(int(str(getattr(sources, name)._jdf.queryExecution().optimizedPlan().stats()
                       .sizeInBytes())) for name in KEYED)
    ceiling = int(spark.conf.get("spark.sql.shuffle.partitions"))
    cores = spark.sparkContext.defaultParallelism
    return max(1, min(ceiling, max(cores, -(-size // PARTITION_BYTES))))


def activity(sources: Sources, as_of: dt.date) -> Activity:
    """Every source row before ``as_of`` with the customer it belongs to; rows whose
    identifiers are not in the identity map (arrived after the last resolve) get a null key.

    Keyed rows and customers are hash-partitioned by ``customer_key`` alike, so every
    per-customer aggregate and combination downstream runs without another shuffle."""
    partitions = customer_partitions(sources)

    def by_customer(df: DataFrame) -> DataFrame:
        return df.repartition(partitions, "customer_key")

    before = {name: getattr(sources, name).where(F.col(ts) < cutoff(as_of))
              for name, ts in TIME_COLUMN.items()}
    ids = sources.identity_map

    def kind(id_kind: str, column: str, key: str) -> DataFrame:
        return ids.where(F.col("id_kind") == id_kind).select(
            F.col("id_value").alias(column), F.col("customer_key").alias(key))

    # only what the features use travels through the joins and the cache
    events = before["events"] \
        .withColumn("client_id", F.coalesce("cookie_id", "device_id")) \
        .withColumn("session_id", F.coalesce("session_id", F.concat_ws(
            ":", "client_id", F.to_date("event_ts").cast("string")))) \
        .drop("event_id", "cookie_id", "device_id") \
        .join(kind(ACCOUNT, "user_id", "_account_key"), "user_id", "left")
    events = by_span(events, client_spans(ids, as_of)) \
        .withColumn("customer_key", F.coalesce("_account_key", "_client_key")) \
        .drop("_account_key", "_client_key", "user_id", "client_id")
    orders = before["orders"] \
        .join(kind(EMAIL, "customer_email_hash", "_email_key"), "customer_email_hash", "left") \
        .join(kind(ACCOUNT, "customer_id", "_account_key"), "customer_id", "left") \
        .withColumn("customer_key", F.coalesce("_email_key", "_account_key")) \
        .drop("_email_key", "_account_key")
    email_events = before["email_events"].join(kind(EMAIL, "email_hash", "customer_key"),
                                               "email_hash", "left")
    return Activity(events=by_customer(events), orders=by_customer(orders),
                    email_events=by_customer(email_events), consents=before["consents"],
                    products=sources.products, customers=by_customer(sources.customers),
                    identity_map=ids, as_of=as_of,
                    emails=ids.where(F.col("id_kind") == EMAIL), absent=sources.absent)


def client_spans(identity_map: DataFrame, as_of: dt.date) -> DataFrame:
    """(_client, _from, _to, _client_key): whose a cookie's or device's visit was, as known at
    ``as_of``. Logins before as_of split its time into spans, the first reaching back over
    the visits before it; with no login before as_of it is its anonymous key's throughout (a
    later login reveals nothing to an earlier as_of)."""
    rows = identity_map.where(F.col("id_kind") == CLIENT)
    logins = rows.where(F.col("valid_from") < cutoff(as_of))
    first = F.min("valid_from").over(Window.partitionBy("id_value"))
    logged = logins.select("id_value", "customer_key", F.when(
        F.col("valid_from") != first, F.col("valid_from")).alias("_from"),
        F.when(F.col("valid_to") < cutoff(as_of), F.col("valid_to")).alias("_to"))
    anonymous = rows.where(F.col("valid_from").isNull()
                           & (F.col("valid_to").isNull() | (F.col("valid_to") >= cutoff(as_of))))
    return logged.unionByName(anonymous.select(
        "id_value", "customer_key", F.lit(None).cast("timestamp").alias("_from"),
        F.lit(None).cast("timestamp").alias("_to"))).select(
        F.col("id_value").alias("_client"), "_from", "_to",
        F.col("customer_key").alias("_client_key"))


def by_span(events: DataFrame, spans: DataFrame) -> DataFrame:
    """``events`` (client_id, event_ts, …) with ``_client_key``: the key of the span (see
    client_spans) each visit fell in; null where its cookie or device has none."""
    return events.join(spans, (F.col("client_id") == F.col("_client"))
                       & (F.col("_from").isNull() | (F.col("_from") <= F.col("event_ts")))
                       & (F.col("_to").isNull() | (F.col("event_ts") < F.col("_to"))), "left") \
        .drop("_client", "_from", "_to")


def silver_sources(lakehouse: Lakehouse) -> Sources:
    """The silver tables features (and scoring labels) read; a missing one is empty."""
    return Sources.of(lakehouse.spark, {name: lakehouse.read(table) if lakehouse.exists(table)
                                        else None for name, table in TABLES.items()})


def end_of_data(sources: Sources) -> dt.date | None:
    """The day after the latest order, event or email event: the default ``as_of``."""
    latest = [getattr(sources, name).agg(F.max(TIME_COLUMN[name])).first()[0]
              for name in KEYED]
    latest = [ts for ts in latest if ts is not None]
    return max(latest).date() + dt.timedelta(days=1) if latest else None


def combined(parts: list[DataFrame]) -> DataFrame:
    """Frames of at most one row per ``customer_key`` side by side, one row per key of any of
    them: a union grouped once, where a chain of outer joins would sort every frame and hold
    all those sorts in memory at once."""
    names = list(dict.fromkeys(c for part in parts for c in part.columns if c != "customer_key"))
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part, allowMissingColumns=True)
    # each column comes from one part, so the one non-null value per key is its max
    return union.groupBy("customer_key").agg(*[F.max(c).alias(c) for c in names])
