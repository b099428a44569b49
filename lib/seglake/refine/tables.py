"""How each bronze source becomes silver: typed columns, rules, identifiers, outputs.

Every refinement is data (``Refinement``) over pure functions of DataFrames; ``stage`` runs
them. The raw bronze record is kept as the struct ``_raw`` until the split, so rules can see
both what arrived and what it was typed to, and quarantine can keep the record as delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from seglake.config import RefineConfig
from seglake.privacy import canonical_email, e164_phone, email_key, keyed_hash
from seglake.refine import rules as R
from seglake.refine.rules import Rule, raw
from seglake.tables import LINEAGE


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


# ------------------------------------------------------------------------------ helpers
def text(value: Column) -> Column:
    """Trimmed, inner whitespace collapsed, empty -> null."""
    cleaned = F.trim(F.regexp_replace(value.cast("string"), r"\s+", " "))
    return F.when(cleaned != "", cleaned)


def iso_timestamp(value: Column) -> Column:
    """ISO 8601 with a zone (Z or +02:00) -> UTC timestamp; null when impossible."""
    return text(value).try_cast("timestamp")


def local_timestamp(value: Column, pattern: str, tz: str) -> Column:
    """Local wall-clock time in ``pattern`` (Java, e.g. dd/MM/yyyy) in ``tz`` -> UTC."""
    return F.to_utc_timestamp(F.try_to_timestamp(text(value), F.lit(pattern)), tz)


def french_number(value: Column) -> Column:
    """"1 234,56" -> 1234.56; null when not a number."""
    return F.regexp_replace(F.regexp_replace(text(value), r"[\s\u00a0]", ""), ",", ".") \
        .try_cast("double")


def _with(df: DataFrame, columns: dict[str, Column]) -> DataFrame:
    return df.withColumns(columns)


def _timestamp_rules(field_name: str, ctx: Context) -> list[Rule]:
    return [R.timestamp(field_name, "_ts"),
            R.not_future(field_name, "_ts", ctx.refine.future_tolerance_hours)]


# ------------------------------------------------------------------------------- events
EVENT_COLUMNS = ("event_id", "source", "event_type", "event_ts", "cookie_id", "device_id",
                 "session_id", "user_id", "page", "product_id", "category", "search_query",
                 "order_id", "utm_source", "utm_medium", "utm_campaign", "device_type", "os",
                 "app_version", "duration_s")


def _events(channel: str) -> Callable[[DataFrame, Context], DataFrame]:
    def typed(df: DataFrame, ctx: Context) -> DataFrame:
        web = channel == "web"
        ts = iso_timestamp(raw("event_ts")) if web \
            else F.timestamp_millis(text(raw("event_ts")).try_cast("long"))
        df = _with(df, {"_ts": ts})
        return _with(df, {
            "event_id": text(raw("event_id")), "source": F.lit(channel),
            "event_type": text(raw("event_type")), "event_ts": F.col("_ts"),
            "cookie_id": text(raw("cookie_id")) if web else F.lit(None).cast("string"),
            "device_id": F.lit(None).cast("string") if web else text(raw("device_id")),
            "session_id": text(raw("session_id")), "user_id": text(raw("user_id")),
            "page": text(raw("page" if web else "screen")),
            "product_id": text(raw("product_id")), "category": text(raw("category")),
            "search_query": text(raw("search_query")), "order_id": text(raw("order_id")),
            "utm_source": text(raw("utm_source")), "utm_medium": text(raw("utm_medium")),
            "utm_campaign": text(raw("utm_campaign")),
            "device_type": text(raw("device")) if web else F.lit("app"),
            "os": F.lit(None).cast("string") if web else text(raw("os")),
            "app_version": F.lit(None).cast("string") if web else text(raw("app_version")),
            "duration_s": raw("duration_s").cast("int"),
        })

    client = "cookie_id" if channel == "web" else "device_id"

    def rules(ctx: Context) -> list[Rule]:
        return [*(R.required(f) for f in ("event_id", "event_type", "event_ts", client)),
                *_timestamp_rules("event_ts", ctx),
                R.known_value("event_type", F.col("event_type"), ctx.refine.event_types)]

    return typed, rules


# ------------------------------------------------------------------------------- orders
ORDER_COLUMNS = ("order_id", "customer_email_hash", "customer_id", "ordered_at", "channel",
                 "store_id", "status", "currency", "items", "gross_amount", "discount",
                 "shipping_fee", "net_amount", "coupon_code")
LINE_COLUMNS = ("order_id", "line_no", "product_id", "quantity", "unit_price", "amount",
                "ordered_at", "status")


def _orders_typed(df: DataFrame, ctx: Context) -> DataFrame:
    ref = text(raw("customer_ref"))
    is_email = ref.contains("@")
    df = _with(df, {"_ts": iso_timestamp(raw("ordered_at")),
                    "_email": F.when(is_email, email_key(ref))})
    lines = raw("lines")
    gross = F.aggregate(lines, F.lit(0.0), lambda acc, x: acc + x["quantity"] * x["unit_price"])
    discount = F.coalesce(raw("discount"), F.lit(0.0))
    return _with(df, {
        "order_id": text(raw("order_id")),
        "customer_email_hash": keyed_hash(F.col("_email"), ctx.key),
        "customer_id": F.when(~is_email, ref),
        "ordered_at": F.col("_ts"), "channel": text(raw("channel")),
        "store_id": text(raw("store_id")), "status": F.lower(text(raw("status"))),
        "currency": F.upper(text(raw("currency"))),
        "items": F.aggregate(lines, F.lit(0), lambda acc, x: acc + x["quantity"]),
        "gross_amount": F.round(gross, 2), "discount": discount,
        "shipping_fee": F.coalesce(raw("shipping_fee"), F.lit(0.0)),
        "net_amount": F.round(gross - discount, 2),
        "coupon_code": text(raw("coupon_code")), "lines": lines,
    })


def _orders_rules(ctx: Context) -> list[Rule]:
    c = ctx.refine
    bad_line = F.exists(raw("lines"), lambda x: (
        x["unit_price"].isNull() | (x["unit_price"] < 0) | (x["unit_price"] > c.max_unit_price)
        | x["quantity"].isNull() | (x["quantity"] <= 0) | (x["quantity"] > c.max_quantity)))
    return [*(R.required(f) for f in ("order_id", "customer_ref", "ordered_at")),
            *_timestamp_rules("ordered_at", ctx),
            R.known_value("status", F.col("status"), c.order_statuses),
            R.in_range("lines", bad_line | (F.size(raw("lines")) < 1),
                       f"at least one line; unit price 0..{c.max_unit_price}, "
                       f"quantity 1..{c.max_quantity}"),
            R.in_range("discount", raw("discount") < 0, "discount is not negative")]


def order_lines(orders: DataFrame) -> DataFrame:
    """One row per order line, numbered from 1."""
    exploded = orders.select("*", F.posexplode("lines").alias("_pos", "_line"))
    return exploded.select(
        "order_id", (F.col("_pos") + 1).alias("line_no"),
        F.col("_line.product_id").alias("product_id"), F.col("_line.quantity").alias("quantity"),
        F.col("_line.unit_price").alias("unit_price"),
        F.round(F.col("_line.quantity") * F.col("_line.unit_price"), 2).alias("amount"),
        "ordered_at", "status", *LINEAGE)


# ------------------------------------------------------------------------------- email
EMAIL_COLUMNS = ("event_id", "campaign_id", "campaign_name", "email_hash", "event", "event_ts",
                 "url", "bounce_type")


def _email_typed(df: DataFrame, ctx: Context) -> DataFrame:
    df = _with(df, {"_ts": iso_timestamp(raw("event_time")),
                    "_email": email_key(raw("email"))})
    return _with(df, {
        "event_id": text(raw("event_id")), "campaign_id": text(raw("campaign_id")),
        "campaign_name": text(raw("campaign_name")),
        "email_hash": keyed_hash(F.col("_email"), ctx.key),
        "event": F.lower(text(raw("event"))), "event_ts": F.col("_ts"),
        "url": text(raw("url")), "bounce_type": text(raw("bounce_type")),
    })


def _email_rules(ctx: Context) -> list[Rule]:
    return [*(R.required(f) for f in ("event_id", "email", "event", "event_time")),
            *_timestamp_rules("event_time", ctx),
            R.known_value("event", text(raw("event")), ctx.refine.email_events)]  # exact case


# ------------------------------------------------------------------------------- CRM
CUSTOMER_COLUMNS = ("record_key", "system", "source_id", "email_hash", "phone_hash",
                    "birth_year", "postcode", "city", "created_at", "email_optin",
                    "loyalty_points", "loyalty_turnover", "home_store")
PII_COLUMNS = ("record_key", "system", "source_id", "title", "first_name", "last_name",
               "email", "phone", "birth_date", "address", "postcode", "city")
_CRM = {  # system -> bronze field of each silver attribute
    "eshop": {"source_id": "id_client", "title": "civilite", "first_name": "prenom",
              "last_name": "nom", "email": "email", "phone": "telephone",
              "birth_date": "date_naissance", "address": "adresse", "postcode": "code_postal",
              "city": "ville", "created": "date_creation"},
    "loyalty": {"source_id": "num_carte", "title": None, "first_name": "prenom",
                "last_name": "nom", "email": "email", "phone": "tel_mobile",
                "birth_date": "date_naiss", "address": "adresse_1", "postcode": "cp",
                "city": "ville", "created": "date_adhesion"},
}
_CREATED_FORMAT = {"eshop": "dd/MM/yyyy HH:mm:ss", "loyalty": "dd/MM/yyyy"}


def _crm(system: str) -> tuple[Callable[[DataFrame, Context], DataFrame],
                               Callable[[Context], list[Rule]]]:
    fields = _CRM[system]

    def get(name: str) -> Column:
        return text(raw(fields[name])) if fields[name] else F.lit(None).cast("string")

    def typed(df: DataFrame, ctx: Context) -> DataFrame:
        tz = ctx.refine.timezone
        df = _with(df, {
            "_ts": local_timestamp(raw(fields["created"]), _CREATED_FORMAT[system], tz),
            "_email": email_key(get("email")),
            "_phone": e164_phone(get("phone"), ctx.phone_region),
            "birth_date": F.try_to_date(get("birth_date"), "dd/MM/yyyy"),
        })
        eshop = system == "eshop"
        return _with(df, {
            "record_key": F.concat(F.lit(f"{system}:"), get("source_id")),
            "system": F.lit(system), "source_id": get("source_id"),
            "email_hash": keyed_hash(F.col("_email"), ctx.key),
            "phone_hash": keyed_hash(F.col("_phone"), ctx.key),
            "birth_year": F.year("birth_date"), "postcode": get("postcode"),
            "city": F.initcap(get("city")), "created_at": F.col("_ts"),
            "email_optin": F.lower(text(raw("optin_email"))).isin("oui", "o", "1", "true", "yes")
            if eshop else F.lit(None).cast("boolean"),
            "loyalty_points": F.lit(None).cast("int") if eshop
            else text(raw("points")).try_cast("int"),
            "loyalty_turnover": F.lit(None).cast("double") if eshop
            else french_number(raw("ca_cumule")),
            "home_store": F.lit(None).cast("string") if eshop else text(raw("magasin")),
            "title": get("title"), "first_name": get("first_name"),
            "last_name": get("last_name"), "email": canonical_email(get("email")),
            "phone": F.col("_phone"),
            "address": get("address"),
        })

    def rules(ctx: Context) -> list[Rule]:
        listed = [R.required(fields["source_id"]), R.required(fields["created"]),
                  *_timestamp_rules(fields["created"], ctx)]
        if system == "loyalty":
            turnover = french_number(raw("ca_cumule"))
            listed.append(R.in_range(
                "ca_cumule", raw("ca_cumule").isNotNull() & (
                    turnover.isNull() | (turnover < 0) | (turnover > ctx.refine.max_turnover)),
                f"cumulative turnover is a number in 0..{ctx.refine.max_turnover}"))
        return listed

    return typed, rules


def customers_raw_pii(customers: DataFrame) -> DataFrame:
    """The restricted table: direct identifiers per CRM record (canonical email, E.164)."""
    return customers.select(*PII_COLUMNS, *LINEAGE)


# ------------------------------------------------------------------------------- consents
CONSENT_COLUMNS = ("subject_hash", "purpose", "status", "consent_source", "updated_at",
                   "consent_id")


def _consents_typed(df: DataFrame, ctx: Context) -> DataFrame:
    df = _with(df, {"_ts": iso_timestamp(raw("updated_at")),
                    "_email": email_key(raw("email"))})
    return _with(df, {
        "consent_id": text(raw("consent_id")),
        "subject_hash": keyed_hash(F.col("_email"), ctx.key),
        "purpose": text(raw("purpose")), "status": F.lower(text(raw("status"))),
        "consent_source": text(raw("source")), "updated_at": F.col("_ts"),
    })


def _consents_rules(ctx: Context) -> list[Rule]:
    return [*(R.required(f) for f in ("consent_id", "email", "status", "updated_at")),
            *_timestamp_rules("updated_at", ctx),
            R.known_value("status", text(raw("status")), ctx.refine.consent_statuses)]  # exact


# ------------------------------------------------------------------------------- products
PRODUCT_COLUMNS = ("product_id", "sku", "name", "category", "category_label", "brand", "price",
                   "created_on")


def _products_typed(df: DataFrame, ctx: Context) -> DataFrame:
    return _with(df, {
        "product_id": text(raw("id_produit")), "sku": text(raw("sku")),
        "name": text(raw("libelle")), "category": text(raw("categorie")),
        "category_label": text(raw("libelle_categorie")), "brand": text(raw("marque")),
        "price": french_number(raw("prix_ttc")),
        "created_on": F.try_to_date(text(raw("date_creation")), "dd/MM/yyyy"),
    })


def _products_rules(ctx: Context) -> list[Rule]:
    price = french_number(raw("prix_ttc"))
    return [R.required("id_produit"),
            R.in_range("prix_ttc", raw("prix_ttc").isNotNull() & (
                price.isNull() | (price < 0) | (price > ctx.refine.max_unit_price)),
                f"price is a number in 0..{ctx.refine.max_unit_price}")]


def refinements() -> dict[str, Refinement]:
    """Every bronze source seglake knows how to refine, by source name."""
    web, web_rules = _events("web")
    app, app_rules = _events("app")
    eshop, eshop_rules = _crm("eshop")
    loyalty, loyalty_rules = _crm("loyalty")
    crm = {"silver.customers_raw_pii": customers_raw_pii}
    return {r.source: r for r in (
        Refinement("web_events", "silver.events", "event_id", web, web_rules, EVENT_COLUMNS),
        Refinement("app_events", "silver.events", "event_id", app, app_rules, EVENT_COLUMNS),
        Refinement("orders", "silver.orders", "order_id", _orders_typed, _orders_rules,
                   ORDER_COLUMNS, derived={"silver.order_lines": order_lines}),
        Refinement("email_events", "silver.email_events", "event_id", _email_typed,
                   _email_rules, EMAIL_COLUMNS),
        Refinement("crm_eshop", "silver.customers_raw", "record_key", eshop, eshop_rules,
                   CUSTOMER_COLUMNS, derived=crm),
        Refinement("crm_loyalty", "silver.customers_raw", "record_key", loyalty, loyalty_rules,
                   CUSTOMER_COLUMNS, derived=crm),
        Refinement("consents", "silver.consents", "consent_id", _consents_typed,
                   _consents_rules, CONSENT_COLUMNS, merge_on=("subject_hash", "purpose"),
                   latest_by="updated_at"),
        Refinement("products", "silver.products", "product_id", _products_typed,
                   _products_rules, PRODUCT_COLUMNS, merge_on=("product_id",),
                   latest_by="_batch_id"),
    )}
