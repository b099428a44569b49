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


# the identifiers a CRM record carries: record column -> identifier kind
CARRIED = {"email_hash": EMAIL, "source_id": ACCOUNT, "phone_hash": PHONE}


def carried(records: DataFrame, *keep: str) -> DataFrame:
    """(*keep, id_kind, id_value): a row per identifier each record carries (CARRIED)."""
    ids = F.explode(F.array(*[F.struct(F.lit(kind).alias("id_kind"),
                                       F.col(column).cast("string").alias("id_value"))
                              for column, kind in CARRIED.items()]))
    return records.select(*keep, ids.alias("_id")).where(F.col("_id.id_value").isNotNull()) \
        .select(*keep, "_id.id_kind", "_id.id_value")


def owners(recs: DataFrame) -> DataFrame:
    """(id_kind, id_value, group): each carried identifier goes to the group of the newest
    record carrying it (then the smallest record key); ``recs``: records with their group.
    One aggregate for every kind."""
    newest = F.struct(F.col("created_at").isNull().alias("undated"),  # nulls last
                      (F.lit(0) - F.unix_micros("created_at")).alias("age"), F.col("record_key"))
    return carried(recs.withColumn("_order", newest), "group", "_order") \
        .groupBy("id_kind", "id_value").agg(F.min_by("group", "_order").alias("group"))


def anchors(recs: DataFrame, owned: DataFrame, emails: DataFrame,
            accounts: DataFrame) -> DataFrame:
    """(id_kind, id_value, group) for every anchor identifier: records, the emails and account
    ids they carry (``owned``: see owners), and those seen only in orders, email events or
    consents (``emails`` / ``accounts``: one column ``id_value``), each a group of its own."""
    by_record = recs.select(F.lit(RECORD).alias("id_kind"), F.col("record_key").alias("id_value"),
                            "group")
    pair = ["id_kind", "id_value"]
    seen = emails.select(F.lit(EMAIL).alias("id_kind"), "id_value").unionByName(
        accounts.select(F.lit(ACCOUNT).alias("id_kind"), "id_value")) \
        .where(F.col("id_value").isNotNull()).distinct()
    orphans = seen.join(owned.select(*pair), pair, "left_anti") \
        .withColumn("group", F.concat("id_kind", F.lit(":"), "id_value"))
    return by_record.unionByName(owned.where(F.col("id_kind") != PHONE)).unionByName(orphans)


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
    (see anchors) and phones (the key of their owner's group), keyed (see assign_keys);
    materialised.

    ``records``: record_key, created_at and the CARRIED columns; ``clusters``: record_key,
    group."""
    recs = records.join(clusters, "record_key")
    # not cached (nothing would release it): the phones derive it again, as a checkpoint's
    # unknown size draws Spark's runtime bloom filter, whose generated code fails to compile
    owned = owners(recs)
    # materialised once: every reader below and the client rows read it, and its keys come
    # from a pandas UDF
    keyed = assign_keys(anchors(recs, owned, emails, accounts), previous, key).localCheckpoint()
    groups = keyed.where(F.col("id_kind") == RECORD).select("group", "customer_key").distinct()
    phones = owned.where(F.col("id_kind") == PHONE).join(groups, "group")
    return keyed.select("id_kind", "id_value", "customer_key") \
        .unionByName(phones.select("id_kind", "id_value", "customer_key")) \
        .withColumn("anonymous", F.lit(False)) \
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
