"""Rule segments: named boolean expressions over feature columns, checked before anything runs.

A rule is a Spark SQL row expression over the columns of ``gold.customer_features`` (the feature
catalogue). Time windows are part of the feature names (``email_opened_7d``, ``frequency_30d``)
and of the ``days_since_*`` columns ("between 30 and 90 days ago" is
``days_since_last_visit BETWEEN 30 AND 90``). The check parses each rule with sqlglot (Spark
dialect) and accepts only a fixed set of operators and functions, so subqueries, table or file
access, UDFs, ``reflect``/``java_method`` and clock functions (``current_date``: rules must not
depend on when they run) are refused with a message that names the rule and the offending part.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from seglake.behaviour.catalogue import Feature
from seglake.expressions import ExpressionError, expression_columns

NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class RuleError(ValueError):
    """A segment rule that cannot run: the message names the rule and what is wrong."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Segment or tag name: lower case, digits, underscores.")
    rule: str = Field(description="Boolean Spark SQL expression over feature columns.")
    priority: int = Field(0, description="Exclusive segments: the highest priority that "
                          "matches wins.")
    description: str = Field("", description="What the segment is for (shown in reports).")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"{value!r}: use lower case letters, digits and underscores")
        return value


class RuleSet(BaseModel):
    """``conf/segments.yaml``: exclusive segments by priority, and non-exclusive tags."""

    model_config = ConfigDict(extra="forbid")

    segments: list[Rule] = Field(default_factory=list)
    tags: list[Rule] = Field(default_factory=list)
    fallback: str = Field("other", description="Segment of customers no rule matches.")

    def check_names(self) -> None:
        names = [r.name for r in self.segments] + [r.name for r in self.tags]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise RuleError(f"segment/tag names used twice: {dupes}")
        if self.fallback in {r.name for r in self.segments}:
            raise RuleError(f"fallback {self.fallback!r} is also a segment name")


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate the rules file (names, structure; columns come with the catalogue)."""
    file = Path(path)
    if not file.is_file():
        raise RuleError(f"segment rules file not found: {file}")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        rules = RuleSet.model_validate(data)
    except yaml.YAMLError as exc:
        raise RuleError(f"{file} is not valid YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise RuleError(f"{file}: {problems}") from None
    rules.check_names()
    return rules


def rule_columns(name: str, text: str, catalogue: Iterable[Feature]) -> list[str]:
    """The feature columns ``text`` reads; raises RuleError naming ``name`` and the offending
    part when it is not a pure row expression over known features."""
    try:
        return expression_columns(text, {f.name for f in catalogue}, f"rule {name!r}",
                                  "rules are row expressions over feature columns",
                                  "see `seglake features --catalogue`")
    except ExpressionError as exc:
        raise RuleError(str(exc)) from None


def not_boolean(text: str, catalogue: Iterable[Feature]) -> str:
    """What ``text`` gives when that is plainly not true/false ('' otherwise): arithmetic, a
    literal or a non-boolean feature at the top of a rule."""
    import sqlglot
    from sqlglot import exp

    node = sqlglot.parse_one(text, read="spark")
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, (exp.Predicate, exp.Connector, exp.Not, exp.Boolean, exp.Case,
                         exp.If, exp.Coalesce, exp.Null)):
        return ""
    if isinstance(node, exp.Column):
        kind = {f.name: f.type for f in catalogue}.get(node.name, "boolean")
        return "" if kind == "boolean" else f"the {kind} column {node.name}"
    if isinstance(node, (exp.Binary, exp.Neg, exp.Literal, exp.Func)):
        return f"a value ({node.sql(dialect='spark')[:60]})"
    return ""


def check_rules(rules: RuleSet, catalogue: Iterable[Feature]) -> dict[str, list[str]]:
    """Every segment and tag checked; the columns each reads, by name."""
    catalogue = list(catalogue)
    rules.check_names()
    used = {}
    for r in [*rules.segments, *rules.tags]:
        used[r.name] = rule_columns(r.name, r.rule, catalogue)
        value = not_boolean(r.rule, catalogue)
        if value:
            raise RuleError(f"rule {r.name!r}: gives {value}, not true/false; a rule is a "
                            "condition (e.g. frequency_7d + 1 > 2)")
    return used


def rule_segments(features: DataFrame, rules: RuleSet) -> DataFrame:
    """``customer_key``, ``as_of``, ``rule_segment`` (highest-priority match, else the fallback)
    and ``tags`` (every matching tag, in file order). A rule that is null for a row (a null
    feature) does not match."""
    ranked = sorted(enumerate(rules.segments), key=lambda ir: (-ir[1].priority, ir[0]))
    segment = F.lit(rules.fallback)
    for _, r in reversed(ranked):  # built inside out: the first when is the highest priority
        segment = F.when(F.coalesce(F.expr(r.rule), F.lit(False)), F.lit(r.name)) \
            .otherwise(segment)
    tags = F.filter(F.array(*[F.when(F.coalesce(F.expr(t.rule), F.lit(False)), F.lit(t.name))
                              for t in rules.tags]), lambda t: t.isNotNull()) \
        if rules.tags else F.array().cast("array<string>")
    return features.select("customer_key", "as_of", segment.alias("rule_segment"),
                           tags.alias("tags"))


def check_boolean(features: DataFrame, rules: RuleSet) -> None:
    """Every rule resolves on the feature table's schema and is a boolean (no data is read)."""
    for r in [*rules.segments, *rules.tags]:
        try:
            kind = features.select(F.expr(r.rule).alias("x")).schema["x"].dataType
        except Exception as exc:  # AnalysisException and friends: Spark's own message
            raise RuleError(f"rule {r.name!r}: {str(exc).splitlines()[0]}") from None
        if kind.simpleString() != "boolean":
            raise RuleError(f"rule {r.name!r}: is {kind.simpleString()}, not true/false")
