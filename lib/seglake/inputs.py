"""The canonical inputs: what refine needs from each kind of source, declared once.

A source's ``role`` names one of these; its ``mapping`` gives each canonical column as a Spark
SQL expression over the source's own fields (a field of the same name is used when a column is
not mapped). ``seglake check``, refine and the docs' reference all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from seglake.declarations import (
    CONSENTS,
    CUSTOMERS_RAW,
    EMAIL_EVENTS,
    EVENTS,
    ORDERS,
    PRODUCTS,
)

KINDS = ("string", "timestamp", "date", "double", "int", "boolean", "lines")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str      # one of KINDS: how the mapped value is parsed (see ``formats``)
    doc: str
    required: bool = False


@dataclass(frozen=True)
class Input:
    role: str
    table: str                                     # the silver table it feeds
    doc: str
    columns: tuple[Column, ...]
    one_of: tuple[tuple[str, ...], ...] = ()       # at least one of each group is present

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _c(name: str, kind: str, doc: str, required: bool = False) -> Column:
    return Column(name, kind, doc, required)


INPUTS: dict[str, Input] = {i.role: i for i in (
    Input("events", EVENTS, "Web or app behaviour, one row per event.", (
        _c("event_id", "string", "the platform's event id (duplicates removed on it)", True),
        _c("event_type", "string", "page_view, product_view, add_to_cart, ... "
           "(refine.event_types)", True),
        _c("event_ts", "timestamp", "when it happened", True),
        _c("source", "string", "the channel (default: the source's name)"),
        _c("cookie_id", "string", "web visitor cookie"),
        _c("device_id", "string", "app install or device id"),
        _c("session_id", "string", "the platform's session id"),
        _c("user_id", "string", "account id when logged in (a CRM id)"),
        _c("page", "string", "page path or screen name"),
        _c("product_id", "string", "product viewed or added"),
        _c("category", "string", "product category"),
        _c("search_query", "string", "what was searched"),
        _c("order_id", "string", "order placed by a purchase event"),
        _c("utm_source", "string", "campaign source"),
        _c("utm_medium", "string", "campaign medium"),
        _c("utm_campaign", "string", "campaign name"),
        _c("device_type", "string", "desktop, mobile, tablet or app"),
        _c("os", "string", "operating system"),
        _c("app_version", "string", "app version"),
        _c("duration_s", "int", "seconds spent on the page or screen"),
    ), one_of=(("cookie_id", "device_id", "user_id"),)),
    Input("orders", ORDERS, "Orders, one row per order or per line (grain: line); its lines "
          "nested (lines), flat (one product per row) or absent (an order amount only). Feeds "
          "silver.order_lines too.", (
        _c("order_id", "string", "the order number (duplicates removed on it)", True),
        _c("customer_id", "string", "the buyer's account id (a CRM id)"),
        _c("customer_email", "string", "the buyer's email (kept only as a keyed hash)"),
        _c("customer_ref", "string", "either of the two: an email when it holds an @"),
        _c("ordered_at", "timestamp", "when it was placed", True),
        _c("status", "string", "completed, returned, cancelled (refine.order_statuses); "
           "only completed orders count as purchases: give a default when there is none",
           True),
        _c("channel", "string", "web, app or store"),
        _c("store_id", "string", "the store of a store order"),
        _c("currency", "string", "ISO currency code"),
        _c("lines", "lines", "ARRAY<STRUCT<product_id, quantity, unit_price>>"),
        _c("product_id", "string", "the one product of a flat order row"),
        _c("quantity", "int", "units (of the flat row's product, or of the whole order)"),
        _c("unit_price", "double", "price per unit of the flat row's product"),
        _c("line_no", "int", "the row's line number in its order (grain: line; optional)"),
        _c("amount", "double", "the order's gross amount when it has no lines"),
        _c("discount", "double", "discount granted (0 when none)"),
        _c("shipping_fee", "double", "shipping charged (0 when none)"),
        _c("coupon_code", "string", "coupon used"),
    ), one_of=(("customer_id", "customer_email", "customer_ref"),
               ("lines", "unit_price", "amount"))),
    Input("email_events", EMAIL_EVENTS, "Email platform events, one row per event.", (
        _c("event_id", "string", "the platform's event id", True),
        _c("email", "string", "the recipient's email (kept only as a keyed hash)", True),
        _c("event", "string", "sent, delivered, open, click, ... (refine.email_events)", True),
        _c("event_ts", "timestamp", "when it happened", True),
        _c("campaign_id", "string", "the campaign"),
        _c("campaign_name", "string", "its name"),
        _c("url", "string", "the link clicked"),
        _c("bounce_type", "string", "hard or soft"),
    )),
    Input("customers", CUSTOMERS_RAW, "CRM records (accounts, loyalty cards), one row per "
          "record; identity resolution links them into customers.", (
        _c("source_id", "string", "the record's id in its system", True),
        _c("system", "string", "the CRM system (default: the source's name)"),
        _c("created_at", "timestamp", "when the record was created"),
        _c("title", "string", "civility"),
        _c("first_name", "string", "first name"),
        _c("last_name", "string", "last name"),
        _c("email", "string", "email (canonicalised, then kept as a keyed hash)"),
        _c("phone", "string", "phone (E.164 with privacy.phone_region, then a keyed hash)"),
        _c("birth_date", "date", "date of birth"),
        _c("address", "string", "street address"),
        _c("postcode", "string", "postcode"),
        _c("city", "string", "city"),
        _c("email_optin", "boolean", "opted in to email at sign-up"),
        _c("loyalty_points", "int", "loyalty points balance"),
        _c("loyalty_turnover", "double", "cumulative loyalty turnover"),
        _c("home_store", "string", "the member's store"),
        _c("shared_id", "string", "an identifier the systems share (loyalty card number, "
           "national id): records with the same one are one customer (kept restricted)"),
    )),
    Input("consents", CONSENTS, "Consent changes, one row per change; the latest per subject "
          "and purpose wins.", (
        _c("consent_id", "string", "the platform's id", True),
        _c("email", "string", "the subject's email (kept only as a keyed hash)", True),
        _c("purpose", "string", "marketing_email, marketing_sms, profiling, ...", True),
        _c("status", "string", "granted or withdrawn (refine.consent_statuses)", True),
        _c("updated_at", "timestamp", "when it was given or withdrawn", True),
        _c("source", "string", "where it was given or withdrawn"),
    )),
    Input("products", PRODUCTS, "The product catalogue, the latest delivery per product.", (
        _c("product_id", "string", "product id", True),
        _c("name", "string", "label", True),
        _c("category", "string", "category code", True),
        _c("price", "double", "price incl. VAT", True),
        _c("sku", "string", "stock keeping unit"),
        _c("category_label", "string", "category label"),
        _c("brand", "string", "brand"),
        _c("created_on", "date", "listed since"),
    )),
)}
ROLES = tuple(INPUTS)


def inputs_markdown() -> str:
    """The canonical inputs as the docs' reference (a test keeps docs/bring-your-own-data.md
    equal to it)."""
    out = []
    for i in INPUTS.values():
        out += [f"### `{i.role}` -> `{i.table}`", "", i.doc, ""]
        if i.one_of:
            out += ["At least one of each group: " + "; ".join(
                ", ".join(f"`{c}`" for c in group) for group in i.one_of) + ".", ""]
        out += ["| column | kind | required | meaning |", "|---|---|---|---|"]
        out += [f"| `{c.name}` | {c.kind} | {'yes' if c.required else ''} | {c.doc} |"
                for c in i.columns]
        out.append("")
    return "\n".join(out)
