"""``gold.customer_features`` as one function of its inputs and ``as_of``."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from seglake.behaviour.browsing import browsing
from seglake.behaviour.catalogue import feature_catalogue
from seglake.behaviour.email import email_engagement
from seglake.behaviour.engagement import engagement_score
from seglake.behaviour.funnel import abandoned_carts, funnel_stage
from seglake.behaviour.inputs import (
    Activity,
    Sources,
    activity,
    combined,
    cutoff,
    days_before,
)
from seglake.behaviour.intent import intent, intent_score
from seglake.behaviour.rfm import rfm
from seglake.config import FeaturesConfig
from seglake.privacy import with_consent

FILL = {"zero": 0, "false": False}


def customer_features(sources: Sources, as_of: dt.date, config: FeaturesConfig) -> DataFrame:
    """One row per customer (or anonymous visitor) active or known before ``as_of``, with
    every catalogue feature, computed only from what happened strictly before ``as_of``."""
    return features_of(activity(sources, as_of), config)


FAMILY_INPUT = {"rfm": "orders", "email": "email_events", "browsing": "events",
                "funnel": "events", "intent": "events"}


def features_of(act: Activity, config: FeaturesConfig) -> DataFrame:
    as_of = act.as_of
    consents = act.consents.join(
        act.emails.select(F.col("id_value").alias("subject_hash"), "customer_key"),
        "subject_hash").groupBy("customer_key").agg(F.min("updated_at").alias("_first_consent_at"))
    crm = act.customers.where(F.col("first_seen_at") < cutoff(as_of)) \
        .select("customer_key", F.col("first_seen_at").alias("_crm_first_at"))
    families = [crm, consents, rfm(act.orders, as_of, config),
                email_engagement(act.email_events, as_of, config),
                browsing(act.events, as_of, config),
                abandoned_carts(act.events, act.orders, act.products, as_of, config),
                intent(act.events, as_of, config)]
    # everyone known or active before as_of; the profile of CRM customers who are neither
    # joins no one
    known = [part.withColumn("_known", F.lit(True)) for part in families]
    df = combined([*known, act.customers.select("customer_key", "profile")]) \
        .where(F.col("_known")).drop("_known")
    df = with_consent(df, act.consents, act.emails, config.consent_purpose) \
        .drop("marketing_consent_at")
    catalogue = feature_catalogue(config)
    # a family whose input is not sent at all stays null (unknown), not 0 (none happened)
    unknown = {family for family, source in FAMILY_INPUT.items() if source in act.absent}
    df = df.fillna({f.name: FILL[f.missing] for f in catalogue
                    if f.missing in FILL and f.family not in unknown})
    first_seen = F.least("_crm_first_at", "_first_order_at", "_first_email_at",
                         "_first_event_at", "_first_consent_at")
    last_active = F.greatest("_last_order_at", "_last_event_at", "_last_open_at")
    engaged = F.coalesce(F.col("_browse_engaged"), F.lit(False)) \
        | F.coalesce(F.col("_email_engaged"), F.lit(False))
    df = df.withColumns({
        "as_of": F.lit(as_of), "is_anonymous": F.col("profile").isNull(),
        "profile": F.coalesce("profile", F.lit("anonymous")), "first_seen_at": first_seen,
        "days_since_last_activity": days_before(as_of, last_active),
        "funnel_stage": funnel_stage(F.col("orders_total"), engaged, config.loyal_orders),
        "intent_score": intent_score(config)})
    df = df.withColumns({"tenure_days": days_before(as_of, "first_seen_at"),
                         "cohort_month": F.date_format("first_seen_at", "yyyy-MM"),
                         "engagement_score": engagement_score(config)})
    return df.select(*[F.col(f.name).cast(f.type).alias(f.name) for f in catalogue])
