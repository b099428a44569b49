"""The stages, declared: the command, the package that holds the stage's code, the tables it
reads. What a stage writes is what the table registry says it owns. The runner
(``seglake.pipeline``) runs them in this order; no stage imports another stage's package.
"""

from __future__ import annotations

from dataclasses import dataclass

from seglake.declarations import (
    ASSIGNMENTS,
    CLUSTERS,
    CONSENTS,
    CUSTOMERS,
    CUSTOMERS_RAW,
    CUSTOMERS_RAW_PII,
    EMAIL_EVENTS,
    EVENTS,
    FEATURES,
    FLAGS,
    IDENTITY_MAP,
    ORDER_LINES,
    ORDERS,
    PRODUCTS,
    RECOMMENDATIONS,
    RULE_SEGMENTS,
    SCORES,
    SUMMARY,
)

BRONZE = "bronze.*"  # the bronze table of every configured source


@dataclass(frozen=True)
class Stage:
    name: str                   # the command: seglake <name>
    package: str                # the module or package that holds its code
    summary: str
    reads: tuple[str, ...] = ()
    as_of: str = ""             # help of --as-of for a point-in-time stage
    in_pipeline: bool = True    # part of `seglake run` (in this order)
    writes_any: bool = False    # may write any table that holds a subject (erasure)


STAGES: tuple[Stage, ...] = (
    Stage("demo", "seglake.demo",
          "generate demo landing files with ground truth (demo generate ...)"),
    Stage("ingest", "seglake.ingest", "landing -> bronze: every new landing file exactly once"),
    Stage("refine", "seglake.refine",
          "bronze -> silver: types, rules, quarantine, quality gates, pseudonyms", (BRONZE,)),
    Stage("resolve", "seglake.identity",
          "resolve identities: de-duplicated customers, keys, golden records, map",
          (CUSTOMERS_RAW, CUSTOMERS_RAW_PII, EVENTS, ORDERS, EMAIL_EVENTS, CONSENTS)),
    Stage("features", "seglake.features",
          "gold customer features as of a date (RFM, email, browsing, funnel, intent), "
          "cohort retention, and bots and outliers flagged",
          (EVENTS, ORDERS, ORDER_LINES, EMAIL_EVENTS, CONSENTS, PRODUCTS, CUSTOMERS,
           IDENTITY_MAP),
          as_of="use only what happened strictly before this day, YYYY-MM-DD (default: the "
                "day after the latest order, event or email event)"),
    Stage("segment", "seglake.segments",
          "rule segments and tags (conf/segments.yaml), then MLlib clusters", (FEATURES, FLAGS),
          as_of="the features of this as_of (default: the latest in gold.customer_features)"),
    Stage("score", "seglake.scoring",
          "purchase propensity and churn scores (random forests trained by time split), next "
          "best categories (implicit ALS) and send times",
          (FEATURES, FLAGS, RULE_SEGMENTS, EVENTS, ORDERS, ORDER_LINES, EMAIL_EVENTS, CONSENTS,
           PRODUCTS, CUSTOMERS, IDENTITY_MAP),
          as_of="score the features of this as_of (default: the latest); training uses the "
                "features scoring.horizon_days earlier (computed from silver when that date "
                "is not in gold.customer_features)"),
    Stage("publish", "seglake.publish",
          "gold segment tables (current, history, changes, summary) and consented exports",
          (RULE_SEGMENTS, FEATURES, FLAGS, CLUSTERS, SCORES, RECOMMENDATIONS, CUSTOMERS,
           CONSENTS),
          as_of="publish the segments of this as_of (default: the latest rule segments)"),
    Stage("measure", "seglake.measure",
          "lift of each segment's treatment group over its holdout after an activation "
          "date; uplift models where a campaign moved conversion",
          (ASSIGNMENTS, ORDERS, EMAIL_EVENTS, IDENTITY_MAP, FEATURES, SCORES),
          in_pipeline=False),
    Stage("monitor", "seglake.monitor",
          "volume drops, quarantine shares, feature and score drift, segment size changes -> "
          "ops.alerts (exit 1 on a failing alert)",
          (EVENTS, ORDERS, EMAIL_EVENTS, FEATURES, SCORES, SUMMARY)),
    Stage("report", "seglake.report",
          "the self-contained HTML report of the lakehouse (figures embedded)"),
    Stage("erase", "seglake.erasure",
          "delete a data subject from every table (right to erasure)", in_pipeline=False,
          writes_any=True),
)
PIPELINE: tuple[str, ...] = tuple(s.name for s in STAGES if s.in_pipeline)


def stage(name: str) -> Stage:
    return next(s for s in STAGES if s.name == name)
