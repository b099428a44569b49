"""Which record pairs linkage compares: the configured blocking rules in order, each counted with
Splink's comparison counting and kept while the candidate pairs stay within the pair budget.

Rules that need one field to agree find pairs with a typo elsewhere, but may pair everyone with
a common name; the budget keeps the single-field rules a data set can afford and skips the
others, so one default list serves a thousand records and a million. What each kept rule adds
and a recall proxy are recorded: the share of identifier-linked pairs (records agreeing on an
email, phone or identifier) that the rules without identifiers reach — how well records that
lack identifiers are found, measured without labels.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from seglake.config import IdentityConfig

log = logging.getLogger(__name__)

Rule = list[str] | str
# records to take whole into a count; above, Splink counts on a sample of each side
EXACT_COUNT_RECORDS = 20_000


def rule_text(rule: Rule) -> str:
    """A rule as one line: its columns joined by `` & `` or its SQL."""
    return rule if isinstance(rule, str) else " & ".join(rule)


def uses(rule: Rule, columns: set[str]) -> bool:
    """Whether ``rule`` refers to any of ``columns`` (as whole words)."""
    text = rule if isinstance(rule, str) else " ".join(rule)
    return any(re.search(rf"\b{re.escape(c)}\b", text) for c in columns)


def splink_rule(rule: Rule) -> Any:
    """The Splink blocking rule of a configured one: columns that must agree, or SQL."""
    from splink import block_on
    from splink.blocking_rule_library import CustomRule

    return CustomRule(rule) if isinstance(rule, str) else block_on(*rule)


@dataclass(frozen=True)
class RuleUse:
    """One configured rule: the pairs it adds to those before it, whether it was kept, and
    the cumulative recall proxy of the kept rules up to it (None: it uses an identifier)."""

    rule: str
    pairs: int
    kept: bool
    recall_proxy: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pair_budget(config: IdentityConfig, records: int) -> int:
    """The most candidate pairs a run may score: per record, and never above the cap."""
    return min(config.max_pairs, config.pairs_per_record * max(records, 1))


def sample_proportion(records: int) -> float:
    """Each side's share of records Splink counts pairs on (1.0: exact)."""
    return min(1.0, EXACT_COUNT_RECORDS / max(records, 1))


def chosen_rules(table: Any, rules: list[Rule], records: int,
                 budget: int) -> tuple[list[Rule], list[RuleUse]]:
    """The rules kept within ``budget`` pairs, in their order, and what each adds to the kept
    rules before it. ``table``: the records as registered with Splink.

    One count of all rules settles the rules up to the first that overruns the budget; each
    rule from there is counted with the rules kept so far and skipped when it would overrun."""
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    def cumulative(chosen: list[Rule]) -> list[int]:
        counted = count_comparisons_from_blocking_rules(
            table, blocking_rules=[splink_rule(r) for r in chosen], link_type="dedupe_only",
            record_sample_proportion=sample_proportion(records))
        return [int(row["cumulative_comparison_count"]) for row in counted]

    if not rules:
        return [], []
    together = cumulative(rules)
    if together[-1] <= budget:
        added = [b - a for a, b in zip([0, *together], together, strict=False)]
        return list(rules), [RuleUse(rule_text(r), n, True) for r, n in zip(rules, added,
                                                                                strict=True)]
    fit = next(i for i, n in enumerate(together) if n > budget)  # the rules before it fit
    kept = list(rules[:fit])
    weighed = [RuleUse(rule_text(r), b - a, True)
               for r, a, b in zip(kept, [0, *together], together[:fit], strict=False)]
    total = together[fit - 1] if fit else 0
    for rule in rules[fit:]:
        pairs = cumulative([*kept, rule])[-1] - total
        fits = total + pairs <= budget
        if fits:
            kept.append(rule)
            total += pairs
        else:
            log.warning("resolve: blocking rule %s skipped: its %d more candidate pairs would "
                        "pass the budget of %d (identity.max_pairs, pairs_per_record)",
                        rule_text(rule), pairs, budget)
        weighed.append(RuleUse(rule_text(rule), pairs, fits))
    return kept, weighed


def _agreement(rule: Rule, index: int) -> Column:
    """Whether the pair's records (structs ``l`` and ``r``) satisfy ``rule``; list rules
    compare the keys ``_k<index>_<j>`` computed on each side beforehand."""
    if isinstance(rule, str):
        return F.coalesce(F.expr(rule), F.lit(False))
    agree = F.lit(True)
    for j in range(len(rule)):
        left, right = F.col(f"l._k{index}_{j}"), F.col(f"r._k{index}_{j}")
        agree = agree & left.isNotNull() & (left == right)
    return F.coalesce(agree, F.lit(False))


def recall_proxies(frame: DataFrame, identifier_pairs: DataFrame, config: IdentityConfig,
                   uses_: list[RuleUse], kept: list[Rule], id_column: str) -> list[RuleUse]:
    """``uses_`` with the cumulative share of identifier-linked pairs that the kept rules not
    using identifiers reach, in their order; unchanged when there are no such pairs."""
    identifiers = {c for cols in config.deterministic for c in cols}
    fuzzy = [(i, r) for i, r in enumerate(kept) if not uses(r, identifiers)]
    if not fuzzy:
        return uses_
    keys = [F.expr(element).alias(f"_k{i}_{j}") for i, r in fuzzy if not isinstance(r, str)
            for j, element in enumerate(r)]
    columns = [c for c in frame.columns if c != id_column]
    side = frame.select(id_column, F.struct(*[F.col(c) for c in columns], *keys).alias("v"))
    joined = identifier_pairs.join(side.select(F.col(id_column).alias(f"{id_column}_l"),
                                    F.col("v").alias("l")), f"{id_column}_l") \
        .join(side.select(F.col(id_column).alias(f"{id_column}_r"), F.col("v").alias("r")),
              f"{id_column}_r")
    reached = F.lit(False)
    shares = []
    for n, (i, rule) in enumerate(fuzzy):
        reached = reached | _agreement(rule, i)
        shares.append(F.avg(reached.cast("double")).alias(f"s{n}"))
    row = joined.agg(F.count("*").alias("n"), *shares).first()
    if not row["n"]:
        return uses_
    share = {rule_text(r): float(row[f"s{n}"]) for n, (_, r) in enumerate(fuzzy)}
    log.info("resolve: the blocking rules without identifiers reach %.1f%% of %d "
             "identifier-linked pairs", 100 * share[rule_text(fuzzy[-1][1])], row["n"])
    return [RuleUse(u.rule, u.pairs, u.kept, share.get(u.rule)) if u.kept else u
            for u in uses_]
