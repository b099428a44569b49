"""Golden records: one row per customer from its CRM records, by survivorship rules in config.

Attributes that belong together survive together (email with its hash, the address with its
postcode and city), so a golden record never mixes two records' halves of one fact.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from seglake.config import IdentityConfig
from seglake.identity.stitching import ACCOUNT, EMAIL, RECORD
from seglake.privacy import with_consent

# attribute (the name survivorship rules use) -> columns that survive with it
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "title": ("title",), "first_name": ("first_name",), "last_name": ("last_name",),
    "email": ("email", "email_hash"), "phone": ("phone", "phone_hash"),
    "birth_date": ("birth_date", "birth_year"), "address": ("address", "postcode", "city"),
    "email_optin": ("email_optin",), "loyalty_points": ("loyalty_points",),
    "loyalty_turnover": ("loyalty_turnover",), "home_store": ("home_store",),
}
PII = ("title", "first_name", "last_name", "email", "phone", "birth_date", "address")
CUSTOMER_COLUMNS = ("customer_key", "profile", "record_count", "systems", "email_hash",
                    "phone_hash", "birth_year", "postcode", "city", "email_optin",
                    "loyalty_points", "loyalty_turnover", "home_store", "first_seen_at",
                    "marketing_consent", "marketing_consent_at")
PII_COLUMNS = ("customer_key", "title", "first_name", "last_name", "email", "phone",
               "birth_date", "address", "postcode", "city")


def _order(rule: str, lead: str, config: IdentityConfig) -> list[Column]:
    # max_by takes the largest: later records, then the larger record key, win
    recent = [F.coalesce("created_at", F.lit(0).cast("timestamp")), F.col("record_key")]
    if rule == "source_priority":
        rank = F.array_position(F.array(*[F.lit(s) for s in config.source_priority]),
                                F.col("system"))
        # unlisted systems (position 0) come last
        return [F.when(rank == 0, -1_000_000).otherwise(-rank), *recent]
    if rule == "most_frequent":
        return [F.count(lead).over(Window.partitionBy("customer_key", lead)), *recent]
    return recent


def check_survivorship(config: IdentityConfig) -> None:
    """Raise ValueError when a survivorship rule names an attribute golden records lack."""
    unknown = sorted(set(config.survivorship) - set(ATTRIBUTES))
    if unknown:
        raise ValueError(f"identity.survivorship names unknown attributes {unknown}; "
                         f"known: {sorted(ATTRIBUTES)}")


def golden(records: DataFrame, config: IdentityConfig) -> DataFrame:
    """One row per customer_key of ``records`` (CRM records with their customer_key, PII
    included): each attribute from the best record that has it."""
    check_survivorship(config)
    rows = records
    picks = []
    for name, columns in ATTRIBUTES.items():
        lead = columns[0]
        rule = config.survivorship.get(name, "most_recent")
        order = _order(rule, lead, config)
        rows = rows.withColumn(f"_o_{name}", F.when(F.col(lead).isNotNull(), F.struct(*order)))
        best = F.max_by(F.struct(*columns), F.col(f"_o_{name}"))
        picks += [best[c].alias(c) for c in columns]
    return rows.groupBy("customer_key").agg(
        *picks, F.count("*").alias("record_count"),
        F.array_sort(F.collect_set("system")).alias("systems"),
        F.min("created_at").alias("first_seen_at"))


def golden_customers(records: DataFrame, identity_map: DataFrame, consents: DataFrame | None,
                     config: IdentityConfig) -> tuple[DataFrame, DataFrame]:
    """(customers, crm): the golden record of every customer of ``identity_map`` (its
    current rows, or those of the customers to make again) in CUSTOMER_COLUMNS, those with CRM
    records by survivorship (``records``: CRM records with their PII), the others from their
    emails or account ids; and the CRM ones with their PII (persisted: both outputs read it)."""
    record_keys = identity_map.where(F.col("id_kind") == RECORD) \
        .select(F.col("id_value").alias("record_key"), "customer_key")
    crm = golden(records.join(record_keys, "record_key"), config) \
        .withColumn("profile", F.lit("crm")).persist()
    email = F.col("id_kind") == EMAIL
    others = identity_map.where(~F.col("anonymous") & F.col("id_kind").isin(
        EMAIL, ACCOUNT)).join(crm.select("customer_key"), "customer_key",
                                           "left_anti") \
        .groupBy("customer_key").agg(
            F.max(F.when(email, F.col("id_value"))).alias("email_hash"),
            F.when(F.max(email.cast("int")) == 1, "email_only").otherwise("account_only")
            .alias("profile"))
    customers = crm.unionByName(others, allowMissingColumns=True) \
        .withColumn("record_count", F.coalesce("record_count", F.lit(0)).cast("bigint"))
    customers = with_consent(customers, consents, identity_map.where(email),
                             config.marketing_purpose)
    return customers.select(*CUSTOMER_COLUMNS), crm
