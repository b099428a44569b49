"""The feature catalogue: every column of ``gold.customer_features`` declared once.

The feature reference in docs/, the segment-rule validator and the model pipeline read this
list; a test checks that the table built by ``seglake features`` has exactly these columns and
types. Windowed features exist once per configured window (``sessions_7d``, ``sessions_30d``…).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from seglake.config import FeaturesConfig

Missing = Literal["always", "zero", "null", "false"]
FAMILIES = ("identity", "rfm", "email", "browsing", "funnel", "intent", "engagement")
MISSING_POLICY = {
    "always": "always set (computed for every row)",
    "zero": "0 when there is nothing to count",
    "null": "null when undefined (no order, no send, no visit…); models impute, rules test "
            "`IS NULL`",
    "false": "false when nothing says otherwise",
}
RFM_SEGMENTS = ("Champions", "Loyal", "Potential loyalist", "New", "Promising", "Need attention",
                "About to sleep", "At risk", "Can't lose them", "Hibernating", "Lost")
FUNNEL_STAGES = ("acquisition", "engagement", "conversion", "loyalty")


@dataclass(frozen=True)
class Feature:
    name: str
    type: str            # Spark SQL type of the column
    description: str
    family: str
    window: int | None   # look-back days, None when not windowed
    missing: Missing

    @property
    def numeric(self) -> bool:
        return self.type in ("int", "bigint", "double")


# name template, type, description template, missing; "{w}" marks a windowed feature
_TEMPLATES: dict[str, list[tuple[str, str, str, Missing]]] = {
    "identity": [
        ("customer_key", "string", "Customer key from silver.identity_map (`a_…` for "
         "anonymous visitors).", "always"),
        ("as_of", "date", "Features use only what happened strictly before this date (UTC).",
         "always"),
        ("is_anonymous", "boolean", "A visitor whose cookie or device never logged in.",
         "always"),
        ("profile", "string", "crm, email_only, account_only or anonymous.", "always"),
    ],
    "rfm": [
        ("recency_days", "int", "Days from the last completed order to as_of (1 = the day "
         "before).", "null"),
        ("frequency_{w}d", "bigint", "Completed orders in the last {w} days.", "zero"),
        ("monetary_{w}d", "double", "Net amount of completed orders in the last {w} days "
         "(returned and cancelled orders count 0).", "zero"),
        ("orders_total", "bigint", "Completed orders ever.", "zero"),
        ("monetary_total", "double", "Net amount of completed orders ever.", "zero"),
        ("avg_basket", "double", "Average net amount of a completed order.", "null"),
        ("returned_orders_total", "bigint", "Orders returned, ever.", "zero"),
        ("cancelled_orders_total", "bigint", "Orders cancelled, ever.", "zero"),
        ("coupon_share", "double", "Share of completed orders that used a coupon.", "null"),
        ("r_score", "int", "Recency quintile among buyers, 5 = most recent.", "null"),
        ("f_score", "int", "Quintile of frequency over the RFM window among buyers, 5 = most.",
         "null"),
        ("m_score", "int", "Quintile of monetary over the RFM window among buyers, 5 = most.",
         "null"),
        ("rfm_segment", "string", "Named RFM segment from r_score and the rounded mean of "
         "f_score and m_score (map in docs/features.md); null for customers who never bought.",
         "null"),
    ],
    "email": [
        ("email_sent_{w}d", "bigint", "Campaigns sent in the last {w} days.", "zero"),
        ("email_opened_{w}d", "bigint", "Campaigns first opened (or clicked) in the last {w} "
         "days.", "zero"),
        ("email_clicked_{w}d", "bigint", "Campaigns first clicked in the last {w} days.", "zero"),
        ("email_open_rate_{w}d", "double", "Share of the campaigns sent in the last {w} days "
         "that were opened (a click counts as an open).", "null"),
        ("email_click_rate_{w}d", "double", "Share of the campaigns sent in the last {w} days "
         "that were clicked.", "null"),
        ("email_click_to_open_{w}d", "double", "Clicked / opened among the campaigns sent in "
         "the last {w} days.", "null"),
        ("days_since_last_open", "int", "Days from the last open (or click) to as_of.", "null"),
        ("days_since_last_click", "int", "Days from the last click to as_of.", "null"),
        ("email_unsubscribed", "boolean", "Unsubscribed from an email before as_of.", "false"),
        ("email_bounced", "boolean", "The latest send bounced (the address does not deliver).",
         "false"),
        ("email_complained", "boolean", "Marked an email as spam before as_of.", "false"),
    ],
    "browsing": [
        ("sessions_{w}d", "bigint", "Web and app sessions started in the last {w} days.",
         "zero"),
        ("active_days_{w}d", "bigint", "Days with a session in the last {w} days.", "zero"),
        ("avg_session_seconds_{w}d", "double", "Mean time on page/screen per session, last {w} "
         "days.", "null"),
        ("pages_per_session_{w}d", "double", "Mean events (pages, screens, actions) per "
         "session, last {w} days.", "null"),
        ("product_views_{w}d", "bigint", "Product views in the last {w} days.", "zero"),
        ("distinct_categories_{w}d", "bigint", "Categories browsed in the last {w} days.",
         "zero"),
        ("searches_{w}d", "bigint", "Searches in the last {w} days.", "zero"),
        ("days_since_last_visit", "int", "Days from the last session to as_of.", "null"),
        ("preferred_device", "string", "Device type of most sessions in the profile window "
         "(desktop, mobile, tablet, app).", "null"),
        ("preferred_channel", "string", "web or app, whichever has most sessions in the "
         "profile window.", "null"),
        ("top_category", "string", "Category with most events in the profile window.", "null"),
    ],
    "funnel": [
        ("funnel_stage", "string", "Furthest stage reached: acquisition (known or visited), "
         "engagement (viewed a product, searched, carted, or opened/clicked an email), "
         "conversion (a completed order), loyalty (loyal_orders completed orders).", "always"),
        ("abandoned_carts_{w}d", "bigint", "Carts (sessions with an add to cart) in the last {w} "
         "days not followed by a purchase within cart_abandon_hours; carts younger than that "
         "at as_of are not counted yet.", "zero"),
        ("abandoned_cart_value_{w}d", "double", "Value of those carts at catalogue prices.",
         "zero"),
        ("last_abandoned_cart_at", "timestamp", "Time of the last add to cart of the last "
         "abandoned cart.", "null"),
    ],
    "intent": [
        ("repeat_product_views_{w}d", "bigint", "Products viewed at least twice and never added "
         "to the cart in the last {w} days (weak signal).", "zero"),
        ("long_dwell_views_{w}d", "bigint", "Product views of dwell_seconds or more in the last "
         "{w} days (weak signal).", "zero"),
        ("return_visits_{w}d", "bigint", "Active days after the first in the last {w} days "
         "(weak signal).", "zero"),
        ("add_to_carts_{w}d", "bigint", "Add-to-cart events in the last {w} days (strong "
         "signal).", "zero"),
        ("checkout_starts_{w}d", "bigint", "Checkout starts in the last {w} days (strong "
         "signal).", "zero"),
        ("contact_requests_{w}d", "bigint", "Visits of contact or quote pages in the last {w} "
         "days (strong signal).", "zero"),
        ("intent_score", "double", "0-100: 100 * (1 - exp(-sum(intent_weights * signals) / "
         "intent_scale)) over the signals above.", "always"),
    ],
    "engagement": [
        ("engagement_score", "double", "0-100: 100 * weighted mean of five components in 0..1 "
         "(engagement_weights): recency 0.5^(days since last activity / half-life), purchases "
         "min(frequency / orders target, 1), browsing min(sessions / sessions target, 1), email "
         "open rate, intent intent_score / 100; over the engagement window, a missing "
         "component counts 0.", "always"),
        ("days_since_last_activity", "int", "Days from the last order, session or email "
         "open/click to as_of.", "null"),
        ("first_seen_at", "timestamp", "Earliest CRM sign-up, order, session or email event.",
         "always"),
        ("tenure_days", "int", "Days from first_seen_at to as_of.", "always"),
        ("cohort_month", "string", "Acquisition cohort: month of first_seen_at (YYYY-MM).",
         "always"),
        ("marketing_consent", "boolean", "Latest consent to consent_purpose before as_of, over "
         "all the customer's emails, is granted.", "false"),
    ],
}
_WINDOW_KEY = {"intent": "intent_window_days"}


def feature_catalogue(config: FeaturesConfig) -> list[Feature]:
    """Every feature column for this configuration, in table order."""
    features = []
    for family, templates in _TEMPLATES.items():
        if family in _WINDOW_KEY:
            windows = [getattr(config, _WINDOW_KEY[family])]
        else:
            windows = sorted(config.windows)
        for name, type_, description, missing in templates:
            if "{w}" not in name:
                features.append(Feature(name, type_, description, family, None, missing))
                continue
            for w in windows:
                features.append(Feature(name.format(w=w), type_, description.format(w=w),
                                        family, w, missing))
    return features


def catalogue_markdown(config: FeaturesConfig) -> str:
    """Markdown table of the catalogue (the feature reference in docs/features.md)."""
    rows = ["| feature | type | family | window | when missing | meaning |",
            "|---|---|---|---|---|---|"]
    for f in feature_catalogue(config):
        window = f"{f.window} d" if f.window else ""
        rows.append(f"| `{f.name}` | {f.type} | {f.family} | {window} | {f.missing} | "
                    f"{f.description} |")
    return "\n".join(rows)
