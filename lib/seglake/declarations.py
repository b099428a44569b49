"""Every silver, gold and ops table seglake writes, declared once (bronze: from the sources).

A new table is one ``Table(...)`` here plus the code that computes it: erasure, quality suites,
write-time checks, partitioning, docs and the report take it from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seglake.tables import LINEAGE, Column, Table, columns, expect

if TYPE_CHECKING:
    from seglake.config import SeglakeConfig

# every table's name, for the stages that read or write it
EVENTS = "silver.events"
ORDERS = "silver.orders"
ORDER_LINES = "silver.order_lines"
EMAIL_EVENTS = "silver.email_events"
CUSTOMERS_RAW = "silver.customers_raw"
CUSTOMERS_RAW_PII = "silver.customers_raw_pii"
CONSENTS = "silver.consents"
PRODUCTS = "silver.products"
QUARANTINE = "silver.quarantine"
IDENTITY_MAP = "silver.identity_map"
CUSTOMERS = "silver.customers"
CUSTOMERS_PII = "silver.customers_pii"
MERGES = "silver.identity_merges"
LINKS = "silver.identity_links"
RECORD_STATE = "silver.identity_records"
FORMS = "silver.identity_forms"
FEATURES = "gold.customer_features"
COHORTS = "gold.cohort_retention"
FLAGS = "gold.customer_flags"
RULE_SEGMENTS = "gold.rule_segments"
CLUSTERS = "gold.customer_clusters"
PROFILES = "gold.cluster_profiles"
SCORES = "gold.customer_scores"
RECOMMENDATIONS = "gold.customer_recommendations"
CUSTOMER_SEGMENTS = "gold.customer_segments"
MEMBERSHIP = "gold.segment_membership"
CHANGES = "gold.segment_changes"
SUMMARY = "gold.segment_summary"
ASSIGNMENTS = "gold.segment_assignments"
LIFT = "gold.segment_lift"
UPLIFT = "gold.customer_uplift"
RUN_LOG = "ops.run_log"
INGEST_FILES = "ops.ingest_files"
QUALITY_RESULTS = "ops.quality_results"
MODELS = "ops.models"
ERASURE_LOG = "ops.erasure_log"
HEALTHCHECK = "ops.healthcheck"
ALERTS = "ops.alerts"
HASH = r"^[0-9a-f]{64}$"
_LINEAGE = """
_source STRING -- the bronze source the row was refined from
_source_file STRING -- the landing file it arrived in
_batch_id BIGINT -- the ingest batch that loaded it
"""
assert tuple(c.name for c in columns(_LINEAGE)) == LINEAGE
_STAMP = """
as_of DATE NOT NULL -- the point in time (features use what happened strictly before it)
run_id STRING NOT NULL -- the run that wrote the row (ops.run_log)
"""
KEYED = {"customer_key": "customer_key"}
PER_AS_OF = "one partition per as_of; a re-run replaces its date, other dates are kept"


def declared(name: str) -> Table:
    """A fixed table's declaration (its ``ddl`` is the schema rows are created with)."""
    return next(t for t in (*SILVER, *GOLD, *OPS) if t.name == name)


def declared_tables(config: SeglakeConfig) -> list[Table]:
    """The fixed tables; ``gold.customer_features`` columns follow the configured windows."""
    return [*SILVER, *gold(config), *OPS]


SILVER = [
    Table(
        EVENTS, "Web and app events, typed and de-duplicated on event_id.", "refine",
        columns("""
event_id STRING NOT NULL -- the source's event id
source STRING NOT NULL -- web or app
event_type STRING NOT NULL -- page_view, product_view, add_to_cart, search, login, ...
event_ts TIMESTAMP NOT NULL -- when it happened (UTC)
cookie_id STRING -- web visitor cookie
device_id STRING -- app install / device id
session_id STRING -- the source's session id
user_id STRING -- account id when logged in
page STRING -- page path (web) or screen name (app)
product_id STRING -- product viewed or added
category STRING -- product category
search_query STRING -- what was searched
order_id STRING -- order placed by a purchase event
utm_source STRING -- campaign source
utm_medium STRING -- campaign medium
utm_campaign STRING -- campaign name
device_type STRING -- desktop, mobile, tablet or app
os STRING -- app operating system
app_version STRING -- app version
duration_s INT -- seconds spent on the page or screen
""" + _LINEAGE),
        key=("event_id",), pii="pseudonymous",
        subjects={"user_id": "customer_id", "cookie_id": "client_id", "device_id": "client_id"},
        expectations=(expect("in_set", "source", value_set=["web", "app"]),
                      expect("between", "duration_s", min_value=0, max_value=86_400))),
    Table(
        ORDERS, "Orders with amounts computed from their lines; the customer by "
        "keyed email hash or account id.", "refine",
        columns("""
order_id STRING NOT NULL -- the order number
customer_email_hash STRING -- keyed hash of the ordering email (when the reference is an email)
customer_id STRING -- account id (when the reference is not an email)
ordered_at TIMESTAMP NOT NULL -- when it was placed (UTC)
channel STRING -- web, app or store
store_id STRING -- the store of a store order
status STRING NOT NULL -- completed, returned, cancelled, ...
currency STRING -- ISO currency code
items INT -- units over all lines
gross_amount DOUBLE -- sum of quantity x unit price
discount DOUBLE -- discount granted (0 when none)
shipping_fee DOUBLE -- shipping charged (0 when none)
net_amount DOUBLE -- gross amount minus discount
coupon_code STRING -- coupon used
""" + _LINEAGE),
        key=("order_id",), pii="pseudonymous",
        subjects={"customer_email_hash": "email_hash", "customer_id": "customer_id",
                  "order_id": "order_id"},
        expectations=(expect("unique", "order_id"),
                      expect("between", "gross_amount", min_value=0),
                      expect("regex", "customer_email_hash", regex=HASH))),
    Table(
        ORDER_LINES, "One row per order line, numbered from 1.", "refine",
        columns("""
order_id STRING NOT NULL -- the order (silver.orders)
line_no INT NOT NULL -- position in the order, from 1
product_id STRING NOT NULL -- the product (silver.products)
quantity INT -- units
unit_price DOUBLE -- price per unit
amount DOUBLE -- quantity x unit price
ordered_at TIMESTAMP -- the order's time (UTC)
status STRING -- the order's status
""" + _LINEAGE),
        key=("order_id", "line_no"), pii="pseudonymous", subjects={"order_id": "order_id"},
        expectations=(expect("between", "quantity", min_value=1),
                      expect("between", "unit_price", min_value=0))),
    Table(
        EMAIL_EVENTS, "Email platform events (sent, open, click, bounce, ...), the "
        "address as a keyed hash.", "refine",
        columns("""
event_id STRING NOT NULL -- the platform's event id
campaign_id STRING -- the campaign
campaign_name STRING -- its name
email_hash STRING NOT NULL -- keyed hash of the recipient's email
event STRING NOT NULL -- sent, open, click, bounce, unsubscribe, complaint
event_ts TIMESTAMP NOT NULL -- when it happened (UTC)
url STRING -- the link clicked
bounce_type STRING -- hard or soft
""" + _LINEAGE),
        key=("event_id",), pii="pseudonymous", subjects={"email_hash": "email_hash"},
        expectations=(expect("regex", "email_hash", regex=HASH),)),
    Table(
        CUSTOMERS_RAW, "One row per CRM record (e-shop accounts, loyalty cards), "
        "pseudonymous: identifiers as keyed hashes.", "refine",
        columns("""
record_key STRING NOT NULL -- <system>:<source id>
system STRING NOT NULL -- the CRM system (eshop, loyalty)
source_id STRING NOT NULL -- the record's id in its system
email_hash STRING -- keyed hash of the canonical email
phone_hash STRING -- keyed hash of the E.164 phone
birth_year INT -- year of birth
postcode STRING -- postcode
city STRING -- city
created_at TIMESTAMP -- when the record was created (UTC), when the source says
email_optin BOOLEAN -- opted in to email at sign-up (e-shop)
loyalty_points INT -- loyalty points balance
loyalty_turnover DOUBLE -- cumulative loyalty turnover
home_store STRING -- the loyalty member's store
""" + _LINEAGE),
        key=("record_key",), pii="pseudonymous",
        subjects={"email_hash": "email_hash", "source_id": "customer_id"},
        expectations=(expect("unique", "record_key"), expect("regex", "email_hash", regex=HASH),
                      expect("not_null", "email_hash", mostly=0.9))),
    Table(
        CUSTOMERS_RAW_PII, "Restricted: the direct identifiers of each CRM record "
        "(canonical email, E.164 phone).", "refine",
        columns("""
record_key STRING NOT NULL -- <system>:<source id>
system STRING -- the CRM system
source_id STRING -- the record's id in its system
title STRING -- civility
first_name STRING -- first name
last_name STRING -- last name
email STRING -- canonical email
phone STRING -- E.164 phone
birth_date DATE -- date of birth
address STRING -- street address
postcode STRING -- postcode
city STRING -- city
shared_id STRING -- an identifier the systems share (loyalty card, national id), as delivered
""" + _LINEAGE),
        key=("record_key",), pii="direct", subjects={"email": "email", "source_id": "customer_id"},
        retention="until erased; readable by the identity stage only",
        # no value checks on PII: failing values would be copied into results and Data Docs
        expectations=(expect("unique", "record_key"),)),
    Table(
        CONSENTS, "The latest consent status per subject and purpose.", "refine",
        columns("""
subject_hash STRING NOT NULL -- keyed hash of the subject's email
purpose STRING NOT NULL -- marketing_email, marketing_sms, profiling, ...
status STRING NOT NULL -- granted or withdrawn
consent_source STRING -- where it was given or withdrawn
updated_at TIMESTAMP NOT NULL -- when (UTC); the latest wins
consent_id STRING -- the platform's id
""" + _LINEAGE),
        key=("subject_hash", "purpose"), pii="pseudonymous",
        subjects={"subject_hash": "email_hash"},
        expectations=(expect("unique_together", "subject_hash", "purpose"),)),
    Table(
        PRODUCTS, "The product catalogue, latest delivery per product.", "refine",
        columns("""
product_id STRING NOT NULL -- product id
sku STRING -- stock keeping unit
name STRING NOT NULL -- label
category STRING NOT NULL -- category code
category_label STRING -- category label
brand STRING -- brand
price DOUBLE NOT NULL -- price incl. VAT
created_on DATE -- listed since
""" + _LINEAGE),
        key=("product_id",), expectations=(expect("unique", "product_id"),)),
    Table(
        QUARANTINE, "Rows that broke a rule, as delivered, with the rules' names: "
        "bronze rows = silver + quarantine + duplicates.", "refine",
        columns("""
_source STRING NOT NULL -- the bronze source
target_table STRING NOT NULL -- the silver table the row was meant for
rules ARRAY<STRING> NOT NULL -- the rules it broke
raw_record STRING -- the record as delivered (JSON)
subject_hash STRING -- keyed hash of its email, when it had one
_source_file STRING -- the landing file
_batch_id BIGINT -- the ingest batch
quarantined_at TIMESTAMP NOT NULL -- when refine set it aside (UTC)
"""),
        pii="direct", subjects={"subject_hash": "email_hash", "raw_record": "text"},
        retention="until the source fixes the rows, or erasure"),
    Table(
        IDENTITY_MAP, "Every known identifier (CRM record, email hash, account id, "
        "phone hash, cookie, device) to its customer_key, a cookie's or device's per span of "
        "data time.", "resolve",
        columns("""
id_kind STRING NOT NULL -- record_key, email_hash, customer_id, phone_hash or client_id
id_value STRING NOT NULL -- the identifier
customer_key STRING NOT NULL -- the customer it belongs to
anonymous BOOLEAN NOT NULL -- a cookie's or device's own key: before its first login, or ever
run_id STRING NOT NULL -- the resolve run
resolved_at TIMESTAMP NOT NULL -- when (UTC)
valid_from TIMESTAMP -- from when (data time): a cookie's login as the customer; null: always
valid_to TIMESTAMP -- until when (excluded): the next login as another customer; null: still
"""),
        key=("id_kind", "id_value", "valid_from"), pii="pseudonymous",
        subjects={"id_value": "identifier", "customer_key": "customer_key"}),
    Table(
        CUSTOMERS, "One golden record per customer_key (survivorship rules), "
        "pseudonymous.", "resolve",
        columns("""
customer_key STRING NOT NULL -- stable customer key
profile STRING NOT NULL -- crm, email_only or account_only
record_count BIGINT NOT NULL -- CRM records merged into it
systems ARRAY<STRING> -- the CRM systems it is known in
email_hash STRING -- keyed hash of the surviving email
phone_hash STRING -- keyed hash of the surviving phone
birth_year INT -- year of birth
postcode STRING -- postcode
city STRING -- city
email_optin BOOLEAN -- e-shop email opt-in
loyalty_points INT -- loyalty points
loyalty_turnover DOUBLE -- cumulative loyalty turnover
home_store STRING -- home store
first_seen_at TIMESTAMP -- earliest record creation (UTC)
marketing_consent BOOLEAN -- current marketing email consent
marketing_consent_at TIMESTAMP -- when it was last set
run_id STRING NOT NULL -- the resolve run
resolved_at TIMESTAMP NOT NULL -- when (UTC)
"""),
        key=("customer_key",), pii="pseudonymous", subjects=KEYED),
    Table(
        CUSTOMERS_PII, "Restricted: the direct identifiers of each golden record.",
        "resolve",
        columns("""
customer_key STRING NOT NULL -- stable customer key
title STRING -- civility
first_name STRING -- first name
last_name STRING -- last name
email STRING -- canonical email
phone STRING -- E.164 phone
birth_date DATE -- date of birth
address STRING -- street address
postcode STRING -- postcode
city STRING -- city
"""),
        key=("customer_key",), pii="direct", subjects=KEYED,
        retention="until erased; exports read it only with --include-email"),
    Table(
        LINKS, "The identity graph's edges: pairs of CRM records linked at or above the match "
        "threshold, with their evidence (what explains a merge).", "resolve",
        columns("""
record_key_l STRING NOT NULL -- one CRM record
record_key_r STRING NOT NULL -- the other (record_key_l < record_key_r)
match_probability DOUBLE NOT NULL -- the pair's match probability (1: linked outright)
match_weight DOUBLE -- Splink's match weight (null when linked outright)
run_id STRING NOT NULL -- the resolve run
linked_at TIMESTAMP NOT NULL -- when (UTC)
"""),
        key=("record_key_l", "record_key_r"), pii="pseudonymous",
        subjects={"record_key_l": "record_key", "record_key_r": "record_key"}),
    Table(
        RECORD_STATE, "Every CRM record the identity graph holds, with a keyed hash of its "
        "compared values: what the next incremental resolve compares to find new and changed "
        "records.", "resolve",
        columns("""
record_key STRING NOT NULL -- the CRM record
content_hash STRING NOT NULL -- HMAC-SHA256 of its compared values (normalised), hex
run_id STRING NOT NULL -- the resolve run that linked this content
resolved_at TIMESTAMP NOT NULL -- when (UTC)
"""),
        key=("record_key",), pii="pseudonymous", subjects={"record_key": "record_key"},
        expectations=(expect("regex", "content_hash", regex=HASH),)),
    Table(
        FORMS, "Restricted: each CRM record's comparison forms (names folded, phones in E.164, "
        "dates, postcodes as compared), kept so that a resolve normalises only the records "
        "that are new or changed.", "resolve",
        columns("""
record_key STRING NOT NULL -- the CRM record
digest STRING NOT NULL -- SHA-256 of its compared values as delivered and of how they are normalised
content_hash STRING NOT NULL -- HMAC-SHA256 of its comparison forms, hex (see identity_records)
forms STRING NOT NULL -- its comparison forms, JSON
"""),
        key=("record_key",), pii="direct", subjects={"record_key": "record_key"},
        retention="until erased; readable by the identity stage only",
        expectations=(expect("unique", "record_key"), expect("regex", "digest", regex=HASH),
                      expect("regex", "content_hash", regex=HASH))),
    Table(
        MERGES, "Key changes: customers whose identifiers now resolve to another key, and "
        "why (for downstream systems to follow).", "resolve",
        columns("""
old_key STRING NOT NULL -- the key the identifiers left
new_key STRING NOT NULL -- the key that took them
ids_moved BIGINT -- identifiers moved
run_id STRING NOT NULL -- the resolve run
merged_at TIMESTAMP NOT NULL -- when (UTC)
event STRING -- merge (old key retired), login (anonymous key ended), split (to a new key) or move
record_key_l STRING -- a merge's strongest link: one record
record_key_r STRING -- and the other
match_probability DOUBLE -- that link's match probability
"""),
        key=("old_key", "new_key"), pii="pseudonymous",
        subjects={"old_key": "customer_key", "new_key": "customer_key",
                  "record_key_l": "record_key", "record_key_r": "record_key"}),
]


def features_table(config: SeglakeConfig) -> Table:
    """``gold.customer_features``: the columns of the feature catalogue."""
    from seglake.behaviour.catalogue import feature_catalogue

    cols = tuple(Column(f.name, f.type, f.missing != "null", f.description)
                 for f in feature_catalogue(config.features))
    return Table(
        FEATURES, "One row per customer_key and as_of: RFM, email, browsing, "
        "funnel, intent and engagement features, point in time (docs/features.md).",
        "features", cols, key=("customer_key", "as_of"), partition_by=("as_of",),
        pii="pseudonymous", subjects=KEYED, retention=PER_AS_OF)


def gold(config: SeglakeConfig) -> list[Table]:
    return [features_table(config), *GOLD]


COHORT_TABLE = Table(
    COHORTS, "Acquisition cohorts (month of the first completed order) x months since: "
    "customers buying again and their revenue, counts and shares of the cohort, point in time "
    "like the features.", "features",
    columns("""
cohort_month DATE NOT NULL -- month of the cohort's first completed orders
months_since INT NOT NULL -- 0: the first month
cohort_customers BIGINT NOT NULL -- customers of the cohort
active_customers BIGINT NOT NULL -- of them, with a completed order that month
active_share DOUBLE NOT NULL -- active_customers / cohort_customers
revenue DOUBLE -- their net revenue that month
revenue_per_customer DOUBLE -- revenue / cohort_customers
month_complete BOOLEAN NOT NULL -- false for the month of as_of (still running)
""" + _STAMP),
    key=("cohort_month", "months_since", "as_of"), partition_by=("as_of",), retention=PER_AS_OF,
    expectations=(expect("between", "active_share", min_value=0.0, max_value=1.0),))


GOLD = [
    COHORT_TABLE,
    Table(
        FLAGS, "Bots and outlier customers as of a date, with the reason (the signals that "
        "fired, or the order measure that is far out); left out of fitting clusters and "
        "scores, flagged in exports.", "features",
        columns("""
customer_key STRING NOT NULL -- the customer or anonymous visitor
flag STRING NOT NULL -- bot or outlier
reason STRING NOT NULL -- what made the flag, in words with the figures
score DOUBLE NOT NULL -- bot: share of the three signals on; outlier: the highest robust z
""" + _STAMP),
        key=("customer_key", "flag", "as_of"), partition_by=("as_of",), pii="pseudonymous",
        subjects=KEYED, retention=PER_AS_OF,
        expectations=(expect("in_set", "flag", value_set=["bot", "outlier"]),)),
    Table(
        RULE_SEGMENTS, "The exclusive rule segment and the tags of each customer "
        "(conf/segments.yaml).", "segment",
        columns("""
customer_key STRING NOT NULL -- the customer
rule_segment STRING NOT NULL -- the first segment whose rule holds
tags ARRAY<STRING> NOT NULL -- every tag whose rule holds
""" + _STAMP),
        key=("customer_key", "as_of"), partition_by=("as_of",), pii="pseudonymous",
        subjects=KEYED, retention=PER_AS_OF),
    Table(
        CLUSTERS, "K-means cluster and Gaussian-mixture membership of each "
        "customer, with 2-D PCA coordinates.", "segment",
        columns("""
customer_key STRING NOT NULL -- the customer
cluster INT NOT NULL -- stable cluster id
cluster_name STRING -- the cluster's generated name
cluster_probability DOUBLE -- mixture probability of that cluster
probabilities MAP<INT,DOUBLE> NOT NULL -- mixture probability of every cluster
pca_x DOUBLE -- first principal component
pca_y DOUBLE -- second principal component
model_version BIGINT NOT NULL -- the clustering model (ops.models)
""" + _STAMP),
        key=("customer_key", "as_of"), partition_by=("as_of",), pii="pseudonymous",
        subjects=KEYED, retention=PER_AS_OF),
    Table(
        PROFILES, "Size, revenue and mean z-score of every input per "
        "cluster.", "segment",
        columns("""
as_of DATE NOT NULL -- the point in time
cluster INT NOT NULL -- stable cluster id
cluster_name STRING -- generated name
customers BIGINT -- members
share DOUBLE -- share of clustered customers
revenue DOUBLE -- members' 365-day revenue
revenue_share DOUBLE -- share of revenue
z MAP<STRING,DOUBLE> -- mean z-score per clustering input
model_version BIGINT -- the clustering model
run_id STRING -- the segment run
"""),
        key=("as_of", "cluster"), partition_by=("as_of",), retention=PER_AS_OF),
    Table(
        RECOMMENDATIONS, "Next best categories (implicit ALS on customer x category) and the "
        "send hour and weekday of each known customer; published with the exports.", "score",
        columns("""
customer_key STRING NOT NULL -- the customer
categories ARRAY<STRING> NOT NULL -- the recommendations.top_k categories, best first
category_basis STRING NOT NULL -- als, history (not fitted), popular (no interaction) or none
send_hour INT -- local hour (0-23) with most of the customer's opens and visits
send_weekday INT -- local weekday with most of them, 1 = Monday
send_basis STRING -- own, segment (too few of their own: the rule segment's) or everyone
model_version BIGINT NOT NULL -- the recommendation model (ops.models)
""" + _STAMP),
        key=("customer_key", "as_of"), partition_by=("as_of",), pii="pseudonymous",
        subjects=KEYED, retention=PER_AS_OF,
        expectations=(expect("between", "send_hour", min_value=0, max_value=23),
                      expect("between", "send_weekday", min_value=1, max_value=7))),
    Table(
        SCORES, "Purchase propensity and churn: probability, score 0-100 "
        "and tier per customer.", "score",
        columns("""
customer_key STRING NOT NULL -- the customer
propensity_probability DOUBLE -- probability of a completed order within the horizon
propensity_score INT -- 0-100
propensity_tier STRING -- tier by score
propensity_version BIGINT NOT NULL -- the propensity model (ops.models)
churn_probability DOUBLE -- probability of no order within the horizon (past buyers)
churn_score INT -- 0-100
churn_tier STRING -- tier by score
churn_version BIGINT -- the churn model (ops.models)
""" + _STAMP),
        key=("customer_key", "as_of"), partition_by=("as_of",), pii="pseudonymous",
        subjects=KEYED, retention=PER_AS_OF),
    Table(
        CUSTOMER_SEGMENTS, "Current: every customer's segments, cluster, scores and "
        "consent in one row (replaced by each publish).", "publish",
        columns("""
customer_key STRING NOT NULL -- the customer
as_of DATE -- the published point in time
rule_segment STRING -- exclusive rule segment
tags ARRAY<STRING> -- rule tags
is_anonymous BOOLEAN -- an anonymous visitor
rfm_segment STRING -- RFM segment
cluster INT -- cluster id
cluster_name STRING -- cluster name
cluster_probability DOUBLE -- mixture probability of the cluster
propensity_score INT -- 0-100
propensity_tier STRING -- propensity tier
churn_score INT -- 0-100
churn_tier STRING -- churn tier
marketing_consent BOOLEAN NOT NULL -- current marketing consent
run_id STRING NOT NULL -- the publish run
"""),
        key=("customer_key",), pii="pseudonymous", subjects=KEYED,
        retention="latest publish only (history in gold.segment_membership)"),
    Table(
        MEMBERSHIP, "Membership history: one row per customer, kind and "
        "segment for every published as_of.", "publish",
        columns("""
customer_key STRING NOT NULL -- the customer
kind STRING NOT NULL -- rule, rfm, cluster, propensity_tier, churn_tier or tag
segment STRING -- the segment of that kind
""" + _STAMP),
        partition_by=("as_of",), pii="pseudonymous", subjects=KEYED, retention=PER_AS_OF),
    Table(
        CHANGES, "Who entered and who left each segment since the previous "
        "publish (for activation).", "publish",
        columns("""
customer_key STRING NOT NULL -- the customer
kind STRING -- segment kind
segment STRING -- the segment
change STRING NOT NULL -- entered or left
previous_as_of DATE -- the publish compared with (null on the first)
""" + _STAMP),
        partition_by=("as_of",), pii="pseudonymous", subjects=KEYED, retention=PER_AS_OF),
    Table(
        SUMMARY, "Size, revenue share, consent and movement of every "
        "segment.", "publish",
        columns("""
kind STRING -- segment kind
segment STRING -- the segment
customers BIGINT -- members
revenue DOUBLE -- members' 365-day revenue
consenting BIGINT -- members with marketing consent
avg_propensity_score DOUBLE -- mean propensity score
share DOUBLE -- share of the kind's customers
revenue_share DOUBLE -- share of the kind's revenue
entered BIGINT -- members who entered since the previous publish
left BIGINT -- members who left
""" + _STAMP),
        key=("kind", "segment", "as_of"), partition_by=("as_of",), retention=PER_AS_OF),
    Table(
        ASSIGNMENTS, "Treatment or holdout of every segment member (activation.holdout_share):"
        " a salted draw, kept while the customer stays in the segment; exports carry the "
        "treatment group.", "publish",
        columns("""
customer_key STRING NOT NULL -- the customer
kind STRING NOT NULL -- segment kind
segment STRING -- the segment
group STRING NOT NULL -- treatment or holdout
assigned_at DATE NOT NULL -- the as_of at which the customer got this group
""" + _STAMP),
        partition_by=("as_of",), pii="pseudonymous", subjects=KEYED, retention=PER_AS_OF,
        expectations=(expect("in_set", "group", value_set=["treatment", "holdout"]),)),
    Table(
        LIFT, "Treatment against holdout after an activation date, per segment and outcome: "
        "difference, relative lift, interval and p-value (seglake measure).", "measure",
        columns("""
kind STRING NOT NULL -- segment kind
segment STRING -- the segment
activated_on DATE NOT NULL -- the day the campaign went out
assigned_as_of DATE NOT NULL -- the as_of of the groups compared (the latest on or before it)
window_days INT NOT NULL -- days of outcomes observed after it
metric STRING NOT NULL -- conversion, revenue_per_customer or email_open
n_treatment BIGINT -- treatment members
n_holdout BIGINT -- holdout members
treatment_value DOUBLE -- the treatment group's rate or mean
holdout_value DOUBLE -- the holdout group's rate or mean
difference DOUBLE -- treatment minus holdout
relative_lift DOUBLE -- difference over the holdout value (null when that is 0)
ci_low DOUBLE -- lower bound of the difference's interval
ci_high DOUBLE -- upper bound
confidence DOUBLE -- the interval's confidence level
p_value DOUBLE -- two-sided: no difference
method STRING -- two-proportion z (rates) or Welch t (means)
measured_at TIMESTAMP NOT NULL -- when it was measured
run_id STRING NOT NULL -- the run that wrote the row
"""),
        key=("kind", "segment", "activated_on", "metric"), partition_by=(),
        retention="one row per segment, activation date and metric; a re-run replaces them"),
    Table(
        UPLIFT, "Expected effect of the next campaign on each member of a segment a measured "
        "campaign moved: a two-model uplift learner fitted on that campaign's treatment and "
        "holdout (seglake measure).", "measure",
        columns("""
customer_key STRING NOT NULL -- the customer
kind STRING NOT NULL -- segment kind
segment STRING -- the segment
activated_on DATE NOT NULL -- the campaign the model learnt from
uplift DOUBLE -- treatment_probability minus holdout_probability
treatment_probability DOUBLE -- chance of a completed order in the window if sent the campaign
holdout_probability DOUBLE -- chance of one if not
model_version BIGINT NOT NULL -- the uplift model (ops.models)
""" + _STAMP),
        key=("customer_key", "kind", "segment", "as_of"), partition_by=("as_of",),
        pii="pseudonymous", subjects=KEYED,
        retention="one partition per as_of; a re-run replaces its segment's rows"),
]

OPS = [
    Table(
        RUN_LOG, "What each stage did: rows in and out per source, table and batch, "
        "and one row per stage of `seglake run`.", "*",
        columns("""
run_id STRING -- <stage>-<UTC time>-<random>
stage STRING -- the stage (run: a pipeline run's stage rows)
source STRING -- input (source or table; for run rows: the stage)
table STRING -- output table
batch_id BIGINT -- ingest batch
rows_in BIGINT -- rows read
rows_out BIGINT -- rows written
quarantined BIGINT -- rows set aside
duplicates BIGINT -- exact repeats removed
rejected_files BIGINT -- landing files rejected
status STRING -- ok or failed
message STRING -- detail (tables written, errors)
started_at TIMESTAMP -- UTC
finished_at TIMESTAMP -- UTC
"""), retention="kept"),
    Table(
        INGEST_FILES, "Every landing file ingest saw: loaded or rejected, and why.",
        "ingest",
        columns("""
source STRING -- the source
file STRING -- the landing file
batch_id BIGINT -- the batch that read it
records BIGINT -- records in it
corrupt_records BIGINT -- records that could not be parsed
status STRING -- loaded or rejected
reason STRING -- why it was rejected
run_id STRING -- the ingest run
"""), retention="kept"),
    Table(
        QUALITY_RESULTS, "One row per expectation checked on a candidate silver write.",
        "refine",
        columns("""
run_id STRING -- the refine run
table STRING -- the silver table
source STRING -- the source being refined
expectation STRING -- GX expectation type
column STRING -- its column(s)
success BOOLEAN -- passed
blocking BOOLEAN -- a failure stops the write
element_count BIGINT -- rows checked
unexpected_count BIGINT -- rows that failed
details STRING -- JSON: percent, sample values (never of PII tables)
checked_at TIMESTAMP -- UTC
"""), retention="kept"),
    Table(
        MODELS, "Every trained model: parameters, metrics, data versions, artifact.",
        "*",
        columns("""
kind STRING -- identity, clustering, propensity or churn
version BIGINT -- 1, 2, ... per kind
run_id STRING -- the run that trained it
trained_at TIMESTAMP -- UTC
params STRING -- JSON
metrics STRING -- JSON
data_versions STRING -- JSON: table -> Delta version trained on
artifact STRING -- JSON: the model definition, or the persisted pipeline's path
mlflow_run_id STRING -- its MLflow run (tracking); null when tracking is off or failed
"""), retention="kept"),
    Table(
        ERASURE_LOG, "Erasure requests carried out (the subject as a keyed hash only).",
        "erase",
        columns("""
request_id STRING -- the request
requested_at TIMESTAMP -- UTC
subject_hash STRING -- keyed hash of the subject's email
requested_by STRING -- who asked (cli, ...)
tables ARRAY<STRING> -- tables rows were deleted from
rows_deleted BIGINT -- rows deleted
landing_files ARRAY<STRING> -- landing files that still hold the subject
vacuumed BOOLEAN -- old versions deleted too
"""), pii="pseudonymous", retention="kept",
        erasure_exempt="the record that an erasure was carried out is itself the proof the "
                       "GDPR asks for (Art. 5(2)); it holds a keyed hash, not the email"),
    Table(
        ALERTS, "What `seglake monitor` found out of bounds: volume drops, quarantine shares, "
        "feature and score drift (PSI), segment size changes.", "monitor",
        columns("""
run_id STRING NOT NULL -- the monitor run (ops.run_log)
checked_at TIMESTAMP NOT NULL -- when (UTC)
check STRING NOT NULL -- volume, quarantine, feature_drift, score_drift or segment_size
severity STRING NOT NULL -- warn or fail (a fail makes seglake monitor exit 1)
table STRING -- the table checked
subject STRING -- the source and day, feature, score or segment
value DOUBLE -- the measured ratio, share, PSI or share change
threshold DOUBLE -- the threshold it crossed
message STRING -- in words
"""), retention="kept (a few rows per run)",
        expectations=(expect("in_set", "severity", value_set=["warn", "fail"]),)),
    Table(
        HEALTHCHECK, "Written and read back by `seglake check`.", "check",
        columns("""
id BIGINT -- 0..999
checked_at TIMESTAMP -- when (UTC)
"""), retention="replaced by each check"),
]
