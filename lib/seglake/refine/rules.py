"""Named row rules. A row breaking any rule goes to ``silver.quarantine`` with the rule names.

Names are ``<kind>:<field>`` (``required:event_id``, ``timestamp:event_ts``,
``not_future:event_ts``, ``known_value:event_type``, ``amount_in_range:lines``) plus
``parseable`` for records the reader could not parse, which are judged by that rule alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

PARSEABLE = "parseable"


@dataclass(frozen=True)
class Rule:
    name: str
    broken: Column  # true when the row breaks the rule (null counts as not broken)
    description: str


def required(field: str, value: Column) -> Rule:
    text = F.trim(value.cast("string"))
    return Rule(f"required:{field}", text.isNull() | (text == ""),
                f"{field} is present and not empty")


def one_of(fields: list[str], values: list[Column]) -> Rule:
    present = [F.coalesce(F.trim(v.cast("string")) != "", F.lit(False)) for v in values]
    return Rule(f"required:{'|'.join(fields)}", ~F.greatest(*present, F.lit(False)),
                f"one of {', '.join(fields)} is present")


def timestamp(field: str, value: Column, parsed: Column) -> Rule:
    present = F.trim(value.cast("string")) != ""
    return Rule(f"timestamp:{field}", F.coalesce(present, F.lit(False)) & parsed.isNull(),
                f"{field} parses as a date/time in the source's format")


def not_future(field: str, parsed: Column, tolerance_hours: int) -> Rule:
    limit = F.current_timestamp() + F.make_interval(hours=F.lit(tolerance_hours))
    return Rule(f"not_future:{field}", parsed > limit,
                f"{field} is at most {tolerance_hours} h in the future")


def known_value(field: str, value: Column, compared: Column, allowed: Iterable[str]) -> Rule:
    """``compared``: the value as checked (e.g. trimmed); a present value must be allowed."""
    values = sorted(set(allowed))
    return Rule(f"known_value:{field}",
                value.isNotNull() & ~F.coalesce(compared.isin(values), F.lit(False)),
                f"{field} is one of {', '.join(values)}")


def in_range(field: str, broken: Column, description: str) -> Rule:
    return Rule(f"amount_in_range:{field}", F.coalesce(broken, F.lit(False)), description)


def broken_rules(rules: list[Rule], corrupt: Column | None) -> Column:
    """Array of the names of the rules a row breaks (empty when it is good)."""
    names = F.filter(F.array(*[F.when(r.broken, F.lit(r.name)) for r in rules]),
                     lambda name: name.isNotNull())
    if corrupt is None:
        return names
    return F.when(corrupt.isNotNull(), F.array(F.lit(PARSEABLE))).otherwise(names)
