"""How each bronze source becomes silver: mapped, parsed, checked, assembled.

A source's configuration (``role``, ``mapping``, ``formats``, ``defaults``) maps its fields onto
a canonical input (``seglake.inputs``); the role fixes how that input becomes silver columns.
The raw bronze record is kept as the struct ``_raw`` and the mapped values as ``_in`` until
the split, so rules see what arrived, what it was mapped to and what it parsed to, and
quarantine keeps the record as delivered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from seglake.config import RefineConfig, SourceConfig
from seglake.declarations import CUSTOMERS_RAW_PII, ORDER_LINES
from seglake.expressions import MAPPING, ExpressionError, expression_columns
from seglake.inputs import INPUTS, Input
from seglake.privacy import canonical_email, e164_phone, email_key, keyed_hash
from seglake.refine import rules as R
from seglake.refine.rules import Rule
from seglake.tables import LINEAGE, ddl_fields


@dataclass(frozen=True)
class Context:
    refine: RefineConfig
    key: bytes = field(repr=False)
    phone_region: str = "FR"


@dataclass(frozen=True)
class Refinement:
    """One bronze source -> one silver table (plus tables derived from its good rows)."""

    source: str
    table: str
    id_column: str                                  # exact duplicates share it
    typed: Callable[[DataFrame, Context], DataFrame]
    rules: Callable[[Context], list[Rule]]
    columns: tuple[str, ...]                        # the silver columns (lineage follows)
    merge_on: tuple[str, ...] = ()                  # latest state per key instead of append
    latest_by: str = ""                             # with merge_on: which row is the latest
    # more tables made from the good rows (all typed columns and lineage)
    derived: dict[str, Callable[[DataFrame], DataFrame]] = field(default_factory=dict)
    absent: frozenset[str] = frozenset()            # silver columns the source cannot fill
    # rows that are parts of one silver row (order lines): their own key beside id_column,
    # and how the good parts become one row; one broken part sets its whole id aside
    part_key: str = ""
    group: Callable[[DataFrame], DataFrame] | None = None


# ------------------------------------------------------------------------------ helpers
def text(value: Column) -> Column:
    """Trimmed, inner whitespace collapsed, empty -> null. ``nullif`` evaluates the cleaning
    once (``when(cleaned != "", cleaned)`` ran the regex twice: refine's costliest step)."""
    return F.nullif(F.trim(F.regexp_replace(value.cast("string"), r"\s+", " ")), F.lit(""))


def french_number(value: Column) -> Column:
    """"1 234,56" -> 1234.56; null when not a number."""
    return F.regexp_replace(F.regexp_replace(text(value), r"[\s\u00a0]", ""), ",", ".") \
        .try_cast("double")


LINES_TYPE = "ARRAY<STRUCT<product_id: STRING, quantity: INT, unit_price: DOUBLE>>"
TRUE_VALUES = ("true", "1", "yes", "y", "oui", "o", "t")
_ZONED = r"(Z|[+-][0-9]{2}:?[0-9]{2}|\[[^]]+\])$"
_PATTERN_ZONE = re.compile(r"[XxZzOV]")
_IDENTIFIER = re.compile(r"^`?([A-Za-z_][A-Za-z0-9_]*)`?$")


def timestamp_of(value: Column, fmt: str, tz: str) -> Column:
    """Text in ``fmt`` (iso, epoch_s, epoch_ms or a Java pattern) -> UTC timestamp; times
    without a zone are local times in ``tz``; null when impossible."""
    t = text(value)
    if fmt == "epoch_s":
        return F.timestamp_seconds(t.try_cast("long"))
    if fmt == "epoch_ms":
        return F.timestamp_millis(t.try_cast("long"))
    if fmt == "iso":
        return F.when(t.rlike(_ZONED), t.try_cast("timestamp")) \
            .otherwise(F.to_utc_timestamp(t.try_cast("timestamp"), tz))
    parsed = F.try_to_timestamp(t, F.lit(fmt))
    return parsed if _PATTERN_ZONE.search(fmt) else F.to_utc_timestamp(parsed, tz)


def date_of(value: Column, fmt: str) -> Column:
    return F.try_to_date(text(value), "yyyy-MM-dd" if fmt == "iso" else fmt)


def number_of(value: Column, fmt: str, kind: str) -> Column:
    number = french_number(value) if fmt == "decimal_comma" \
        else text(value).try_cast("double")
    return number if kind == "double" else F.when(number == F.floor(number), number) \
        .try_cast("int")


def boolean_of(value: Column) -> Column:
    return F.lower(text(value)).isin(*TRUE_VALUES)


def finite(value: Column) -> Column:
    return ~F.isnan(value) & (F.abs(value) < F.lit(float("inf")))


# ------------------------------------------------------------------------------- mapping
@dataclass(frozen=True)
class Mapped:
    """A source's fields mapped onto its role's canonical input."""

    name: str
    source: SourceConfig
    input: Input
    fields: tuple[str, ...]                         # the source's declared fields

    def expression(self, column: str) -> str | None:
        """The Spark SQL giving ``column``, or None when the source has nothing for it."""
        if column in self.source.mapping:
            return self.source.mapping[column]
        return f"`{column}`" if column in self.fields else None

    def available(self, column: str) -> bool:
        return self.expression(column) is not None or column in self.source.defaults

    def label(self, column: str) -> str:
        """The name rules give ``column``: the source's field when mapped plainly."""
        match = _IDENTIFIER.match(self.expression(column) or "")
        return match.group(1) if match else column

    def required(self) -> list[str]:
        return [c.name for c in self.input.columns if c.required] + \
            [c for c in self.source.required if c not in self.input.names or
             not self.input.column(c).required]

    def problems(self) -> list[str]:
        """What makes the mapping unusable, each with the config key to change."""
        key = f"sources.{self.name}"
        found = [f"{key}.{part}.{c}: {self.input.role} has no column {c!r} (it has "
                 f"{', '.join(self.input.names)})"
                 for part in ("mapping", "formats", "defaults")
                 for c in getattr(self.source, part) if c not in self.input.names]
        found += [f"{key}.required: {self.input.role} has no column {c!r}"
                  for c in self.source.required if c not in self.input.names]
        for c in self.required():
            if c in self.input.names and not self.available(c):
                found.append(f"{key}: required column {c!r} of {self.input.role} is not "
                             f"mapped; set {key}.mapping.{c} (an expression over the source's "
                             f"fields) or {key}.defaults.{c}")
        for group in self.input.one_of:
            if not any(self.available(c) for c in group):
                found.append(f"{key}: {self.input.role} needs one of {', '.join(group)}; map "
                             f"one under {key}.mapping")
        for c, e in self.source.mapping.items():
            try:
                expression_columns(e, self.fields, f"{key}.mapping.{c}",
                                   "mappings are row expressions over the source's fields",
                                   f"the source declares {', '.join(self.fields)}", MAPPING)
            except ExpressionError as exc:
                found.append(str(exc))
        for c, fmt in self.source.formats.items():
            kind = self.input.column(c).kind if c in self.input.names else ""
            if kind in ("double", "int") and fmt != "decimal_comma":
                found.append(f"{key}.formats.{c}: a number's format is decimal_comma (or none)")
            if kind in ("string", "boolean", "lines"):
                found.append(f"{key}.formats.{c}: {kind} columns take no format")
        if self.source.grain == "line" and self.input.role != "orders":
            found.append(f"{key}.grain: only orders come one row per line (grain: line)")
        elif self.source.grain == "line" and not self.available("unit_price"):
            found.append(f"{key}.grain: one row per line needs each row's unit_price (and "
                         f"product_id, quantity); map {key}.mapping.unit_price")
        return found


def mapped_values(df: DataFrame, m: Mapped) -> DataFrame:
    """``df`` with ``_in``: each canonical column as the mapping gives it (defaults applied)."""
    values = []
    for c in m.input.columns:
        e = m.expression(c.name)
        value = F.expr(e) if e else F.lit(None).cast("string")
        if c.kind == "lines" and e:
            value = value.cast(LINES_TYPE)
        if c.name in m.source.defaults:
            value = F.coalesce(text(value), F.lit(m.source.defaults[c.name]))
        values.append(value.alias(c.name))
    return df.select("*", "_raw.*").select(
        *df.columns, F.struct(*values).alias("_in"))


def parsed(kind: str, value: Column, fmt: str, tz: str) -> Column:
    """A mapped value parsed to its canonical ``kind``."""
    if kind == "timestamp":
        return timestamp_of(value, fmt, tz)
    if kind == "date":
        return date_of(value, fmt)
    if kind in ("double", "int"):
        return number_of(value, fmt, kind)
    if kind == "boolean":
        return boolean_of(value)
    return value if kind == "lines" else text(value)


def parsed_values(m: Mapped, ctx: Context) -> dict[str, Column]:
    """Each canonical column parsed to its kind from ``_in``."""
    tz = m.source.timezone or ctx.refine.timezone
    return {c.name: parsed(c.kind, F.col(f"_in.{c.name}"), m.source.formats.get(c.name, "iso"),
                           tz) for c in m.input.columns}


def mapped_rules(m: Mapped, ctx: Context) -> list[Rule]:
    """Required, parseable, not in the future and known values, from the declarations."""
    def raw(c: str) -> Column:
        return F.col(f"_in.{c}")
    known = {("events", "event_type"): ctx.refine.event_types,
             ("orders", "status"): ctx.refine.order_statuses,
             ("email_events", "event"): ctx.refine.email_events,
             ("consents", "status"): ctx.refine.consent_statuses}
    listed = [R.required(m.label(c), raw(c)) for c in m.required()]
    for group in m.input.one_of:
        present = [c for c in group if m.available(c)]
        if group[0] == "lines" or set(group) & set(m.required()):
            continue  # the order's amounts have their own rules
        if len(present) > 1:
            listed.append(R.one_of([m.label(c) for c in present], [raw(c) for c in present]))
        elif present and present[0] not in m.required():
            listed.append(R.required(m.label(present[0]), raw(present[0])))
    for c in m.required():
        kind = m.input.column(c).kind
        if kind in ("timestamp", "date"):
            listed.append(R.timestamp(m.label(c), raw(c), F.col(c)))
        if kind == "timestamp":
            listed.append(R.not_future(m.label(c), F.col(c), ctx.refine.future_tolerance_hours))
    for (role, c), allowed in known.items():
        if role == m.input.role:
            listed.append(R.known_value(m.label(c), raw(c), text(raw(c)), allowed))
    return listed


# ------------------------------------------------------------------------------- roles
EVENT_COLUMNS = ("event_id", "source", "event_type", "event_ts", "cookie_id", "device_id",
                 "session_id", "user_id", "page", "product_id", "category", "search_query",
                 "order_id", "utm_source", "utm_medium", "utm_campaign", "device_type", "os",
                 "app_version", "duration_s")
ORDER_COLUMNS = ("order_id", "customer_email_hash", "customer_id", "ordered_at", "channel",
                 "store_id", "status", "currency", "items", "gross_amount", "discount",
                 "shipping_fee", "net_amount", "coupon_code")
EMAIL_COLUMNS = ("event_id", "campaign_id", "campaign_name", "email_hash", "event", "event_ts",
                 "url", "bounce_type")
CUSTOMER_COLUMNS = ("record_key", "system", "source_id", "email_hash", "phone_hash",
                    "birth_year", "postcode", "city", "created_at", "email_optin",
                    "loyalty_points", "loyalty_turnover", "home_store")
PII_COLUMNS = ("record_key", "system", "source_id", "title", "first_name", "last_name",
               "email", "phone", "birth_date", "address", "postcode", "city", "shared_id")
CONSENT_COLUMNS = ("subject_hash", "purpose", "status", "consent_source", "updated_at",
                   "consent_id")
PRODUCT_COLUMNS = ("product_id", "sku", "name", "category", "category_label", "brand", "price",
                   "created_on")


def _events(df: DataFrame, m: Mapped, ctx: Context) -> DataFrame:
    return df.withColumn("source", F.coalesce("source", F.lit(m.name)))


def _orders(df: DataFrame, m: Mapped, ctx: Context) -> DataFrame:
    ref = F.col("customer_ref")
    email = F.coalesce("customer_email", F.when(ref.contains("@"), ref))
    flat = F.when(F.col("unit_price").isNotNull(), F.array(F.struct(
        F.col("product_id").alias("product_id"),
        F.coalesce("quantity", F.lit(1)).alias("quantity"),
        F.col("unit_price").alias("unit_price")))).cast(LINES_TYPE)
    lines = F.coalesce("lines", flat, F.array().cast(LINES_TYPE)) if m.available("lines") \
        else F.coalesce(flat, F.array().cast(LINES_TYPE))
    df = df.withColumns({"_email": email_key(email), "lines": lines})
    has_lines = F.size("lines") > 0
    gross = F.when(has_lines, F.aggregate(
        "lines", F.lit(0.0), lambda acc, x: acc + x["quantity"] * x["unit_price"])) \
        .otherwise(F.col("amount"))
    df = df.withColumns({
        "customer_email_hash": keyed_hash(F.col("_email"), ctx.key),
        "customer_id": F.coalesce("customer_id", F.when(~ref.contains("@"), ref)),
        "items": F.when(has_lines, F.aggregate("lines", F.lit(0), lambda acc, x:
                                               acc + x["quantity"])).otherwise(F.col("quantity")),
        "gross_amount": F.round(gross, 2),
        "discount": F.coalesce("discount", F.lit(0.0)),
        "shipping_fee": F.coalesce("shipping_fee", F.lit(0.0)),
    })
    df = with_net_amount(df)
    if m.source.grain == "line":  # a line's own key, and its order's gross for the discount
        key = F.col("line_no").cast("string") if m.available("line_no") \
            else F.sha2(F.to_json("_raw"), 256)
        df = df.withColumns({PART_KEY: key, ORDER_GROSS: F.sum("gross_amount").over(
            Window.partitionBy("_batch_id", "order_id"))})
    return df


PART_KEY, ORDER_GROSS = "_part_key", "_order_gross"


def grouped_orders(lines: DataFrame) -> DataFrame:
    """One order per order id from its line rows: lines in line-number order, amounts summed,
    the order's own fields (customer, date, status, discount) from its first line."""
    first = F.struct("line_no", "_source_file", F.col("lines")[0]["product_id"], PART_KEY)
    summed = {"items", "gross_amount"}
    own = [c for c in (*ORDER_COLUMNS, *LINEAGE, "_email") if c not in summed
           and c not in ("order_id", "net_amount")]
    grouped = lines.withColumn("_first", first).groupBy("order_id").agg(
        F.transform(F.array_sort(F.collect_list(F.struct("_first", F.col("lines")[0]
                                                         .alias("line")))),
                    lambda x: x["line"]).alias("lines"),
        F.sum("items").cast("int").alias("items"),
        F.round(F.sum("gross_amount"), 2).alias("gross_amount"),
        *[F.min_by(c, "_first").alias(c) for c in own])
    return with_net_amount(grouped)


def with_net_amount(orders: DataFrame) -> DataFrame:
    return orders.withColumn("net_amount",
                             F.round(F.col("gross_amount") - F.col("discount"), 2))


def _order_rules(m: Mapped, ctx: Context) -> list[Rule]:
    c = ctx.refine
    price, quantity = c.max_unit_price, c.max_quantity
    listed = []

    def bad_line(x: Column) -> Column:
        return (x["unit_price"].isNull() | ~finite(x["unit_price"]) | (x["unit_price"] < 0)
                | (x["unit_price"] > price) | x["quantity"].isNull() | (x["quantity"] <= 0)
                | (x["quantity"] > quantity))
    if m.available("lines"):
        lines = F.col("_in.lines")
        listed.append(R.in_range(m.label("lines"), F.exists(lines, bad_line)
                                 | (F.size(lines) < 1), f"at least one line; unit price "
                                 f"0..{price}, quantity 1..{quantity}"))
    if m.available("unit_price"):
        line = F.struct(F.col("unit_price").alias("unit_price"),
                        F.coalesce("quantity", F.lit(1)).alias("quantity"))
        listed.append(R.in_range(m.label("unit_price"), F.col("_in.unit_price").isNotNull()
                                 & bad_line(line),
                                 f"unit price 0..{price}, quantity 1..{quantity}"))
    for name, top in (("amount", price * quantity), ("shipping_fee", price)):
        if m.available(name):
            value = F.col(name)
            listed.append(R.in_range(m.label(name), F.col(f"_in.{name}").isNotNull() & (
                value.isNull() | ~finite(value) | (value < 0) | (value > top)),
                f"{name} is a number in 0..{top:g}"))
    if m.available("discount"):
        value = F.col("_in.discount").try_cast("double")
        gross = F.col(ORDER_GROSS if m.source.grain == "line" else "gross_amount")
        listed.append(R.in_range(m.label("discount"), value.isNotNull() & (
            ~finite(value) | (value < 0) | (value > gross)),
            "discount is a number in 0..the order's gross amount"))
    return listed


def order_lines(orders: DataFrame) -> DataFrame:
    """One row per order line, numbered from 1 (orders without lines have none)."""
    exploded = orders.select("*", F.posexplode("lines").alias("_pos", "_line"))
    return exploded.select(
        "order_id", (F.col("_pos") + 1).alias("line_no"),
        F.col("_line.product_id").alias("product_id"), F.col("_line.quantity").alias("quantity"),
        F.col("_line.unit_price").alias("unit_price"),
        F.round(F.col("_line.quantity") * F.col("_line.unit_price"), 2).alias("amount"),
        "ordered_at", "status", *LINEAGE).where(F.col("product_id").isNotNull())


def _email_events(df: DataFrame, m: Mapped, ctx: Context) -> DataFrame:
    df = df.withColumn("_email", email_key(F.col("email")))
    return df.withColumns({"email_hash": keyed_hash(F.col("_email"), ctx.key),
                           "event": F.lower("event")})


def _customers(df: DataFrame, m: Mapped, ctx: Context) -> DataFrame:
    df = df.withColumns({"_email": email_key(F.col("email")),
                         "_phone": e164_phone(F.col("phone"), ctx.phone_region),
                         "system": F.coalesce("system", F.lit(m.name))})
    return df.withColumns({
        "record_key": F.concat("system", F.lit(":"), "source_id"),
        "email_hash": keyed_hash(F.col("_email"), ctx.key),
        "phone_hash": keyed_hash(F.col("_phone"), ctx.key),
        "birth_year": F.year("birth_date"), "email": canonical_email(F.col("email")),
        "phone": F.col("_phone"),
    })


def _customer_rules(m: Mapped, ctx: Context) -> list[Rule]:
    if not m.available("loyalty_turnover"):
        return []
    top, value = ctx.refine.max_turnover, F.col("loyalty_turnover")
    return [R.in_range(m.label("loyalty_turnover"), text(F.col("_in.loyalty_turnover"))
                       .isNotNull() & (value.isNull() | ~finite(value) | (value < 0)
                                       | (value > top)),
                       f"cumulative turnover is a number in 0..{top:g}")]


def customers_raw_pii(customers: DataFrame) -> DataFrame:
    """The restricted table: direct identifiers per CRM record (canonical email, E.164)."""
    return customers.select(*PII_COLUMNS, *LINEAGE)


def _consents(df: DataFrame, m: Mapped, ctx: Context) -> DataFrame:
    df = df.withColumn("_email", email_key(F.col("email")))
    return df.withColumns({"subject_hash": keyed_hash(F.col("_email"), ctx.key),
                           "status": F.lower("status"), "consent_source": F.col("source")})


def _product_rules(m: Mapped, ctx: Context) -> list[Rule]:
    top, value = ctx.refine.max_unit_price, F.col("price")
    return [R.in_range(m.label("price"), text(F.col("_in.price")).isNotNull() & (
        value.isNull() | ~finite(value) | (value < 0) | (value > top)),
        f"price is a number in 0..{top:g}")]


@dataclass(frozen=True)
class Role:
    """How a canonical input becomes its silver table(s)."""

    columns: tuple[str, ...]
    id_column: str
    assemble: Callable[[DataFrame, Mapped, Context], DataFrame] = \
        lambda df, m, ctx: df  # noqa: E731
    rules: Callable[[Mapped, Context], list[Rule]] = lambda m, ctx: []  # noqa: E731
    merge_on: tuple[str, ...] = ()
    latest_by: str = ""
    derived: dict[str, Callable[[DataFrame], DataFrame]] = field(default_factory=dict)


ROLES: dict[str, Role] = {
    "events": Role(EVENT_COLUMNS, "event_id", _events),
    "orders": Role(ORDER_COLUMNS, "order_id", _orders, _order_rules,
                   derived={ORDER_LINES: order_lines}),
    "email_events": Role(EMAIL_COLUMNS, "event_id", _email_events),
    "customers": Role(CUSTOMER_COLUMNS, "record_key", _customers, _customer_rules,
                      derived={CUSTOMERS_RAW_PII: customers_raw_pii}),
    "consents": Role(CONSENT_COLUMNS, "consent_id", _consents,
                     merge_on=("subject_hash", "purpose"), latest_by="updated_at"),
    "products": Role(PRODUCT_COLUMNS, "product_id", rules=_product_rules,
                     merge_on=("product_id",), latest_by="_batch_id"),
}


# silver columns made from canonical columns of another name (the others: the same name)
FILLED_FROM = {"email_hash": ("email",), "phone_hash": ("phone",), "subject_hash": ("email",),
               "birth_year": ("birth_date",), "consent_source": ("source",),
               "customer_email_hash": ("customer_email", "customer_ref"),
               "customer_id": ("customer_id", "customer_ref")}


def absent_columns(m: Mapped, columns: tuple[str, ...]) -> frozenset[str]:
    """Silver columns left null because the source maps nothing onto them."""
    return frozenset(c for c in columns
                     if all(f in m.input.names and not m.available(f)
                            for f in FILLED_FROM.get(c, (c,))))


def mapped(name: str, source: SourceConfig) -> Mapped:
    fields = tuple(name for name, _ in ddl_fields(source.columns))
    return Mapped(name, source, INPUTS[source.role], fields)


def refinement(name: str, source: SourceConfig) -> Refinement:
    """How source ``name`` becomes silver, from its configuration alone."""
    m, role = mapped(name, source), ROLES[source.role]

    def typed(df: DataFrame, ctx: Context) -> DataFrame:
        df = mapped_values(df, m).withColumns(parsed_values(m, ctx))
        return role.assemble(df, m, ctx)

    def rules(ctx: Context) -> list[Rule]:
        return [*mapped_rules(m, ctx), *role.rules(m, ctx)]

    absent = absent_columns(m, role.columns) | absent_columns(m, PII_COLUMNS)
    lines = source.grain == "line"
    return Refinement(name, m.input.table, role.id_column, typed, rules, role.columns,
                      role.merge_on, role.latest_by, dict(role.derived), absent,
                      PART_KEY if lines else "", grouped_orders if lines else None)
