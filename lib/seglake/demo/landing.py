"""Landing files as each source system writes them, with injected bad rows.

Each source is declared once (``SOURCES``): file format, fields in order, which field holds the
timestamp, which fields are required, and which defects it can suffer. ``render`` turns typed
records into the exact text lines of the daily files and labels every line for the truth root.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from seglake.demo.draws import Draws, index_below, pick

# What can be wrong with a landing row (truth label) — the names refine's rules are matched on.
DEFECTS = {
    "malformed": "not parseable as a record: truncated CSV row or broken JSON",
    "missing_required": "a required field is empty or absent",
    "bad_timestamp": "the timestamp cannot be parsed or is impossible (e.g. 31/02)",
    "future_timestamp": "the timestamp is years in the future",
    "unknown_type": "an event type or status the source does not define",
    "bad_amount": "a negative or absurd amount or quantity",
    "duplicate": "an exact repeat of an earlier line (same record id)",
}
BAD_ISO = ("2025-02-30T12:00:00Z", "2025-13-45T25:61:00Z", "unknown", "0000-00-00T00:00:00Z",
           "12/09/2025 10:00")
BAD_FR_DATE = ("31/02/2025", "32/13/2025", "00/00/0000", "N/A", "2025-13-01")
UNKNOWN_EVENTS = ("pageview_v2", "scroll_depth_75", "PURCHASE_OK", "cart-add", "")


@dataclass(frozen=True)
class Source:
    """How one source delivers its rows."""

    name: str
    kind: str                                   # "json" or "csv"
    fields: tuple[str, ...]                     # output fields, in file order
    timestamp_field: str
    timestamp_format: Callable[[Column], Column]  # typed UTC timestamp -> text as delivered
    required: tuple[str, ...]
    defects: tuple[str, ...]
    type_field: str | None = None
    unknown_values: tuple[str, ...] = UNKNOWN_EVENTS
    sep: str = ","
    bom: bool = False
    numeric_timestamp: bool = False             # JSON number (epoch ms) instead of a string
    bad_timestamps: tuple[str, ...] = BAD_ISO
    amount: Callable[[Column, Column], dict[str, Column]] | None = field(default=None)

    @property
    def extension(self) -> str:
        return "jsonl" if self.kind == "json" else "csv"

    def file_name(self, date: dt.date) -> str:
        """The day's file, inside the source's folder: ``<source>_<YYYY-MM-DD>.<ext>``."""
        return f"{self.name}_{date:%Y-%m-%d}.{self.extension}"

    def file_column(self, date: Column) -> Column:
        """``file_name`` as a column, for per-row labels."""
        return F.concat(F.lit(f"{self.name}_"), F.date_format(date, "yyyy-MM-dd"),
                        F.lit(f".{self.extension}"))

    @property
    def header(self) -> str:
        return ("\ufeff" if self.bom else "") + self.sep.join(self.fields)


def iso_millis(ts: Column) -> Column:
    return F.date_format(ts, "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")


def iso_seconds(ts: Column) -> Column:
    return F.date_format(ts, "yyyy-MM-dd'T'HH:mm:ss'Z'")


def epoch_millis(ts: Column) -> Column:
    return F.unix_millis(ts).cast("string")


def iso_paris_offset(ts: Column) -> Column:
    """Local French time with its UTC offset, as a consent platform in France exports it."""
    local = F.from_utc_timestamp(ts, "Europe/Paris")
    hours = ((F.unix_seconds(local) - F.unix_seconds(ts)) / 3600).cast("int")
    return F.concat(F.date_format(local, "yyyy-MM-dd'T'HH:mm:ss"),
                    F.format_string("+%02d:00", hours))


def french_datetime(ts: Column) -> Column:
    return F.date_format(F.from_utc_timestamp(ts, "Europe/Paris"), "dd/MM/yyyy HH:mm:ss")


def french_date(ts: Column) -> Column:
    return F.date_format(F.from_utc_timestamp(ts, "Europe/Paris"), "dd/MM/yyyy")


def french_decimal(value: Column) -> Column:
    """12.5 -> "12,50" whatever the JVM locale."""
    return F.regexp_replace(F.format_string("%.2f", value.cast("double")), r"\.", ",")


def _absurd_line_amount(lines: Column, u: Column) -> dict[str, Column]:
    def spoil(x: Column, i: Column) -> Column:
        negative = -F.abs(x["unit_price"])
        absurd = F.lit(999_999.99)
        price = F.when(i == 0, F.when(u < 0.5, negative).otherwise(absurd)) \
            .otherwise(x["unit_price"])
        quantity = F.when((i == 0) & (u >= 0.8), F.lit(10_000)).otherwise(x["quantity"])
        return F.struct(x["product_id"].alias("product_id"), quantity.alias("quantity"),
                        price.alias("unit_price"))
    return {"lines": F.transform(lines, spoil)}


def _absurd_turnover(value: Column, u: Column) -> dict[str, Column]:
    return {"ca_cumule": F.when(u < 0.5, F.concat(F.lit("-"), value))
            .otherwise(F.lit("9999999,99"))}


COMMON = ("malformed", "missing_required", "bad_timestamp", "future_timestamp", "duplicate")
SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("web_events", "json",
           ("event_id", "event_type", "event_ts", "cookie_id", "session_id", "user_id", "page",
            "product_id", "category", "search_query", "order_id", "utm_source", "utm_medium",
            "utm_campaign", "device", "duration_s"),
           "event_ts", iso_millis, ("event_id", "event_type", "event_ts", "cookie_id"),
           (*COMMON, "unknown_type"), type_field="event_type"),
    Source("app_events", "json",
           ("event_id", "event_type", "event_ts", "device_id", "session_id", "user_id", "screen",
            "product_id", "category", "search_query", "order_id", "utm_source", "utm_medium",
            "utm_campaign", "os", "app_version", "duration_s"),
           "event_ts", epoch_millis, ("event_id", "event_type", "event_ts", "device_id"),
           (*COMMON, "unknown_type"), type_field="event_type", numeric_timestamp=True),
    Source("orders", "json",
           ("order_id", "customer_ref", "ordered_at", "channel", "store_id", "status", "currency",
            "lines", "discount", "coupon_code", "shipping_fee"),
           "ordered_at", iso_seconds, ("order_id", "customer_ref", "ordered_at"),
           (*COMMON, "bad_amount"), amount=lambda df_col, u: _absurd_line_amount(df_col, u)),
    Source("email_events", "csv",
           ("event_id", "campaign_id", "campaign_name", "email", "event", "event_time", "url",
            "bounce_type"),
           "event_time", iso_seconds, ("event_id", "email", "event", "event_time"),
           (*COMMON, "unknown_type"), type_field="event",
           unknown_values=("opened_twice", "delivred", "CLICK", "forward", "")),
    Source("crm_eshop", "csv",
           ("id_client", "civilite", "prenom", "nom", "email", "telephone", "date_naissance",
            "adresse", "code_postal", "ville", "date_creation", "optin_email"),
           "date_creation", french_datetime, ("id_client", "date_creation"), COMMON, sep=";",
           bad_timestamps=BAD_FR_DATE),
    Source("crm_loyalty", "csv",
           ("num_carte", "nom", "prenom", "email", "tel_mobile", "date_naiss", "adresse_1", "cp",
            "ville", "date_adhesion", "points", "ca_cumule", "magasin"),
           "date_adhesion", french_date, ("num_carte", "date_adhesion"), (*COMMON, "bad_amount"),
           sep=";", bom=True, bad_timestamps=BAD_FR_DATE,
           amount=lambda value, u: _absurd_turnover(value, u)),
    Source("consents", "csv",
           ("consent_id", "email", "purpose", "status", "source", "updated_at"),
           "updated_at", iso_paris_offset, ("consent_id", "email", "status", "updated_at"),
           (*COMMON, "unknown_type"), type_field="status",
           unknown_values=("peut-être", "GRANTED?", "revoked_pending", "")),
    Source("products", "csv",
           ("id_produit", "sku", "libelle", "categorie", "libelle_categorie", "marque",
            "prix_ttc", "date_creation"),
           "date_creation", french_date, ("id_produit",), (), sep=";"),
)}
AMOUNT_FIELD = {"orders": "lines", "crm_loyalty": "ca_cumule"}


def render(source: Source, records: DataFrame, draws: Draws, bad_rate: float) -> DataFrame:
    """Typed records -> one row per landing line: (batch_day, line, text, record_id, person_id,
    defect, detail). Records need ``batch_day``, ``_ts`` (UTC), ``record_id``, ``person_id``
    and the source's fields (the timestamp field is formatted from ``_ts``)."""
    rid = F.col("record_id")
    tag = source.name
    defect = F.when(draws.uniform(f"bad:{tag}", rid) < bad_rate,
                    pick(list(source.defects), index_below(draws.uniform(f"defect:{tag}", rid),
                                                           [1.0] * len(source.defects)))) \
        if source.defects else F.lit(None)
    df = records.withColumn("defect", defect.cast("string"))
    # an exact duplicate is the good line plus a second copy labelled "duplicate"
    copies = F.when(F.col("defect") == "duplicate", F.array(F.lit(0), F.lit(1))) \
        .otherwise(F.array(F.lit(0)))
    df = df.withColumn("copy", F.explode(copies)) \
        .withColumn("defect", F.when((F.col("defect") == "duplicate") & (F.col("copy") == 0), None)
                    .otherwise(F.col("defect")))
    u = draws.uniform(f"how:{tag}", rid)
    is_ = F.col("defect").__eq__
    ts = F.when(is_("future_timestamp"), F.col("_ts") + F.make_interval(
        years=(3 + F.floor(u * 8)).cast("int"))).otherwise(F.col("_ts"))
    values: dict[str, Column] = {name: F.col(name) for name in source.fields}
    values[source.timestamp_field] = F.when(
        is_("bad_timestamp"), pick(list(source.bad_timestamps),
                                   F.floor(u * len(source.bad_timestamps)).cast("int"))) \
        .otherwise(source.timestamp_format(ts))
    if source.type_field:
        values[source.type_field] = F.when(
            is_("unknown_type"), pick(list(source.unknown_values),
                                      F.floor(u * len(source.unknown_values)).cast("int"))) \
            .otherwise(values[source.type_field])
    if source.amount is not None:
        name = AMOUNT_FIELD[source.name]
        for key, spoiled in source.amount(values[name], u).items():
            values[key] = F.when(is_("bad_amount"), spoiled).otherwise(values[key])
    missing = pick(list(source.required), F.floor(u * len(source.required)).cast("int"))
    for name in source.required:
        values[name] = F.when(is_("missing_required") & (missing == name), None) \
            .otherwise(values[name])
    text = _json_line(source, values) if source.kind == "json" else _csv_line(source, values)
    df = df.withColumn("_text", text)
    text = F.col("_text")
    cut = F.floor(F.length(text) * (0.3 + 0.6 * draws.uniform(f"cut:{tag}", rid))).cast("int")
    if source.kind == "csv":
        kept = F.slice(F.split(text, source.sep, -1), 1,
                       F.greatest(F.lit(1), F.floor(u * (len(source.fields) - 1)).cast("int")))
        broken = F.array_join(kept, source.sep)
    else:
        broken = F.substring(text, 1, cut)
    df = df.withColumn("text", F.when(is_("malformed"), broken).otherwise(text)) \
        .withColumn("detail", F.when(is_("missing_required"), F.concat(F.lit("missing "), missing))
                    .when(is_("bad_timestamp") | is_("future_timestamp"),
                          F.lit(source.timestamp_field))
                    .when(is_("unknown_type"), F.lit(source.type_field))
                    .when(is_("bad_amount"), F.lit(AMOUNT_FIELD.get(source.name))))
    order = Window.partitionBy("batch_day").orderBy("_ts", "record_id", "copy")
    return df.select("batch_day", F.row_number().over(order).alias("line"), "text", "record_id",
                     "person_id", "defect", "detail")


def _json_line(source: Source, values: dict[str, Column]) -> Column:
    line = F.to_json(F.struct(*[values[name].alias(name) for name in source.fields]))
    if source.numeric_timestamp:
        line = F.regexp_replace(line, f'"{source.timestamp_field}":"(-?[0-9]+)"',
                                f'"{source.timestamp_field}":$1')
    return line


def csv_field(value: Column, sep: str) -> Column:
    """Empty for null; quoted (quotes doubled) when it holds the separator, a quote or a newline."""
    text = F.coalesce(value.cast("string"), F.lit(""))
    needs_quotes = text.contains(sep) | text.contains('"') | text.contains("\n")
    quoted = F.concat(F.lit('"'), F.regexp_replace(text, '"', '""'), F.lit('"'))
    return F.when(needs_quotes, quoted) \
        .otherwise(text)


def _csv_line(source: Source, values: dict[str, Column]) -> Column:
    return F.concat_ws(source.sep, *[csv_field(values[name], source.sep)
                                     for name in source.fields])
