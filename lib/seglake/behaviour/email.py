"""Email engagement: sends, opens and clicks per campaign, their rates, and deliverability flags."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from seglake.behaviour.inputs import days_before, within
from seglake.config import FeaturesConfig


def _rate(numerator, denominator):
    return F.round(numerator / F.nullif(denominator, F.lit(0)), 4)


def email_engagement(email_events: DataFrame, as_of: dt.date,
                     config: FeaturesConfig) -> DataFrame:
    """One row per customer with email events before ``as_of``. Counted per campaign, so a
    campaign opened five times is one open; a click without a tracked open counts as opened
    (images off)."""
    event = F.col("event")
    ts = F.col("event_ts")
    opened = event.isin("open", "click")
    per_campaign = email_events.where(F.col("customer_key").isNotNull()) \
        .groupBy("customer_key", F.coalesce("campaign_id", "event_id").alias("campaign")).agg(
            F.min(F.when(event == "sent", ts)).alias("sent_at"),
            F.min(F.when(opened, ts)).alias("opened_at"),
            F.min(F.when(event == "click", ts)).alias("clicked_at"),
            F.max(F.when(opened, ts)).alias("last_open_at"),
            F.max(F.when(event == "click", ts)).alias("last_click_at"),
            F.max(event == "bounce").alias("bounced"),
            F.max(event == "unsubscribe").alias("unsubscribed"),
            F.max(event == "complaint").alias("complained"),
            F.min("event_ts").alias("first_at"))
    windowed = []
    for w in sorted(config.windows):
        sent = within(as_of, "sent_at", w)
        n_sent = F.count(F.when(sent, True))
        sent_opened = F.count(F.when(sent & F.col("opened_at").isNotNull(), True))
        sent_clicked = F.count(F.when(sent & F.col("clicked_at").isNotNull(), True))
        windowed += [
            n_sent.alias(f"email_sent_{w}d"),
            F.count(F.when(within(as_of, "opened_at", w), True)).alias(f"email_opened_{w}d"),
            F.count(F.when(within(as_of, "clicked_at", w), True)).alias(f"email_clicked_{w}d"),
            _rate(sent_opened, n_sent).alias(f"email_open_rate_{w}d"),
            _rate(sent_clicked, n_sent).alias(f"email_click_rate_{w}d"),
            _rate(sent_clicked, sent_opened).alias(f"email_click_to_open_{w}d")]
    latest_send = F.struct("sent_at", "campaign")
    return per_campaign.groupBy("customer_key").agg(
        *windowed,
        days_before(as_of, F.max("last_open_at")).alias("days_since_last_open"),
        days_before(as_of, F.max("last_click_at")).alias("days_since_last_click"),
        F.max("unsubscribed").alias("email_unsubscribed"),
        F.coalesce(F.max_by(F.when(F.col("sent_at").isNotNull(), F.col("bounced")),
                            F.when(F.col("sent_at").isNotNull(), latest_send)),
                   F.lit(False)).alias("email_bounced"),
        F.max("complained").alias("email_complained"),
        F.min("first_at").alias("_first_email_at"),
        F.max("last_open_at").alias("_last_open_at"),
        F.max(F.col("opened_at").isNotNull()).alias("_email_engaged"))
