"""Gold customer features: hand-computed expectations on a tiny world, no leakage, catalogue.

The tiny world (as_of 2025-06-01): Alice (CRM, orders, emails, web + app sessions), Bob (known
by email only: one order, two campaigns, a bounce), an anonymous visitor, and Carol, whose CRM
record starts after as_of. Every expected figure below is worked out by hand in the comments.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest
from conftest import expressions
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from seglake.behaviour import Sources, customer_features, end_of_data, feature_catalogue
from seglake.behaviour.catalogue import RFM_SEGMENTS, catalogue_markdown
from seglake.behaviour.cohorts import cohort_retention
from seglake.behaviour.inputs import SCHEMAS, TABLES, TIME_COLUMN
from seglake.behaviour.rfm import RFM_MAP, rfm_map_markdown, rfm_segment
from seglake.config import FeaturesConfig, SeglakeConfig
from seglake.declarations import COHORTS, FEATURES
from seglake.features import FeaturesError, run_features
from seglake.lakehouse import Lakehouse
from seglake.lakehouse.schema import conform

AS_OF = dt.date(2025, 6, 1)


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _ev(eid, source, kind, when, client, session, user, page, product, category, device, dur):
    cookie, device_id = (client, None) if source == "web" else (None, client)
    return (eid, source, kind, ts(when), cookie, device_id, session, user, page, product,
            category, device, dur)


EVENTS = [
    # Alice, session s1 (web, desktop): logs in mid-session; her cart is followed by an order
    # only 25 h later -> abandoned (value: p2 at 25.0)
    _ev("e1", "web", "page_view", "2025-05-30 08:50", "ck_alice", "s1", None, "/c/mode", None,
        "mode", "desktop", 10),
    _ev("e2", "web", "product_view", "2025-05-30 08:55", "ck_alice", "s1", None, "/p/p1", "p1",
        "mode", "desktop", 90),
    _ev("e3", "web", "product_view", "2025-05-30 08:58", "ck_alice", "s1", "u_alice", "/p/p1",
        "p1", "mode", "desktop", 20),
    _ev("e4", "web", "add_to_cart", "2025-05-30 09:00", "ck_alice", "s1", "u_alice", "/p/p2",
        "p2", "mode", "desktop", 5),
    # Alice, session s2: cart, checkout, purchase -> not abandoned
    _ev("e5", "web", "product_view", "2025-05-20 09:00", "ck_alice", "s2", "u_alice", "/p/p3",
        "p3", "maison", "desktop", 30),
    _ev("e6", "web", "add_to_cart", "2025-05-20 09:05", "ck_alice", "s2", "u_alice", "/p/p3",
        "p3", "maison", "desktop", 5),
    _ev("e7", "web", "checkout_start", "2025-05-20 09:20", "ck_alice", "s2", "u_alice",
        "/commande", None, None, "desktop", 60),
    _ev("e8", "web", "purchase", "2025-05-20 09:25", "ck_alice", "s2", "u_alice",
        "/commande/confirmation", None, None, "desktop", 5),
    # Alice, app session s3: a cart 4 h before as_of is still open -> not counted as abandoned
    _ev("e9", "app", "add_to_cart", "2025-05-31 20:00", "dv_alice", "s3", None, "product", "p2",
        "mode", "app", 5),
    # after as_of: must change nothing
    _ev("e10", "web", "product_view", "2025-06-01 08:00", "ck_alice", "s4", None, "/p/p1", "p1",
        "mode", "desktop", 300),
    # an anonymous visitor (mobile web), 7 days before as_of
    _ev("n1", "web", "search", "2025-05-25 10:00", "ck_anon", "a1", None, "/recherche?q=robe",
        None, None, "mobile", 10),
    _ev("n2", "web", "product_view", "2025-05-25 10:01", "ck_anon", "a1", None, "/p/p1", "p1",
        "mode", "mobile", 70),
    _ev("n3", "web", "product_view", "2025-05-25 10:03", "ck_anon", "a1", None, "/p/p1", "p1",
        "mode", "mobile", 65),
    _ev("n4", "web", "page_view", "2025-05-25 10:05", "ck_anon", "a1", None, "/contact", None,
        None, "mobile", 20),
]
ORDERS = [  # order_id, email hash, account, ordered_at, status, net, coupon
    ("o1", "e_alice", None, ts("2025-05-31 10:00"), "completed", 100.0, None),
    ("o2", None, "u_alice", ts("2025-05-20 09:25"), "completed", 50.0, "WELCOME"),
    ("o3", "e_alice", None, ts("2025-03-01 12:00"), "returned", 80.0, None),
    ("o4", "e_alice", None, ts("2025-01-10 12:00"), "cancelled", 20.0, None),
    ("o5", "e_alice", None, ts("2024-04-01 12:00"), "completed", 30.0, None),
    ("o6", "e_alice", None, ts("2025-06-01 00:00"), "completed", 999.0, None),  # at as_of
    ("b1", "e_bob", None, ts("2025-02-01 12:00"), "completed", 40.0, None),
]
EMAILS = [  # event_id, campaign, email hash, event, time
    ("m1", "c1", "e_alice", "sent", ts("2025-05-28 07:00")),
    ("m2", "c1", "e_alice", "open", ts("2025-05-28 08:00")),
    ("m3", "c1", "e_alice", "click", ts("2025-05-29 08:00")),
    ("m4", "c2", "e_alice", "sent", ts("2025-05-10 07:00")),
    ("m5", "c3", "e_alice", "sent", ts("2025-04-01 07:00")),
    ("m6", "c3", "e_alice", "click", ts("2025-04-02 07:00")),  # click without open: opened
    ("m7", "c4", "e_alice", "sent", ts("2025-06-01 01:00")),  # after as_of
    ("m8", "c4", "e_alice", "open", ts("2025-06-02 01:00")),
    ("m9", "b0", "e_bob", "sent", ts("2025-05-01 07:00")),
    ("m10", "b0", "e_bob", "open", ts("2025-05-01 09:00")),
    ("m11", "b0", "e_bob", "unsubscribe", ts("2025-05-01 09:01")),
    ("m12", "b1", "e_bob", "sent", ts("2025-05-30 07:00")),
    ("m13", "b1", "e_bob", "bounce", ts("2025-05-30 07:01")),
]
CONSENTS = [
    ("e_alice", "marketing_email", "granted", ts("2024-01-15 08:00")),
    ("e_alice", "marketing_email", "withdrawn", ts("2025-06-01 05:00")),  # after as_of
    ("e_bob", "marketing_email", "granted", ts("2025-01-01 12:00")),
    ("e_bob", "marketing_email", "withdrawn", ts("2025-05-01 09:01")),
]
PRODUCTS = [("p1", 20.0), ("p2", 25.0), ("p3", 50.0)]
CUSTOMERS = [("c_alice", "crm", ts("2024-01-15 09:00")), ("c_bob", "email_only", None),
             ("c_carol", "crm", ts("2025-07-01 09:00"))]
MAP = [(kind, value, key, None, None) for kind, value, key in (  # valid from the start
    ("email_hash", "e_alice", "c_alice"), ("customer_id", "u_alice", "c_alice"),
    ("client_id", "ck_alice", "c_alice"), ("client_id", "dv_alice", "c_alice"),
    ("email_hash", "e_bob", "c_bob"), ("client_id", "ck_anon", "a_anon"))]
TINY = {"events": EVENTS, "orders": ORDERS, "email_events": EMAILS, "consents": CONSENTS,
        "products": PRODUCTS, "customers": CUSTOMERS, "identity_map": MAP}


def tiny_sources(spark, extra: dict[str, list] | None = None) -> Sources:
    extra = extra or {}
    return Sources.of(spark, {name: spark.createDataFrame(rows + extra.get(name, []),
                                                          SCHEMAS[name])
                              for name, rows in TINY.items()})


@pytest.fixture(scope="module")
def tiny(spark) -> dict[str, dict]:
    rows = customer_features(tiny_sources(spark), AS_OF, FeaturesConfig()).collect()
    return {r["customer_key"]: r.asDict() for r in rows}


def test_population_and_identity_columns(tiny):
    # Carol's record starts after as_of and she did nothing before: not there yet
    assert set(tiny) == {"c_alice", "c_bob", "a_anon"}
    assert {k: (r["profile"], r["is_anonymous"]) for k, r in tiny.items()} == {
        "c_alice": ("crm", False), "c_bob": ("email_only", False),
        "a_anon": ("anonymous", True)}
    assert all(r["as_of"] == AS_OF for r in tiny.values())


def test_rfm(tiny):
    a, b, n = tiny["c_alice"], tiny["c_bob"], tiny["a_anon"]
    # completed before as_of: o1 (1 day before), o2 (12 days), o5 (426 days); o6 is at as_of
    assert a["recency_days"] == 1
    assert [a[f"frequency_{w}d"] for w in (7, 30, 90, 365)] == [1, 2, 2, 2]
    assert [a[f"monetary_{w}d"] for w in (7, 30, 90, 365)] == [100.0, 150.0, 150.0, 150.0]
    assert (a["orders_total"], a["monetary_total"], a["avg_basket"]) == (3, 180.0, 60.0)
    assert (a["returned_orders_total"], a["cancelled_orders_total"]) == (1, 1)
    assert a["coupon_share"] == pytest.approx(1 / 3)
    assert (b["recency_days"], b["frequency_365d"], b["monetary_365d"]) == (120, 1, 40.0)
    # two buyers: cut points at the 20/40/60/80 % quantiles are [1, 1, 120, 120] (recency),
    # [1, 1, 2, 2] (frequency), [40, 40, 150, 150] (monetary)
    assert (a["r_score"], a["f_score"], a["m_score"]) == (5, 3, 3)
    assert (b["r_score"], b["f_score"], b["m_score"]) == (3, 1, 1)
    assert a["rfm_segment"] == "Potential loyalist"  # R 5, FM round((3 + 3) / 2) = 3
    assert b["rfm_segment"] == "About to sleep"      # R 3, FM 1
    assert n["r_score"] is None and n["rfm_segment"] is None and n["orders_total"] == 0
    assert n["monetary_365d"] == 0.0 and n["recency_days"] is None


@pytest.mark.parametrize("compiled", [False, True])
def test_rfm_map_covers_the_classic_corners(spark, compiled):
    """In the suite's interpreted mode and in Spark's default generated code, which once put a
    customer without completed orders (no scores) among the Champions."""
    cases = [(5, 5, 5, "Champions"), (1, 1, 1, "Lost"), (1, 5, 5, "Can't lose them"),
             (5, 1, 1, "New"), (4, 1, 1, "Promising"), (3, 3, 3, "Need attention"),
             (2, 1, 2, "Hibernating"), (2, 4, 4, "At risk"), (3, 4, 5, "Loyal"),
             (None, None, None, None), (5, None, None, None)]
    df = spark.createDataFrame([c[:3] for c in cases], "r INT, f INT, m INT")
    with expressions(spark, compiled):
        got = [r[0] for r in df.select(rfm_segment(F.col("r"), F.col("f"), F.col("m")))
               .collect()]
    assert got == [c[3] for c in cases]
    assert {name for row in RFM_MAP.values() for name in row} == set(RFM_SEGMENTS)


def test_email_engagement(tiny):
    a, b, n = tiny["c_alice"], tiny["c_bob"], tiny["a_anon"]
    # Alice: c1 sent 4 days before (opened, clicked), c2 22 days (nothing), c3 61 days
    # (clicked without an open: counts as opened), c4 after as_of
    assert [a[f"email_sent_{w}d"] for w in (7, 30, 90, 365)] == [1, 2, 3, 3]
    assert [a[f"email_opened_{w}d"] for w in (7, 30, 90)] == [1, 1, 2]
    assert [a[f"email_clicked_{w}d"] for w in (7, 30, 90)] == [1, 1, 2]
    assert [a[f"email_open_rate_{w}d"] for w in (7, 30, 90)] == [1.0, 0.5, 0.6667]
    assert [a[f"email_click_rate_{w}d"] for w in (7, 30, 90)] == [1.0, 0.5, 0.6667]
    assert a["email_click_to_open_90d"] == 1.0
    assert (a["days_since_last_open"], a["days_since_last_click"]) == (3, 3)
    assert not (a["email_unsubscribed"] or a["email_bounced"] or a["email_complained"])
    # Bob: b0 31 days before (opened, unsubscribed), b1 2 days before (bounced)
    assert [b[f"email_sent_{w}d"] for w in (7, 30, 90)] == [1, 1, 2]
    assert (b["email_open_rate_30d"], b["email_open_rate_90d"]) == (0.0, 0.5)
    assert b["email_click_to_open_30d"] is None and b["email_click_to_open_90d"] == 0.0
    assert b["email_unsubscribed"] and b["email_bounced"] and not b["email_complained"]
    assert b["days_since_last_click"] is None and b["days_since_last_open"] == 31
    assert n["email_sent_365d"] == 0 and n["email_open_rate_365d"] is None


def test_browsing(tiny):
    a, b, n = tiny["c_alice"], tiny["c_bob"], tiny["a_anon"]
    # sessions s1 (May 30), s3 (May 31, app), s2 (May 20); e10 is after as_of
    assert [a[f"sessions_{w}d"] for w in (7, 30)] == [2, 3]
    assert [a[f"active_days_{w}d"] for w in (7, 30)] == [2, 3]
    assert a["avg_session_seconds_7d"] == 65.0           # (125 + 5) / 2
    assert a["avg_session_seconds_30d"] == 76.7          # (125 + 5 + 100) / 3
    assert (a["pages_per_session_7d"], a["pages_per_session_30d"]) == (2.5, 3.0)
    assert (a["product_views_7d"], a["product_views_30d"]) == (2, 3)
    assert (a["distinct_categories_7d"], a["distinct_categories_30d"]) == (1, 2)
    assert (a["searches_30d"], a["days_since_last_visit"]) == (0, 1)
    assert (a["preferred_device"], a["preferred_channel"], a["top_category"]) == \
        ("desktop", "web", "mode")
    assert (n["sessions_7d"], n["product_views_7d"], n["searches_7d"]) == (1, 2, 1)
    assert (n["preferred_device"], n["days_since_last_visit"]) == ("mobile", 7)
    # Bob has no events: counts are 0, averages and preferences null
    assert (b["sessions_365d"], b["product_views_365d"]) == (0, 0)
    assert b["avg_session_seconds_365d"] is None and b["preferred_device"] is None


def test_funnel_and_cart_abandonment(tiny):
    a, b, n = tiny["c_alice"], tiny["c_bob"], tiny["a_anon"]
    assert (a["funnel_stage"], b["funnel_stage"], n["funnel_stage"]) == \
        ("loyalty", "conversion", "engagement")
    # s1's cart (May 30 09:00) had no purchase within 24 h (o1 came 25 h later); s2's was
    # bought; s3's is younger than 24 h at as_of
    assert [a[f"abandoned_carts_{w}d"] for w in (7, 30)] == [1, 1]
    assert a["abandoned_cart_value_7d"] == 25.0
    assert a["last_abandoned_cart_at"] == ts("2025-05-30 09:00")
    assert n["abandoned_carts_365d"] == 0 and n["last_abandoned_cart_at"] is None


def test_intent(tiny):
    a, n = tiny["c_alice"], tiny["a_anon"]
    # Alice, last 30 days: p1 viewed twice never carted; one view of 90 s; 3 active days;
    # 3 adds; 1 checkout start
    assert [a[c] for c in ("repeat_product_views_30d", "long_dwell_views_30d",
                           "return_visits_30d", "add_to_carts_30d", "checkout_starts_30d",
                           "contact_requests_30d")] == [1, 1, 2, 3, 1, 0]
    assert a["intent_score"] == pytest.approx(100 * (1 - math.exp(-16.5 / 10)), abs=0.01)
    # the visitor: p1 twice (70 s and 65 s), a contact page, one day
    assert [n[c] for c in ("repeat_product_views_30d", "long_dwell_views_30d",
                           "return_visits_30d", "contact_requests_30d")] == [1, 2, 0, 1]
    assert n["intent_score"] == pytest.approx(100 * (1 - math.exp(-6.0 / 10)), abs=0.01)
    assert tiny["c_bob"]["intent_score"] == 0.0


def test_engagement_tenure_cohort_consent(tiny):
    a, b, n = tiny["c_alice"], tiny["c_bob"], tiny["a_anon"]
    assert a["days_since_last_activity"] == 1
    expected = 100 * (0.30 * 0.5 ** (1 / 30) + 0.25 * 2 / 3 + 0.20 * 3 / 12
                      + 0.15 * 0.6667 + 0.10 * a["intent_score"] / 100)
    assert a["engagement_score"] == pytest.approx(expected, abs=0.01)
    # first seen: Alice's consent (an hour before her CRM record), Bob's consent on Jan 1st
    assert (a["first_seen_at"], a["tenure_days"], a["cohort_month"]) == \
        (ts("2024-01-15 08:00"), 503, "2024-01")
    assert (b["tenure_days"], b["cohort_month"]) == (151, "2025-01")
    assert (n["cohort_month"], n["tenure_days"]) == ("2025-05", 7)
    # Alice withdrew after as_of: still consenting then; Bob withdrew before; the visitor never
    assert (a["marketing_consent"], b["marketing_consent"], n["marketing_consent"]) == \
        (True, False, False)
    assert 0 <= n["engagement_score"] <= 100 and 0 <= b["engagement_score"] < a[
        "engagement_score"]


def test_nothing_after_as_of_changes_a_feature(spark, tiny):
    """Rows at or after as_of — new events, orders, emails, consents for known and new ids —
    change no value and add no row."""
    later = {
        "events": [_ev("x1", "web", "add_to_cart", "2025-06-01 00:00", "ck_alice", "s9",
                       "u_alice", "/p/p1", "p1", "mode", "desktop", 80),
                   _ev("x2", "web", "page_view", "2025-06-03 00:00", "ck_new", "s10", None,
                       "/contact", None, None, "tablet", 5)],
        "orders": [("x3", "e_bob", None, ts("2025-06-01 00:00"), "completed", 70.0, "X")],
        "email_events": [("x4", "b2", "e_bob", "sent", ts("2025-06-05 00:00")),
                         ("x5", "b0", "e_bob", "click", ts("2025-06-05 01:00"))],
        "consents": [("e_bob", "marketing_email", "granted", ts("2025-06-01 00:00"))],
    }
    rows = customer_features(tiny_sources(spark, later), AS_OF, FeaturesConfig()).collect()
    assert {r["customer_key"]: r.asDict() for r in rows} == tiny


def test_a_cookie_counts_for_its_customer_only_from_its_first_login_on(spark, tiny):
    """The identity map as of as_of: a cookie whose first login as Alice came after as_of was
    an anonymous visitor then; one that logged in before counts for Alice, earlier visits
    included."""
    def visit(eid: str, client: str, product: str) -> tuple:
        return _ev(eid, "web", "product_view", "2025-05-29 10:00", client, eid, None,
                   f"/p/{product}", product, "mode", "tablet", 40)

    extra = {"events": [visit("l1", "ck_late", "p1"), visit("l2", "ck_late", "p3"),
                        visit("k1", "ck_known", "p3")],
             "identity_map": [  # first logins after as_of, and the day after the visit
                 ("client_id", "ck_late", "a_late", None, ts("2025-06-03 09:00")),
                 ("client_id", "ck_late", "c_alice", ts("2025-06-03 09:00"), None),
                 ("client_id", "ck_known", "a_known", None, ts("2025-05-30 09:00")),
                 ("client_id", "ck_known", "c_alice", ts("2025-05-30 09:00"), None)]}
    rows = customer_features(tiny_sources(spark, extra), AS_OF, FeaturesConfig()).collect()
    out = {r["customer_key"]: r.asDict() for r in rows}
    assert (out["a_late"]["sessions_7d"], out["a_late"]["product_views_7d"]) == (2, 2)
    assert "a_known" not in out
    assert out["c_alice"]["product_views_7d"] == tiny["c_alice"]["product_views_7d"] + 1
    assert out["c_alice"]["sessions_7d"] == tiny["c_alice"]["sessions_7d"] + 1


def test_a_shared_cookie_visit_counts_for_whoever_logged_in_last_before_it(spark, tiny):
    """A family computer: Alice logs in on May 20, Bob on May 27, Alice's visit before any
    login and her visit on May 26 are hers, Bob's on May 29 his; a login after as_of (Alice
    again, June 3) changes nothing yet."""
    def visit(eid: str, when: str) -> tuple:
        return _ev(eid, "web", "product_view", when, "ck_home", eid, None, "/p/p1", "p1",
                   "mode", "desktop", 30)

    extra = {"events": [visit("h1", "2025-05-12 10:00"), visit("h2", "2025-05-26 10:00"),
                        visit("h3", "2025-05-29 10:00")],
             "identity_map": [
                 ("client_id", "ck_home", "a_home", None, ts("2025-05-20 09:00")),
                 ("client_id", "ck_home", "c_alice", ts("2025-05-20 09:00"),
                  ts("2025-05-27 09:00")),
                 ("client_id", "ck_home", "c_bob", ts("2025-05-27 09:00"), ts("2025-06-03 09:00")),
                 ("client_id", "ck_home", "c_alice", ts("2025-06-03 09:00"), None)]}
    rows = customer_features(tiny_sources(spark, extra), AS_OF, FeaturesConfig()).collect()
    out = {r["customer_key"]: r.asDict() for r in rows}
    assert "a_home" not in out
    added = {k: out[k]["product_views_30d"] - tiny[k]["product_views_30d"]
             for k in ("c_alice", "c_bob")}
    assert added == {"c_alice": 2, "c_bob": 1}
    assert out["c_bob"]["product_views_7d"] == tiny["c_bob"]["product_views_7d"] + 1


def test_catalogue_matches_the_table(spark, tiny):
    config = FeaturesConfig(windows=[14, 60], rfm_window_days=60, profile_window_days=60,
                            intent_window_days=14, engagement_window_days=60)
    df = customer_features(tiny_sources(spark), AS_OF, config).persist()
    catalogue = feature_catalogue(config)
    assert [(f.name, f.type) for f in catalogue] == \
        [(s.name, s.dataType.simpleString()) for s in df.schema.fields]
    assert "sessions_14d" in df.columns and "sessions_7d" not in df.columns
    names = [f.name for f in catalogue]
    assert len(names) == len(set(names))
    # the missing-value policy holds: "zero", "false" and "always" features are never null
    never_null = [f.name for f in catalogue if f.missing != "null"]
    nulls = df.agg(*[F.count(F.when(F.col(c).isNull(), True)).alias(c)
                     for c in never_null]).first().asDict()
    assert {c: n for c, n in nulls.items() if n} == {}
    df.unpersist()
    # the default catalogue is the feature reference in docs/
    readme = (Path(__file__).parent.parent / "docs" / "features.md").read_text(encoding="utf-8")
    assert catalogue_markdown(FeaturesConfig()) in readme
    assert rfm_map_markdown() in readme


def test_end_of_data_is_the_day_after_the_latest_activity(spark):
    assert end_of_data(tiny_sources(spark)) == dt.date(2025, 6, 3)  # Alice opened c4 on June 2


def test_window_config_is_validated():
    with pytest.raises(ValueError, match="intent_window_days"):
        SeglakeConfig.model_validate({"features": {"windows": [7, 90, 365]}})
    with pytest.raises(ValueError, match="intent_weights: unknown"):
        FeaturesConfig(intent_weights={"wishlist": 1.0})


# ------------------------------------------------------------------------------ the stage

def _tiny_lakehouse(spark, root: Path) -> SeglakeConfig:
    config = SeglakeConfig.model_validate({"lakehouse": {"root": str(root / "lakehouse")},
                                           "reports": {"root": str(root / "reports")}})
    lake = Lakehouse.from_config(spark, config)
    for name, rows in TINY.items():  # the declared tables, with only what features read filled
        table = lake.registry[TABLES[name]]
        lake.append(table.name, conform(spark.createDataFrame(rows, SCHEMAS[name]),
                                        StructType.fromDDL(table.ddl), table.name))
    return config


def test_stage_needs_resolve_and_reruns_without_duplicating(spark, tmp_path, tiny):
    empty = SeglakeConfig.model_validate({"lakehouse": {"root": str(tmp_path / "none")}})
    with pytest.raises(FeaturesError, match="seglake resolve"):
        run_features(spark, empty)
    config = _tiny_lakehouse(spark, tmp_path)
    first = run_features(spark, config, as_of=AS_OF)
    lake = Lakehouse.from_config(spark, config)
    table = lake.read(FEATURES)
    assert (first.rows, first.customers, first.anonymous) == (3, 2, 1)
    assert {r["customer_key"]: r.asDict() for r in table.collect()} == tiny
    second = run_features(spark, config, as_of=AS_OF)
    assert second.rows == 3 and lake.read(FEATURES).count() == 3
    log = lake.read("ops.run_log").where(F.col("stage") == "features") \
        .where(F.col("table") == FEATURES).where(F.col("source").isNull()).collect()
    assert [(r["rows_out"], r["status"]) for r in log] == [(3, "ok"), (3, "ok")]
    with pytest.raises(FeaturesError, match="choose a later"):
        run_features(spark, config, as_of=dt.date(2020, 1, 1))


def test_small_world_features(spark, config, featured):
    """On the resolved small world, 30 days before the end of its data: one row per key, every
    customer known by then is there, order totals reconcile with silver, and the stage's rows
    equal the features computed from silver cut at that date (no leakage at stage level)."""
    lake = Lakehouse.from_config(spark, config)
    as_of = featured.as_of
    assert lake.read("silver.events").where(F.col("event_ts") >= F.lit(as_of)).count() > 0
    stored = lake.read(FEATURES).where(F.col("as_of") == as_of).persist()
    assert stored.count() == featured.rows == stored.select("customer_key").distinct().count()
    frames = {name: lake.read(table) for name, table in TABLES.items() if lake.exists(table)}
    cut = {name: df.where(F.col(TIME_COLUMN[name]) < F.lit(as_of).cast("timestamp"))
           if name in TIME_COLUMN else df for name, df in frames.items()}
    recomputed = customer_features(Sources.of(spark, cut), as_of, config.features).persist()
    assert stored.exceptAll(recomputed).count() == 0 and recomputed.exceptAll(stored).count() == 0

    known = {r[0] for r in lake.read("silver.customers")
             .where(F.col("first_seen_at") < F.lit(as_of).cast("timestamp"))
             .select("customer_key").collect()}
    got = {r[0] for r in stored.where(~F.col("is_anonymous")).select("customer_key").collect()}
    assert known <= got
    anonymous = stored.where("is_anonymous")
    assert anonymous.count() == featured.anonymous > 0
    assert anonymous.where(~F.col("customer_key").startswith("a_")
                           | (F.col("orders_total") > 0)).count() == 0
    assert featured.unkeyed == {"events": 0, "orders": 0, "email_events": 0}
    completed = cut["orders"].where("status = 'completed'").agg(F.sum("net_amount")).first()[0]
    assert stored.agg(F.sum("monetary_total")).first()[0] == pytest.approx(completed, abs=0.05)
    # the RFM map names every buyer, and all eleven names occur on the small world
    assert stored.where("orders_total > 0 AND rfm_segment IS NULL").count() == 0
    assert {r[0] for r in stored.select("rfm_segment").distinct().collect()} - {None} \
        == set(RFM_SEGMENTS)
    stored.unpersist()
    recomputed.unpersist()


def test_cohort_retention_matches_a_hand_computation(spark):
    """Three customers: a joins in January and buys again in March (and has a cancelled order
    in February); b joins in January only; c joins in February and buys in February twice.
    The month of as_of (March 10) is still running."""
    rows = [("a", "2025-01-05 10:00:00", "completed", 10.0),
            ("a", "2025-02-03 10:00:00", "cancelled", 99.0),
            ("a", "2025-03-02 10:00:00", "completed", 30.0),
            ("b", "2025-01-20 10:00:00", "completed", 20.0),
            ("c", "2025-02-01 10:00:00", "completed", 5.0),
            ("c", "2025-02-27 10:00:00", "completed", 7.0),
            (None, "2025-01-09 10:00:00", "completed", 50.0)]  # unkeyed: left out
    orders = spark.createDataFrame(rows, "customer_key string, ordered_at string, status string,"
                                         " net_amount double") \
        .withColumn("ordered_at", F.to_timestamp("ordered_at"))
    got = {(str(r["cohort_month"]), r["months_since"]): r.asDict() for r in
           cohort_retention(orders, dt.date(2025, 3, 10)).collect()}
    assert set(got) == {("2025-01-01", 0), ("2025-01-01", 2), ("2025-02-01", 0)}
    jan0, jan2, feb0 = got[("2025-01-01", 0)], got[("2025-01-01", 2)], got[("2025-02-01", 0)]
    assert (jan0["cohort_customers"], jan0["active_customers"], jan0["revenue"]) == (2, 2, 30.0)
    assert (jan2["active_customers"], jan2["active_share"], jan2["revenue"],
            jan2["revenue_per_customer"]) == (1, 0.5, 30.0, 15.0)
    assert (feb0["cohort_customers"], feb0["active_customers"], feb0["revenue"]) == (1, 1, 12.0)
    assert jan0["month_complete"] and feb0["month_complete"] and not jan2["month_complete"]


def test_cohort_retention_of_the_small_world_reconciles_with_silver(spark, config, featured):
    lake = Lakehouse.from_config(spark, config)
    as_of = featured.as_of
    cohorts = lake.read(COHORTS).where(F.col("as_of") == as_of).persist()
    # every completed order before as_of of a known customer is in one cohort cell
    completed = lake.read("silver.orders").where(
        (F.col("status") == "completed") & (F.col("ordered_at") < F.lit(as_of).cast("timestamp")))
    assert cohorts.agg(F.sum("revenue")).first()[0] == pytest.approx(
        completed.agg(F.sum("net_amount")).first()[0], abs=0.5)
    # month 0 holds the whole cohort; the cohorts add up to the buyers among the features
    first = cohorts.where("months_since = 0")
    assert first.where("active_customers != cohort_customers").count() == 0
    buyers = lake.read(FEATURES).where((F.col("as_of") == as_of) & (F.col("orders_total") > 0))
    assert first.agg(F.sum("cohort_customers")).first()[0] == buyers.count()
    assert cohorts.where("active_customers > cohort_customers OR months_since < 0").count() == 0
    cohorts.unpersist()
