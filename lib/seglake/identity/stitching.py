"""Identity stitching: every identifier seen anywhere -> one customer_key.

Customers are made of anchors: CRM records (grouped by linkage), the email addresses and
account ids they carry, and emails or account ids seen only in orders, email events or consents
(customers without a CRM profile). A cookie or device belongs to an account from a login with it
until a login with another account (in data time: ``valid_from`` / ``valid_to``), and before its
first login to an anonymous key of its own, which a cookie or device that never logged in keeps.
Stitching attaches identifiers to customers; it never merges two customers (a shared family
computer must not join two profiles).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from seglake.identity.keys import assign_keys, opaque_key

RECORD, EMAIL, ACCOUNT, PHONE, CLIENT = "record_key", "email_hash", "customer_id", "phone_hash", \
    "client_id"
MAP_COLUMNS = ("id_kind", "id_value", "customer_key", "anonymous", "valid_from", "valid_to")


def _latest(df: DataFrame, by: str, order: list[Column]) -> DataFrame:
    """The first row per ``by`` in ``order``."""
    w = Window.partitionBy(by).orderBy(*order)
    return df.withColumn("_rank", F.row_number().over(w)).where("_rank = 1").drop("_rank")


def anchors(records: DataFrame, clusters: DataFrame, emails: DataFrame,
            accounts: DataFrame) -> DataFrame:
    """(id_kind, id_value, group) for every anchor identifier.

    ``records``: record_key, source_id, email_hash, created_at; ``clusters``: record_key,
    group; ``emails`` / ``accounts``: one column ``id_value`` of hashes / account ids seen in
    orders, email events and consents."""
    recs = records.join(clusters, "record_key")
    newest_first = [F.col("created_at").desc_nulls_last(), F.col("record_key")]

    def carried(column: str, kind: str) -> DataFrame:  # the newest record carrying it decides
        owned = _latest(recs.where(F.col(column).isNotNull()), column, newest_first)
        return owned.select(F.lit(kind).alias("id_kind"), F.col(column).alias("id_value"),
                            "group")

    def orphans(seen: DataFrame, owned: DataFrame, kind: str) -> DataFrame:
        ids = seen.where(F.col("id_value").isNotNull()).distinct() \
            .join(owned.select("id_value"), "id_value", "left_anti")
        return ids.select(F.lit(kind).alias("id_kind"), "id_value",
                          F.concat(F.lit(kind + ":"), "id_value").alias("group"))

    by_record = recs.select(F.lit(RECORD).alias("id_kind"), F.col("record_key").alias("id_value"),
                            "group")
    crm_emails = carried("email_hash", EMAIL)
    crm_accounts = carried("source_id", ACCOUNT)
    return by_record.unionByName(crm_emails).unionByName(crm_accounts) \
        .unionByName(orphans(emails, crm_emails, EMAIL)) \
        .unionByName(orphans(accounts, crm_accounts, ACCOUNT))


def identity_map(records: DataFrame, clusters: DataFrame, emails: DataFrame,
                 accounts: DataFrame, logins: DataFrame, clients: DataFrame,
                 previous: DataFrame | None, key: bytes) -> DataFrame:
    """The whole map: (id_kind, id_value, customer_key, anonymous, valid_from, valid_to); a
    cookie or device has a row per span (see login_spans), every other identifier one row.

    ``logins``: client_id, customer_id, event_ts of events with a user id; ``clients``: one
    column ``id_value`` of every cookie and device id seen."""
    known = keyed_anchors(records, clusters, emails, accounts, previous, key)
    return known.unionByName(client_rows(logins, clients, known, key)).select(*MAP_COLUMNS)


def keyed_anchors(records: DataFrame, clusters: DataFrame, emails: DataFrame,
                  accounts: DataFrame, previous: DataFrame | None, key: bytes) -> DataFrame:
    """Map rows of every identifier but cookies and devices: records, emails, account ids
    (see anchors) and phones, keyed (see assign_keys); materialised."""
    # materialised once: every reader below and the client rows read it, and its keys come
    # from a pandas UDF
    keyed = assign_keys(anchors(records, clusters, emails, accounts), previous, key) \
        .localCheckpoint()
    known = keyed.select("id_kind", "id_value", "customer_key")
    phones = _latest(records.join(clusters, "record_key").where(F.col("phone_hash").isNotNull()),
                     "phone_hash", [F.col("created_at").desc_nulls_last(), F.col("record_key")]) \
        .join(known.where(F.col("id_kind") == RECORD)
              .select(F.col("id_value").alias("record_key"), "customer_key"), "record_key") \
        .select(F.lit(PHONE).alias("id_kind"), F.col("phone_hash").alias("id_value"),
                "customer_key")
    return known.unionByName(phones).withColumn("anonymous", F.lit(False)) \
        .withColumn("valid_from", F.lit(None).cast("timestamp")) \
        .withColumn("valid_to", F.lit(None).cast("timestamp")).select(*MAP_COLUMNS)


def client_rows(logins: DataFrame, clients: DataFrame, known: DataFrame,
                key: bytes) -> DataFrame:
    """Map rows of cookies and devices: the spans of their logins (``known``: map rows that
    give each account id its key) and, before the first login, their anonymous key."""
    account_keys = known.where(F.col("id_kind") == ACCOUNT) \
        .select(F.col("id_value").alias("customer_id"), "customer_key")
    followed = login_spans(logins.join(account_keys, "customer_id"))
    # every cookie is anonymous until its first login (for ever when it never logged in)
    firsts = followed.groupBy("id_value").agg(F.min("valid_from").alias("valid_to"))
    anonymous = clients.where(F.col("id_value").isNotNull()).distinct() \
        .join(firsts, "id_value", "left") \
        .select(F.lit(CLIENT).alias("id_kind"), "id_value",
                _anonymous_key("id_value", key).alias("customer_key"), "valid_to")
    return followed.withColumn("anonymous", F.lit(False)).unionByName(
        anonymous.withColumn("anonymous", F.lit(True)), allowMissingColumns=True) \
        .select(*MAP_COLUMNS)


def login_spans(logins: DataFrame) -> DataFrame:
    """(id_kind, id_value, customer_key, valid_from, valid_to): a cookie or device is the
    customer's from a login until the next login as another customer (``logins``: client_id,
    customer_key, event_ts); of two logins at one instant the greater key counts."""
    by_time = Window.partitionBy("client_id").orderBy("event_ts", "customer_key")
    last_at_instant = logins.withColumn("_next_ts", F.lead("event_ts").over(by_time)) \
        .where(F.col("_next_ts").isNull() | (F.col("_next_ts") != F.col("event_ts")))
    starts = last_at_instant.withColumn("_before", F.lag("customer_key").over(by_time)) \
        .where(F.col("_before").isNull() | (F.col("_before") != F.col("customer_key")))
    return starts.select(F.lit(CLIENT).alias("id_kind"), F.col("client_id").alias("id_value"),
                         "customer_key", F.col("event_ts").alias("valid_from"),
                         F.lead("event_ts").over(by_time).alias("valid_to"))


def current(identity_map: DataFrame) -> DataFrame:
    """The rows valid now: one per identifier (a map written before validity intervals is
    all current)."""
    if "valid_to" not in identity_map.columns:
        return identity_map
    return identity_map.where(F.col("valid_to").isNull())


def _anonymous_key(client: str, key: bytes) -> Column:
    """The key of a cookie or device as long as no login ties it to a customer."""
    return opaque_key("a_", F.concat(F.lit("client:"), F.col(client)), key)
