"""Typed configuration: YAML file + ``SEGLAKE__SECTION__KEY`` environment overrides.

Everything is validated before Spark starts, so a typo costs a second, not a JVM start.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "SEGLAKE__"
DEFAULT_CONFIG_PATH = Path("conf/seglake.yaml")


class ConfigError(ValueError):
    """A configuration problem, with a message that names the key, variable or file."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LakehouseConfig(_Section):
    root: str = Field(
        "./lakehouse",
        description="Where tables live: `<root>/<layer>/<table>`. A directory (or mounted "
        "path); object-store URIs need the delta-spark backend.",
    )
    backend: Literal["auto", "delta-spark", "delta-rs"] = Field(
        "auto",
        description="Delta implementation: delta-spark when its jars are on the JVM classpath "
        "(auto picks it then), otherwise delta-rs commits Spark-written Parquet files.",
    )
    vacuum_retention_hours: int = Field(
        168, ge=0, description="Default age after which vacuum deletes unreferenced files."
    )

    @model_validator(mode="after")
    def _check_backend(self) -> LakehouseConfig:
        if self.backend == "delta-rs" and "://" in self.root \
                and not self.root.startswith("file:"):
            raise ValueError(f"root {self.root} is an object store: the delta-rs backend commits "
                             "to file systems only; use backend delta-spark (with the Delta jars)")
        return self


class LandingConfig(_Section):
    root: str = Field("./demo/landing", description="Where the sources deliver their files.")


class TruthConfig(_Section):
    root: str = Field(
        "./demo/truth",
        description="Ground truth written by the demo generator (no stage reads it).",
    )


class ReportsConfig(_Section):
    root: str = Field("./reports", description="One folder per run: HTML report, diagnostics.")


class DemoConfig(_Section):
    seed: int = Field(42, description="Seed of the demo world; same seed, same bytes.")
    start: dt.date = Field(dt.date(2025, 9, 1), description="First observed day.")
    future_days: int = Field(
        60, ge=0, le=730,
        description="Held-back days after the observed ones: their purchases go to the truth "
        "root only (labels for propensity and churn).",
    )
    bad_row_rate: float = Field(
        0.005, ge=0, le=0.5, description="Share of landing rows per source made bad on purpose."
    )
    cross_system_rate: float = Field(
        0.30, ge=0, le=0.5,
        description="Share of account holders who also have a record in the other CRM system.",
    )
    duplicate_rate: float = Field(
        0.06, ge=0, le=0.5,
        description="Share of account holders with a second account in their home CRM system.",
    )
    bot_rate: float = Field(
        0.005, ge=0, le=0.05,
        description="Bots per person: web crawlers, scrapers and uptime monitors (truth in "
        "`flagged`).",
    )
    outlier_rate: float = Field(
        0.02, ge=0, le=0.05,
        description="Share of account holders who buy in bulk, tens of units a line (resellers; "
        "truth in `flagged`).",
    )


Role = Literal["events", "orders", "email_events", "customers", "consents", "products"]


class SourceConfig(_Section):
    path: str = Field(description="Folder of the source's files, relative to `landing.root`.")
    format: str = Field(description="Spark data source format (json, csv, parquet, ...).")
    options: dict[str, str] = Field(default_factory=dict, description="Spark reader options.")
    columns: str = Field(description="Declared columns as a Spark DDL string.")
    role: Role = Field(description="The canonical input it feeds (docs/bring-your-own-data.md): "
                       "events, orders, email_events, customers, consents or products.")
    mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical column -> Spark SQL expression over the source's fields "
        "(a field named like the canonical column is used when it is not mapped).")
    formats: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical column -> how its text parses: timestamps and dates `iso` "
        "(default), `epoch_s`, `epoch_ms` or a Java pattern such as `dd/MM/yyyy HH:mm`; "
        "numbers `decimal_comma` (1 234,56).")
    defaults: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical column -> value when the source has none (e.g. status: "
        "completed, currency: EUR).")
    required: list[str] = Field(
        default_factory=list,
        description="Canonical columns this source must fill on every row, beyond those the "
        "role requires (rows without them are quarantined).")
    timezone: str = Field(
        "", description="Zone of local times without an offset; empty: `refine.timezone`.")
    grain: Literal["order", "line"] = Field(
        "order", description="orders only: `line` when each row is one line of an order (its "
        "rows, sharing the order id, are grouped into one order; an order comes whole in one "
        "delivery).")
    subject: dict[str, Literal["email", "customer_id", "client_id"]] = Field(
        default_factory=dict,
        description="Columns that identify a data subject, by kind (what `seglake erase` "
        "deletes on): email, customer_id (CRM or account id, or an email used as one) or "
        "client_id (cookie, device).")


def default_sources() -> dict[str, SourceConfig]:
    """The sources the demo generator delivers, mapped by configuration like any other
    (``resources/demo_sources.yaml``); a team declares its own in the config file."""
    text = (resources.files("seglake") / "resources" / "demo_sources.yaml").read_text("utf-8")
    return {name: SourceConfig.model_validate(source)
            for name, source in yaml.safe_load(text).items()}


class IngestConfig(_Section):
    checkpoint_root: str = Field(
        "", description="Streaming checkpoints of ingest, one folder per source; empty: "
        "`<lakehouse.root>/_checkpoints/ingest`.")
    max_corrupt_share: float = Field(
        0.5, ge=0, le=1,
        description="A file with a larger share of unparseable records is rejected whole "
        "(binary junk, wrong format) and recorded in the run log; the other files go in.")
    max_files_per_batch: int = Field(
        0, ge=0, description="Files per ingest batch (0: all new files in one batch).")


class RefineConfig(_Section):
    future_tolerance_hours: int = Field(
        24, ge=0, description="Timestamps later than now plus this are quarantined.")
    max_unit_price: float = Field(
        10_000.0, gt=0, description="Order line unit prices above this are quarantined.")
    max_quantity: int = Field(
        100, gt=0, description="Order line quantities above this are quarantined.")
    max_turnover: float = Field(
        1_000_000.0, gt=0, description="Loyalty cumulative turnover above this is quarantined.")
    event_types: list[str] = Field(
        default_factory=lambda: ["page_view", "product_view", "search", "add_to_cart",
                                 "remove_from_cart", "checkout_start", "purchase", "login"],
        description="Known web/app event types; other values are quarantined.")
    email_events: list[str] = Field(
        default_factory=lambda: ["sent", "delivered", "bounce", "open", "click",
                                 "unsubscribe", "complaint"],
        description="Known email platform event names.")
    order_statuses: list[str] = Field(
        default_factory=lambda: ["completed", "returned", "cancelled"],
        description="Known order statuses.")
    consent_statuses: list[str] = Field(
        default_factory=lambda: ["granted", "withdrawn"], description="Known consent states.")
    timezone: str = Field(
        "Europe/Paris", description="Time zone of local times without an offset (CRM dates).")


class PrivacyConfig(_Section):
    demo_mode: bool = Field(
        False, description="Use a fixed, public demo key when SEGLAKE_PSEUDONYMIZATION_KEY is "
        "unset (demo data only; said loudly in the log).")
    phone_region: str = Field("FR", description="Region of phone numbers without a +prefix.")


class QualityConfig(_Section):
    blocking: list[str] = Field(
        default_factory=lambda: ["silver.events", "silver.orders", "silver.order_lines",
                                 "silver.customers_raw", "silver.consents"],
        description="Silver tables whose quality suite blocks the commit when it fails; the "
        "others only record their results.")
    data_docs: bool = Field(True, description="Write GX Data Docs HTML into the run's report.")


class ComparisonConfig(_Section):
    column: str = Field(description="Column of silver.customers_raw_pii to compare.")
    method: Literal["name", "date", "postcode", "email", "phone", "text", "identifier",
                    "exact"] = Field(
        description="How it is normalised and compared (Splink comparison); identifier: a "
        "national id, loyalty card or customer number, exact or one typo apart.")
    term_frequency: bool = Field(
        False, description="Weight agreement by how rare the value is (common names count less).")
    implied_by: str | None = Field(
        None, description="Another compared column whose agreement implies this one's (city "
        "by postcode): when that one agrees, this comparison counts as no evidence, so one "
        "fact is not counted twice.")


def _default_comparisons() -> list[ComparisonConfig]:
    return [ComparisonConfig(column="first_name", method="name", term_frequency=True),
            ComparisonConfig(column="last_name", method="name", term_frequency=True),
            ComparisonConfig(column="email", method="email"),
            ComparisonConfig(column="phone", method="phone"),
            ComparisonConfig(column="birth_date", method="date"),
            ComparisonConfig(column="postcode", method="postcode"),
            ComparisonConfig(column="city", method="exact", term_frequency=True,
                             implied_by="postcode"),
            ComparisonConfig(column="address", method="text"),
            ComparisonConfig(column="shared_id", method="identifier")]


class IdentityConfig(_Section):
    country: str = Field(
        "FR", min_length=2, max_length=2, description="ISO 3166 country of the CRM records: "
        "its name particles and street types are normalised, and its postcodes compared by "
        "area (GB: Splink's UK postcode comparison). Phones use privacy.phone_region.")
    comparisons: list[ComparisonConfig] = Field(
        default_factory=_default_comparisons,
        description="Compared columns of the CRM records and how (name, date, postcode, email, "
        "phone, text, exact); each becomes a Splink comparison.")
    blocking: list[list[str] | str] = Field(
        default_factory=lambda: [
            ["email"], ["phone"], ["shared_id"],
            ["first_name", "last_name"], ["last_name", "birth_date"],
            ["first_name", "birth_date"], ["last_name", "postcode"],
            ["first_name", "postcode"], ["postcode", "birth_date"],
            ["substr(email, 1, instr(email, '@'))"],
            "l.first_name = r.last_name AND l.last_name = r.first_name",
            ["first_name_soundex", "last_name_soundex"], ["postcode", "address"],
            ["birth_date"], ["last_name"], ["last_name_soundex"], ["postcode"],
            ["first_name"]],
        description="Which pairs are compared, in order of priority: lists of columns or "
        "expressions that must agree (Splink block_on; every compared name also has "
        "`<column>_soundex`), or SQL over l./r. Rules are kept while their pairs fit the "
        "pair budget (max_pairs): single fields find pairs with a typo in any other field "
        "where the data can afford them.")
    max_pairs: int = Field(
        20_000_000, ge=1, description="The most candidate pairs a resolve scores: blocking "
        "rules are kept in their order while their pairs (counted by Splink first) fit in "
        "min(max_pairs, pairs_per_record x records); the others are skipped and logged.")
    pairs_per_record: int = Field(
        50, ge=1, description="The pair budget per CRM record (see max_pairs).")
    deterministic: list[list[str]] = Field(
        default_factory=lambda: [["email"], ["phone"], ["shared_id"]],
        description="Identifier column sets: the pairs agreeing exactly on one estimate the "
        "match prior and the blocking recall proxy; they link records outright when matching "
        "is deterministic or deterministic_links is on.")
    deterministic_links: bool = Field(
        False, description="Probabilistic matching also links every pair agreeing on a "
        "deterministic column set outright, whatever else disagrees; off, such pairs are "
        "scored like the others (two people sharing a family email stay two customers).")
    match_prior: float | None = Field(
        None, gt=0.0, lt=1.0, description="The probability that two random records are one "
        "person; unset: estimated from the pairs agreeing on identity.deterministic, else on "
        "identity.prior_rules.")
    prior_rules: list[list[str]] = Field(
        default_factory=lambda: [["first_name", "last_name", "birth_date"]],
        description="Column sets whose exact agreement estimates the match prior (assumed to "
        "find half the true pairs) when no records share an identifier.")
    training_blocks: list[list[str]] = Field(
        default_factory=lambda: [["first_name", "last_name"], ["birth_date"]],
        description="One EM training pass per entry, on the pairs agreeing on those columns.")
    matching: Literal["probabilistic", "deterministic"] = Field(
        "probabilistic", description="probabilistic: Splink scores candidate pairs besides "
        "the deterministic links; deterministic: only exact agreement on a deterministic "
        "column set links records (also the fallback, with a warning, when no compared column "
        "holds values or EM finds no pairs to train on).")
    engine: Literal["auto", "spark", "duckdb"] = Field(
        "auto", description="Where Splink runs: spark (distributed), duckdb (in the driver: "
        "records, pairs and clusters move through Arrow, and the identity map and golden "
        "records are derived there too; ~5x faster on the small demo) or auto (duckdb up to "
        "local_max_records records). A reused model runs where it was trained.")
    local_max_records: int = Field(
        120_000, ge=0, description="The most CRM records identity.engine auto links on "
        "DuckDB in the driver; more go to Spark. The driver's memory follows the candidate "
        "pairs: 3.6 GB for the medium demo's 108,681 records (1.2M pairs).")
    local_max_bytes: int = Field(
        4_000_000_000, ge=0, description="The most Parquet bytes (CRM records, orders, email "
        "events, consents, events, the last identity map) a resolve linked on DuckDB derives "
        "its identity map and golden records from in the driver; more, and Spark derives "
        "them. The medium demo's 0.7 GB took 3.5 s on 2 cores.")
    u_max_pairs: int = Field(1_000_000, ge=10_000,
                             description="Random pairs sampled to estimate u probabilities.")
    seed: int = Field(42, description="Seed of the u sampling (reproducible models).")
    match_threshold: float = Field(
        0.9, gt=0.0, lt=1.0, description="Match probability at or above which two records "
        "are one customer.")
    reuse_model: bool = Field(
        False, description="Score with the latest model in ops.models instead of retraining.")
    incremental: bool = Field(
        True, description="When a model and a previous graph exist, link only the new and "
        "changed CRM records (against all records, with that model) and re-cluster only the "
        "customers they touch; `seglake resolve --full` re-links everything.")
    retrain_new_share: float = Field(
        0.2, gt=0.0, le=1.0, description="With a reused model: advise retraining (warned, and "
        "in ops.models) when this share of the CRM records is newer than the model's training.")
    retrain_weight_psi: float = Field(
        0.25, gt=0.0, description="With a reused model: advise retraining when the match "
        "weights of the scored pairs moved this far (population stability index) from those "
        "of the training run.")
    source_priority: list[str] = Field(
        default_factory=lambda: ["eshop", "loyalty"],
        description="CRM systems in order of trust, for the source_priority survivorship rule.")
    survivorship: dict[str, Literal["source_priority", "most_recent", "most_frequent"]] = Field(
        default_factory=lambda: {"title": "source_priority", "first_name": "source_priority",
                                 "last_name": "most_recent", "birth_date": "most_frequent"},
        description="Golden-record rule per attribute; attributes not listed take the most "
        "recent non-null value.")
    marketing_purpose: str = Field(
        "marketing_email", description="Consent purpose that sets the golden record's "
        "marketing_consent flag.")
    largest_clusters: int = Field(
        20, ge=0, description="How many of the largest clusters the diagnostics list.")

    @model_validator(mode="after")
    def _implied_columns_are_compared(self) -> IdentityConfig:
        compared = {c.column for c in self.comparisons}
        for c in self.comparisons:
            if c.implied_by is not None and (c.implied_by not in compared
                                             or c.implied_by == c.column):
                raise ValueError(f"identity.comparisons: {c.column} is implied_by "
                                 f"{c.implied_by}, which is not another compared column "
                                 f"(compared: {sorted(compared)})")
        return self


INTENT_SIGNALS = ("repeat_product_views", "long_dwell_views", "return_visits", "add_to_carts",
                  "checkout_starts", "contact_requests")
ENGAGEMENT_COMPONENTS = ("recency", "purchases", "browsing", "email", "intent")


class FeaturesConfig(_Section):
    windows: list[int] = Field(
        default_factory=lambda: [7, 30, 90, 365],
        description="Look-back windows in days; every windowed feature exists once per window "
        "(e.g. `sessions_30d`).")
    rfm_window_days: int = Field(
        365, description="Window of the frequency and monetary behind the R/F/M scores and the "
        "RFM map (one of `windows`).")
    quantile_accuracy: int = Field(
        10_000, ge=100, description="Accuracy of the percentile_approx cut points of the R/F/M "
        "quintiles (exact up to this many buyers).")
    profile_window_days: int = Field(
        365, description="Window of the preferred device, channel and top category (one of "
        "`windows`).")
    cart_abandon_hours: int = Field(
        24, ge=1, description="A cart not followed by a purchase (order or purchase event) "
        "within this many hours is abandoned.")
    loyal_orders: int = Field(
        2, ge=2, description="Completed orders from which the funnel stage is `loyalty`.")
    intent_window_days: int = Field(
        30, description="Window of the intent signals and score (one of `windows`).")
    dwell_seconds: int = Field(
        60, ge=1, description="A product view this long or longer is a long dwell.")
    contact_pages: list[str] = Field(
        default_factory=lambda: ["/contact", "/devis", "/rendez-vous", "contact"],
        description="Page or screen prefixes of contact and quote requests (a strong intent "
        "signal).")
    intent_weights: dict[str, float] = Field(
        default_factory=lambda: {"repeat_product_views": 1.0, "long_dwell_views": 0.5,
                                 "return_visits": 0.5, "add_to_carts": 3.0,
                                 "checkout_starts": 5.0, "contact_requests": 4.0},
        description="Weight of each intent signal count; intent_score = 100 * (1 - exp(-sum "
        "of weight * count / intent_scale)).")
    intent_scale: float = Field(
        10.0, gt=0, description="Weighted signal sum at which the intent score reaches 63.")
    engagement_window_days: int = Field(
        90, description="Window of the purchase, browsing and email components of the "
        "engagement score (one of `windows`).")
    engagement_weights: dict[str, float] = Field(
        default_factory=lambda: {"recency": 0.30, "purchases": 0.25, "browsing": 0.20,
                                 "email": 0.15, "intent": 0.10},
        description="Weights of the engagement components (each 0..1); the score is 100 * "
        "weighted mean.")
    engagement_halflife_days: float = Field(
        30.0, gt=0, description="The recency component halves every this many days since the "
        "last activity.")
    engagement_orders_target: int = Field(
        3, ge=1, description="Completed orders in the engagement window that give the full "
        "purchase component.")
    engagement_sessions_target: int = Field(
        12, ge=1, description="Sessions in the engagement window that give the full browsing "
        "component.")
    consent_purpose: str = Field(
        "marketing_email", description="Consent purpose behind the marketing_consent feature.")

    @model_validator(mode="after")
    def _consistent(self) -> FeaturesConfig:
        if not self.windows or any(w < 1 for w in self.windows) \
                or len(set(self.windows)) != len(self.windows):
            raise ValueError("windows must be distinct whole days >= 1")
        for key in ("rfm_window_days", "profile_window_days", "intent_window_days",
                    "engagement_window_days"):
            if getattr(self, key) not in self.windows:
                raise ValueError(f"{key} ({getattr(self, key)}) must be one of windows "
                                 f"{self.windows}")
        for key, known in (("intent_weights", INTENT_SIGNALS),
                           ("engagement_weights", ENGAGEMENT_COMPONENTS)):
            unknown = set(getattr(self, key)) - set(known)
            if unknown:
                raise ValueError(f"{key}: unknown {sorted(unknown)}; known: {list(known)}")
            if any(v < 0 for v in getattr(self, key).values()):
                raise ValueError(f"{key}: weights must be >= 0")
        if sum(self.engagement_weights.values()) <= 0:
            raise ValueError("engagement_weights must not all be 0")
        return self


class SegmentsConfig(_Section):
    rules_file: str = Field(
        "conf/segments.yaml", description="Rule segments and tags (YAML): boolean expressions "
        "over feature columns, checked against the feature catalogue before anything runs.")


CLUSTER_FEATURES = {
    "tenure_days": "tenure_days",
    "sessions_365d": "sessions_365d",
    "product_views_365d": "product_views_365d",
    "orders_per_session": "frequency_365d / greatest(sessions_365d, 1)",
    "frequency_365d": "frequency_365d",
    "monetary_365d": "monetary_365d",
    "avg_basket": "avg_basket",
    "coupon_share": "coupon_share",
    "email_open_rate_365d": "email_open_rate_365d",
    "days_since_last_activity": "days_since_last_activity",
    "avg_session_seconds_365d": "avg_session_seconds_365d",
    "pages_per_session_365d": "pages_per_session_365d",
    "app_preferred": "CASE WHEN preferred_channel = 'app' THEN 1 ELSE 0 END",
}


class ClusteringConfig(_Section):
    enabled: bool = Field(True, description="`seglake segment` also clusters customers (K-means "
                          "and a Gaussian mixture) after the rule segments.")
    features: dict[str, str] = Field(
        default_factory=lambda: dict(CLUSTER_FEATURES),
        description="Clustering inputs: name -> Spark SQL row expression over feature columns "
        "(checked like segment rules). Nulls are imputed with the median.")
    log_features: list[str] = Field(
        ["tenure_days", "sessions_365d", "product_views_365d", "orders_per_session",
         "frequency_365d", "monetary_365d", "avg_basket", "days_since_last_activity",
         "avg_session_seconds_365d", "pages_per_session_365d"],
        description="Inputs log1p-transformed before scaling (skewed counts and amounts).")
    include_anonymous: bool = Field(
        False, description="Cluster anonymous visitors too (they have no order or email data).")
    k_min: int = Field(4, ge=2, description="Smallest k tried by K-means.")
    k_max: int = Field(8, ge=2, description="Largest k tried; the k with the best silhouette "
                       "is kept (silhouette and WSSSE of every k are recorded).")
    algorithm: Literal["kmeans", "bisecting"] = Field(
        "kmeans", description="Assignment: K-means, or bisecting K-means (hierarchical).")
    max_iter: int = Field(50, ge=1, description="Iterations of K-means / the mixture.")
    starts: int = Field(5, ge=1, description="K-means fits per k from different seeds, in the "
                        "k search and in the Spark fit at the chosen k; the one with the lowest "
                        "WSSSE is kept (one start can settle in a poor optimum).")
    parallelism: int = Field(2, ge=1, le=64, description="Spark K-means fits at the chosen k "
                             "run at once (driver threads; same clusters as one at a time).")
    seed: int = Field(42, description="Seed of every fit (reproducible clusters).")
    bootstrap_runs: int = Field(3, ge=0, description="Refits on bootstrap samples; their "
                                "adjusted Rand index with the kept model is recorded.")
    name_threshold: float = Field(0.4, gt=0, description="|mean z-score| from which a feature "
                                  "describes a cluster in its name.")
    fit_sample: int = Field(50_000, ge=100, description="Most customers the k search, the "
                            "models and the bootstrap refits are fitted on (a seeded sample "
                            "beyond it); every customer is still assigned. Bounds the fit cost "
                            "as the customers grow.")

    @model_validator(mode="after")
    def _check(self) -> ClusteringConfig:
        if self.k_min > self.k_max:
            raise ValueError(f"k_min ({self.k_min}) must not exceed k_max ({self.k_max})")
        if not self.features:
            raise ValueError("features must name at least one clustering input")
        unknown = set(self.log_features) - set(self.features)
        if unknown:
            raise ValueError(f"log_features {sorted(unknown)} are not among features "
                             f"{list(self.features)}")
        return self


class ScoringConfig(_Section):
    horizon_days: int = Field(30, ge=1, le=365, description="Labels: a completed purchase "
                              "(propensity) / none (churn, buyers only) in the horizon_days "
                              "after the training features' as_of (= scoring as_of - horizon).")
    features: list[str] = Field(
        [], description="Model inputs (feature columns); empty: every numeric and true/false "
        "column of the catalogue except is_anonymous.")
    exclude: list[str] = Field([], description="Columns left out of the model inputs.")
    num_trees: list[int] = Field([60], description="RandomForest numTrees grid (CrossValidator; "
                                 "a grid of one point is fitted without cross-validation).")
    max_depth: list[int] = Field([4, 8], description="RandomForest maxDepth grid.")
    num_folds: int = Field(2, ge=2, description="CrossValidator folds (small demo: 2 gave "
                           "holdout ROC-AUC 0.771 against 0.768 with 3, in 28 s less).")
    parallelism: int = Field(2, ge=1, le=64, description="Grid points the CrossValidator fits "
                             "at once (driver threads; same models as one at a time). Small "
                             "demo on 2 cores: 2 took 15-20 s per model against 24-41 s.")
    holdout_fraction: float = Field(0.25, gt=0, lt=1, description="Share of the labelled "
                                    "customers kept out of training for the recorded metrics.")
    seed: int = Field(42, description="Seed of the split, the folds and the forests.")
    fit_sample: int = Field(200_000, ge=100, description="Most labelled customers a model is "
                            "trained and measured on (a seeded sample beyond it); every "
                            "customer is still scored. Bounds the fit cost as the customers "
                            "grow.")
    tiers: dict[str, float] = Field(
        {"hot": 0.9, "warm": 0.7, "cool": 0.4, "cold": 0.0},
        description="Tier name -> lowest percentile rank of the score (0..1) in it; a customer "
        "gets the first tier whose bound its rank reaches.")
    challengers: list[Literal["gbt", "logistic", "mlp"]] = Field(
        ["gbt", "logistic"], description="Model families trained beside the random forest on "
        "the same rows (gradient-boosted trees, logistic regression, a multilayer perceptron); "
        "the best on the holdout by champion_metric scores. Empty: the forest alone.")
    champion_metric: Literal["roc_auc", "pr_auc"] = Field(
        "roc_auc", description="Holdout metric that picks the champion (ties: the forest, then "
        "the challengers in their order).")
    gbt_iterations: int = Field(
        30, ge=1, le=500, description="Boosting rounds of the gbt challenger (depth 4; each "
        "round is a Spark job).")

    @model_validator(mode="after")
    def _check(self) -> ScoringConfig:
        bounds = list(self.tiers.values())
        if not bounds or bounds != sorted(bounds, reverse=True) or bounds[-1] != 0.0 \
                or bounds[0] > 1:
            raise ValueError("tiers: bounds must fall from at most 1 to 0 (the last tier "
                             f"takes everyone else); got {self.tiers}")
        if not self.num_trees or not self.max_depth or min(self.num_trees + self.max_depth) < 1:
            raise ValueError("num_trees and max_depth need at least one value >= 1")
        return self


class PublishConfig(_Section):
    export_kinds: list[Literal["rule", "rfm", "cluster", "tag", "propensity_tier",
                               "churn_tier"]] = Field(
        ["rule", "cluster"], description="Membership kinds exported per segment (CSV and "
        "Parquet under <reports.root>/exports/<as_of>/<kind>/), consenting customers only.")


class TrackingConfig(_Section):
    enabled: bool = Field(
        True, description="Log every trained model (linkage, clustering, propensity, churn) to "
        "MLflow: parameters, metrics, input table versions, the Spark ML models, registered "
        "with the aliases champion and challenger.")
    uri: str = Field(
        "", description="MLflow tracking URI; empty: MLFLOW_TRACKING_URI when set (Databricks "
        "sets it), else a SQLite store under `root`.")
    root: str = Field(
        "mlruns", description="Folder of the local store (mlflow.db and artifacts/) when no "
        "URI is given.")
    experiment: str = Field("seglake", min_length=1, description="MLflow experiment name.")
    registry_prefix: str = Field(
        "seglake-", description="Registered model name = prefix + model kind (e.g. "
        "seglake-propensity).")


class MonitoringConfig(_Section):
    recent_days: int = Field(
        7, ge=1, le=90, description="Days of data, back from the latest, whose volumes "
        "`seglake monitor` checks.")
    history_weeks: int = Field(
        4, ge=2, le=52, description="Weeks before a day whose same weekday gives its baseline "
        "(the median): weekly seasonality is not a drop.")
    min_daily_rows: int = Field(
        50, ge=1, description="Baseline rows a day needs before a drop is judged.")
    quiet_days: list[str] = Field(
        default_factory=lambda: ["12-24", "12-25", "12-31", "01-01"],
        description="Days of the year (MM-DD) whose volumes are not judged: shops' known "
        "quiet days.")
    volume_warn_ratio: float = Field(
        0.5, gt=0, lt=1, description="A source's day under this share of its baseline, "
        "relative to the day's median over all sources, warns.")
    volume_fail_ratio: float = Field(
        0.25, gt=0, lt=1, description="... that fails; also the sources together under it.")
    quarantine_warn_share: float = Field(
        0.02, ge=0, le=1, description="Share of a source's rows quarantined in its latest "
        "refine run that warns.")
    quarantine_fail_share: float = Field(0.10, ge=0, le=1, description="... that fails.")
    psi_warn: float = Field(
        0.10, gt=0, description="Population stability index of a feature or score between the "
        "two latest as_of that warns (0.1-0.25 is the usual 'moderate shift').")
    psi_fail: float = Field(0.25, gt=0, description="PSI that fails (a major shift).")
    segment_share_warn: float = Field(
        0.05, gt=0, le=1, description="Change of a segment's share of its kind between the two "
        "latest publishes that warns.")
    segment_share_fail: float = Field(0.20, gt=0, le=1, description="... that fails.")
    drift_exclude: list[str] = Field(
        default_factory=lambda: ["tenure_days", "recency_days", "days_since_*",
                                 "cohort_month"],
        description="Features not checked for drift (fnmatch patterns): those counted in days "
        "from as_of move with the date itself on a young customer base.")
    history_runs: int = Field(
        5, ge=2, le=100, description="Runs before a stage's latest whose rows written (ops."
        "run_log, per table and source) give its usual volume (the median); the latest under "
        "volume_warn_ratio / volume_fail_ratio of it alerts.")
    min_history_runs: int = Field(
        3, ge=1, description="Runs needed before a stage's volume is judged.")

    @model_validator(mode="after")
    def _fail_beyond_warn(self) -> MonitoringConfig:
        pairs = {"volume ratio": (self.volume_fail_ratio, self.volume_warn_ratio, "under"),
                 "quarantine share": (self.quarantine_warn_share, self.quarantine_fail_share,
                                      "over"),
                 "psi": (self.psi_warn, self.psi_fail, "over"),
                 "segment share": (self.segment_share_warn, self.segment_share_fail, "over")}
        bad = [name for name, (low, high, _) in pairs.items() if low > high]
        if bad:
            raise ValueError(f"monitoring: the fail threshold must lie beyond the warn one: "
                             f"{', '.join(bad)}")
        return self


class FlagsConfig(_Section):
    window_days: int = Field(
        90, ge=1, le=730, description="Days before as_of whose events are read for bot-like "
        "sessions.")
    bot_min_events: int = Field(
        20, ge=2, description="Events a visitor needs in the window before it is judged a bot.")
    bot_events_per_session: float = Field(
        25.0, gt=1, description="Mean events per session from which the `volume` signal is on.")
    bot_max_gap_cv: float = Field(
        0.2, gt=0, lt=1, description="`regular` signal: the seconds between a session's events "
        "vary less than this (standard deviation / mean; people's vary by 0.3 and more).")
    bot_min_gaps: int = Field(
        20, ge=2, description="Gaps between events a visitor needs before `regular` is judged.")
    bot_min_signals: int = Field(
        2, ge=1, le=3, description="Signals of volume, regular and no_products (no product "
        "view, cart or order among its events) that make a visitor a bot.")
    outlier_z: float = Field(
        5.0, gt=0, description="Robust z-score (median and MAD of log1p over buyers) of an "
        "order measure from which a customer is an outlier ...")
    outlier_ratio: float = Field(
        5.0, gt=1, description="... when the measure is also this many times the buyers' "
        "median.")
    exclude_from_models: bool = Field(
        True, description="Leave flagged customers out of fitting clusters and scores (they "
        "are still assigned and scored, and flagged in exports).")


class RecommendationsConfig(_Section):
    top_k: int = Field(3, ge=1, le=20, description="Categories recommended per customer.")
    window_days: int = Field(
        365, ge=7, le=3650, description="Days before as_of whose purchases, visits and opens "
        "are read.")
    half_life_days: float = Field(
        60.0, gt=0, description="An interaction's weight halves every this many days.")
    weights: dict[str, float] = Field(
        default_factory=lambda: {"purchase": 3.0, "add_to_cart": 2.0, "product_view": 1.0,
                                 "browse": 0.5},
        description="Strength of an order line, a cart, a product view and a category page or "
        "search in a category.")
    rank: int = Field(8, ge=1, le=200, description="ALS latent factors.")
    reg_param: float = Field(0.1, gt=0, description="ALS regularisation.")
    alpha: float = Field(10.0, gt=0, description="ALS implicit-feedback confidence scale.")
    max_iter: int = Field(10, ge=1, le=100, description="ALS iterations.")
    send_min_observations: float = Field(
        5.0, ge=0, description="Weighted opens and visits a customer needs for an own send "
        "time; fewer: the rule segment's.")
    send_open_weight: float = Field(
        2.0, ge=0, description="Weight of an email open or click against a session start.")

    @field_validator("weights")
    @classmethod
    def _all_weights(cls, value: dict[str, float]) -> dict[str, float]:
        needed = {"purchase", "add_to_cart", "product_view", "browse"}
        if set(value) != needed:
            raise ValueError(f"give exactly {sorted(needed)}")
        return value


class GdprConfig(_Section):
    controller: str = Field(
        "", description="The controller's name and address, as the GDPR record of processing "
        "(`seglake register`) states it; empty: the register says it is not set.")
    contact: str = Field("", description="The data protection officer or contact.")
    legal_basis: dict[str, str] = Field(
        default_factory=lambda: {
            "collection": "legitimate interests (art. 6(1)(f)): knowing the shop's customers",
            "identity": "legitimate interests (art. 6(1)(f)): one record per customer",
            "segmentation": "legitimate interests (art. 6(1)(f)): customer analytics",
            "scoring": "legitimate interests (art. 6(1)(f)): customer analytics",
            "activation": "consent (art. 6(1)(a)) to marketing email: exports carry "
                          "consenting customers only",
            "measurement": "legitimate interests (art. 6(1)(f)): measuring campaigns"},
        description="Legal basis per purpose (collection, identity, segmentation, scoring, "
        "activation, measurement): the controller's decision, defaults to review.")
    recipients: list[str] = Field(
        default_factory=list, description="Recipients beyond the export folders (e.g. the "
        "email platform that imports them).")
    transfers: str = Field("", description="Transfers to third countries, if any.")


SEGMENT_KINDS = ("rule", "rfm", "cluster", "tag", "propensity_tier", "churn_tier")


class ActivationConfig(_Section):
    holdout_share: dict[Literal["rule", "rfm", "cluster", "tag", "propensity_tier",
                                "churn_tier"], float] = Field(
        default_factory=lambda: dict.fromkeys(SEGMENT_KINDS, 0.10),
        description="Share of each segment kept out of activation (the holdout), per kind; a "
        "kind not listed has no holdout. A customer keeps its group while it stays in the "
        "segment; exports carry the treatment group only.")
    salt: str = Field(
        "seglake-holdout-1", min_length=1, description="Salt of the deterministic holdout draw "
        "(not a secret): changing it redraws the groups of customers entering segments.")
    window_days: int = Field(
        28, ge=1, le=365, description="Days after the activation date over which `seglake "
        "measure` compares treatment and holdout.")
    confidence: float = Field(
        0.95, gt=0.5, lt=1.0, description="Confidence level of the lift intervals.")
    min_group_size: int = Field(
        30, ge=2, description="Members each group needs before a mean (revenue per customer) "
        "gets an interval and p-value: Welch's t leans on the central limit theorem, and "
        "skewed spend in a tiny holdout gives falsely narrow intervals. Rates use score "
        "intervals, valid for small groups.")
    uplift: bool = Field(
        True, description="`seglake measure` fits an uplift model (a random forest per group, "
        "uplift = the difference of their conversion probabilities) for every segment whose "
        "conversion lift is significant and whose groups have min_group_size members, and "
        "scores its current members into gold.customer_uplift.")
    uplift_folds: int = Field(
        5, ge=2, le=20, description="Folds of the uplift model's cross-fitting: each member's "
        "out-of-fold uplift (from models that did not see it) gives the Qini curve.")
    uplift_trees: int = Field(50, ge=1, le=1000, description="Trees of each group's forest.")
    uplift_depth: int = Field(4, ge=1, le=20, description="Depth of those trees.")

    @model_validator(mode="after")
    def _shares_leave_a_treatment(self) -> ActivationConfig:
        bad = {k: v for k, v in self.holdout_share.items() if not 0.0 <= v < 1.0}
        if bad:
            raise ValueError(f"activation.holdout_share must lie in [0, 1): got {bad}")
        return self


class SparkConfig(_Section):
    master: str = Field("local[*]", description="Master URL for a session seglake builds itself.")
    app_name: str = Field("seglake", description="Spark application name.")
    shuffle_partitions: int = Field(
        0, ge=0, description="spark.sql.shuffle.partitions; 0: by data size (Spark's 200, "
        "coalesced by adaptive execution: to ~64 MB each on a cluster, locally to no fewer "
        "than the cores while under ~64 MB).")
    driver_memory: str = Field("4g", description="spark.driver.memory (local sessions only).")
    log_level: Literal["ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"] = Field(
        "WARN", description="Spark log level."
    )
    ui_enabled: bool = Field(False, description="Start the Spark web UI for local sessions.")
    conf: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Extra Spark settings passed to the session builder."
    )


class SeglakeConfig(_Section):
    """The one configuration object handed to every stage."""

    lakehouse: LakehouseConfig = Field(default_factory=LakehouseConfig)
    landing: LandingConfig = Field(default_factory=LandingConfig)
    truth: TruthConfig = Field(default_factory=TruthConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    demo: DemoConfig = Field(default_factory=DemoConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    refine: RefineConfig = Field(default_factory=RefineConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    segments: SegmentsConfig = Field(default_factory=SegmentsConfig)
    clustering: ClusteringConfig = Field(default_factory=ClusteringConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    activation: ActivationConfig = Field(default_factory=ActivationConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    flags: FlagsConfig = Field(default_factory=FlagsConfig)
    recommendations: RecommendationsConfig = Field(default_factory=RecommendationsConfig)
    gdpr: GdprConfig = Field(default_factory=GdprConfig)
    sources: dict[str, SourceConfig] = Field(
        default_factory=default_sources,
        description="Landing sources by name (what ingest reads); defaults: the demo sources.",
    )


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested dict of ``SEGLAKE__A__B=value`` variables; values are parsed as YAML."""
    nested: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if len(parts) < 2 or not all(parts):
            raise ConfigError(
                f"environment variable {name}: expected {ENV_PREFIX}<SECTION>__<KEY>, "
                f"e.g. {ENV_PREFIX}LAKEHOUSE__ROOT"
            )
        try:  # YAML: numbers, booleans, and lists or maps in flow style ([a, b], {k: v})
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another override")
        node[parts[-1]] = value
    return nested


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, sources: Mapping[str, str]) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        where = sources.get(key, "")
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}'{where}")
        elif item["type"] == "missing":
            lines.append(f"missing key '{key}'{where}")
        else:
            lines.append(f"key '{key}'{where}: {item['msg']} (got {item.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _env_sources(nested: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    sources = {}
    for key, value in nested.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            sources.update(_env_sources(value, dotted + "."))
        else:
            var = ENV_PREFIX + dotted.replace(".", "__").upper()
            sources[dotted] = f" (from environment variable {var})"
    return sources


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> SeglakeConfig:
    """Read ``path`` (default ``conf/seglake.yaml`` when present), apply env overrides, validate."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    file_note = ""
    if path is None and DEFAULT_CONFIG_PATH.is_file():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file not found: {file}")
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {file} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {file} must hold a mapping of sections at top level")
        data = loaded or {}
        file_note = f" in {file}"
    overrides = env_overrides(environ)
    sources = {k: file_note for k in _flat_keys(data)}
    sources.update(_env_sources(overrides))
    try:
        return SeglakeConfig.model_validate(_deep_merge(data, overrides))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources)) from None


def _flat_keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        if isinstance(value, Mapping):
            keys.extend(_flat_keys(value, dotted + "."))
    return keys


def config_reference() -> str:
    """Markdown table of every key with its default and meaning, generated from the model."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    defaults = SeglakeConfig().model_dump()
    for section, field in SeglakeConfig.model_fields.items():
        if section == "sources":
            names = ", ".join(f"`{n}`" for n in defaults[section])
            rows.append(f"| `sources` | {names} | {field.description} |")
            for key, sub in SourceConfig.model_fields.items():
                rows.append(f"| `sources.<name>.{key}` | | {sub.description} |")
            continue
        for key, sub in field.annotation.model_fields.items():
            rows.append(f"| `{section}.{key}` | `{defaults[section][key]}` | {sub.description} |")
    return "\n".join(rows)
