"""``seglake demo generate``: the demo world, rendered to daily landing files plus ground truth.

Landing files go under the landing root, one file per source and day; the ground truth
(persons, CRM record owners, a label for every landing line, held-back future orders and a
manifest) goes under the truth root. Same seed, scale and start: byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from seglake import __version__
from seglake.demo import anomalies, behaviour, population
from seglake.demo.archetypes import archetype_names
from seglake.demo.draws import hex16, literal_array
from seglake.demo.files import Storage
from seglake.demo.landing import SOURCES, french_decimal, render
from seglake.demo.world import World

log = logging.getLogger(__name__)

# name -> (persons, default days); 90 days make the sizes the design names (medium ≈ 10M
# events, large ≈ 100M): at 365 days medium was 40.5M events, 46M landing rows
SCALES: dict[str, tuple[int, int]] = {
    "small": (2_000, 90),
    "medium": (100_000, 90),
    "large": (1_000_000, 90),
}
DEFAULT_START = dt.date(2025, 9, 1)


class DemoError(ValueError):
    """Bad generator input, or a landing root that holds another demo world."""


@dataclass(frozen=True)
class DemoSpec:
    """Everything that defines a demo world and its observation window."""

    persons: int
    days: int
    seed: int = 42
    start: dt.date = DEFAULT_START
    future_days: int = 60
    bad_row_rate: float = 0.005
    cross_system_rate: float = 0.30
    duplicate_rate: float = 0.06
    # a tracking outage: "FIRST:LAST=SHARE" (dates): the app loses SHARE of its events on
    # those days; landing files only, the world is unchanged (not part of world_key)
    outage: str = ""
    bot_rate: float = 0.005        # bots per person (web crawlers, scrapers, monitors)
    outlier_rate: float = 0.02     # persons with an account who buy in bulk (resellers)

    @property
    def bots(self) -> int:
        return round(self.persons * self.bot_rate)

    def world_key(self) -> dict[str, Any]:
        """What must match for two runs to describe the same world (days may grow)."""
        return {"persons": self.persons, "seed": self.seed, "start": self.start.isoformat(),
                "bad_row_rate": self.bad_row_rate, "cross_system_rate": self.cross_system_rate,
                "duplicate_rate": self.duplicate_rate, "bot_rate": self.bot_rate,
                "outlier_rate": self.outlier_rate}

    def validate(self) -> DemoSpec:
        problems = []
        if self.persons < 10:
            problems.append(f"persons must be at least 10 (got {self.persons})")
        if self.persons > 25_000_000:
            problems.append(f"persons must be at most 25,000,000 (got {self.persons})")
        if not 1 <= self.days <= 3_650:
            problems.append(f"days must be between 1 and 3650 (got {self.days})")
        if not 0 <= self.future_days <= 730:
            problems.append(f"future days must be between 0 and 730 (got {self.future_days})")
        if self.outage:
            try:
                first, last, share = parse_outage(self.outage)
            except ValueError as exc:
                problems.append(str(exc))
            else:
                end = self.start + dt.timedelta(days=self.days - 1)
                if not self.start <= first <= last <= end or not 0.0 < share <= 1.0:
                    problems.append(f"outage {self.outage!r} must lie within {self.start}.."
                                    f"{end} with a share in (0, 1]")
        for name in ("bad_row_rate", "cross_system_rate", "duplicate_rate"):
            if not 0.0 <= getattr(self, name) <= 0.5:
                problems.append(f"{name} must be between 0 and 0.5 (got {getattr(self, name)})")
        for name in ("bot_rate", "outlier_rate"):
            if not 0.0 <= getattr(self, name) <= 0.05:
                problems.append(f"{name} must be between 0 and 0.05 (got "
                                f"{getattr(self, name)})")
        if problems:
            raise DemoError("; ".join(problems))
        return self


def parse_outage(text: str) -> tuple[dt.date, dt.date, float]:
    """``FIRST[:LAST][=SHARE]`` (dates; share lost, default 0.7) -> (first, last, share)."""
    days, _, share = text.partition("=")
    first, _, last = days.partition(":")
    try:
        return (dt.date.fromisoformat(first), dt.date.fromisoformat(last or first),
                float(share) if share else 0.7)
    except ValueError:
        raise ValueError(f"outage {text!r}: give FIRST[:LAST][=SHARE], dates as YYYY-MM-DD and "
                         "the share of the app's events lost (default 0.7)") from None


def resolve_scale(scale: str | int, days: int | None = None, **options: Any) -> DemoSpec:
    """``small``/``medium``/``large`` or a number of customers -> a validated spec."""
    text = str(scale).strip().lower().replace("_", "")
    if text in SCALES:
        persons, default_days = SCALES[text]
    elif text.isdigit():
        persons, default_days = int(text), 90
    else:
        raise DemoError(f"unknown scale {scale!r}: use small, medium, large or a number of "
                        "customers")
    options = {k: v for k, v in options.items() if v is not None}
    return DemoSpec(persons=persons, days=default_days if days is None else days,
                    **options).validate()


# ------------------------------------------------------------------------------- records

def _hex_id(prefix: str, *parts: Column) -> Column:
    return F.concat(F.lit(prefix), F.lower(hex16(F.xxhash64(*parts))))


def _uuid(key: Column, salt: str) -> Column:
    a = F.lower(hex16(F.xxhash64(F.lit(salt + ":a"), key)))
    b = F.lower(hex16(F.xxhash64(F.lit(salt + ":b"), key)))
    return F.concat_ws("-", F.substring(a, 1, 8), F.substring(a, 9, 4),
                       F.concat(F.lit("4"), F.substring(a, 14, 3)),
                       F.concat(F.lit("a"), F.substring(b, 2, 3)), F.substring(b, 5, 12))


def _moment(world: World) -> list[Column]:
    """Local batch day and UTC timestamp from (day, seconds)."""
    day, seconds = F.col("day"), F.col("seconds")
    return [(day + F.floor(seconds / 86_400)).cast("int").alias("batch_day"),
            world.utc_timestamp(day, seconds).alias("_ts")]


def _event_records(world: World, events: DataFrame, channel: str) -> DataFrame:
    df = events.where(F.col("channel") == channel)
    key = F.col("session_key")
    t = F.col("event_type")
    event_id = _uuid(F.xxhash64(key, F.col("pos")), f"{world.seed}:event")
    common = [*_moment(world), event_id.alias("record_id"), "person_id",
              event_id.alias("event_id"), "event_type", "user_id", "product_id", "category",
              "search_query", "order_id", "utm_source", "utm_medium", "utm_campaign",
              "duration_s"]
    if channel == "web":
        page = F.when(t == "login", "/connexion") \
            .when(t.isin("product_view", "add_to_cart"),
                  F.concat(F.lit("/p/"), F.col("product_id"))) \
            .when(t == "remove_from_cart", "/panier") \
            .when(t == "checkout_start", "/commande") \
            .when(t == "purchase", "/commande/confirmation") \
            .when(t == "search", F.concat(F.lit("/recherche?q="),
                                          F.regexp_replace("search_query", " ", "+"))) \
            .when((F.col("pos") == 0) & (F.col("utm_medium").isNull()), "/") \
            .otherwise(F.concat(F.lit("/c/"), F.col("category")))
        return df.select(*common, F.col("client_id").alias("cookie_id"),
                         _hex_id("s.", F.lit(world.seed), key).alias("session_id"),
                         page.alias("page"), "device")
    screen = F.when(t == "login", "login").when(t == "product_view", "product") \
        .when(t == "add_to_cart", "product").when(t == "remove_from_cart", "cart") \
        .when(t == "checkout_start", "checkout").when(t == "purchase", "order_confirmation") \
        .when(t == "search", "search").when(F.col("pos") == 0, "home").otherwise("category")
    versions = ["4.12.0", "4.13.1", "5.0.0", "5.1.2", "5.2.0", "5.3.1", "5.4.0", "5.5.2"]
    version = F.element_at(literal_array(versions),
                           F.least(F.floor(F.col("day") / 45), F.lit(len(versions) - 1))
                           .cast("int") + 1)
    late = world.draws.uniform("late", key, F.col("pos"))
    records = df.select(*common, F.col("client_id").alias("device_id"),
                        _uuid(key, f"{world.seed}:app_session").alias("session_id"),
                        screen.alias("screen"), F.col("device").alias("os"),
                        version.alias("app_version"), late.alias("_late"))
    # phones offline: about 1% of app events arrive with a later day's batch
    return records.withColumn("batch_day", F.col("batch_day") + F.when(
        F.col("_late") < 0.007, 1).when(F.col("_late") < 0.01, 2).otherwise(0)).drop("_late")


def _order_records(world: World, orders: DataFrame) -> DataFrame:
    return orders.select(
        *_moment(world), F.col("order_id").alias("record_id"), "person_id", "order_id",
        "customer_ref", "channel", "store_id", "status", F.lit("EUR").alias("currency"), "lines",
        "discount", "coupon_code", "shipping_fee")


def _email_records(world: World, emails: DataFrame) -> DataFrame:
    return emails.select(*_moment(world), F.col("event_id").alias("record_id"), "person_id",
                         "event_id", "campaign_id", "campaign_name", "email", "event", "url",
                         "bounce_type")


def _crm_records(world: World, crm: DataFrame, persons: DataFrame, system: str) -> DataFrame:
    df = crm.where(F.col("system") == system)
    moment = [F.greatest(F.col("created_day"), F.lit(0)).alias("batch_day"),
              world.utc_timestamp(F.col("created_day"), F.col("created_seconds")).alias("_ts")]
    base = [*moment, F.col("crm_id").alias("record_id"), "person_id"]
    if system == "eshop":
        optin = persons.select("person_id", "email_optin")
        df = df.join(optin, "person_id")
        civility = F.when(world.draws.bernoulli(0.05, "no_civ", F.col("crm_id")), None) \
            .when(F.col("gender") == "F", "Mme").otherwise("M.")
        return df.select(
            *base, F.col("crm_id").alias("id_client"), civility.alias("civilite"),
            F.col("first_name").alias("prenom"), F.col("last_name").alias("nom"), "email",
            F.col("phone").alias("telephone"),
            F.date_format("birth_date", "dd/MM/yyyy").alias("date_naissance"),
            F.col("address").alias("adresse"), F.col("postcode").alias("code_postal"),
            F.col("city").alias("ville"),
            F.when(F.col("email_optin") & (F.col("slot") == 0), "oui").otherwise("non")
            .alias("optin_email"))
    spend = persons.select(
        "person_id", F.round(F.exp(0.8 * world.draws.normal("spend", F.col("person_id")))
                             * (30 + 4000 * F.col("p_store_orders_per_week")
                                + 600 * F.col("p_cart_prob") * F.col("p_purchase_prob")), 2)
        .alias("spend"))
    df = df.join(spend, "person_id")
    return df.select(
        *base, F.col("crm_id").alias("num_carte"), F.col("last_name").alias("nom"),
        F.col("first_name").alias("prenom"), "email", F.col("phone").alias("tel_mobile"),
        F.date_format("birth_date", "dd/MM/yyyy").alias("date_naiss"),
        F.col("address").alias("adresse_1"), F.col("postcode").alias("cp"),
        F.upper(population.fold_accents(F.col("city"))).alias("ville"),
        F.floor(F.col("spend")).cast("string").alias("points"),
        french_decimal(F.col("spend")).alias("ca_cumule"),
        F.concat(F.lit("MAG-"), F.substring("postcode", 1, 2), F.lit("01")).alias("magasin"))


def _consent_records(world: World, consents: DataFrame) -> DataFrame:
    return consents.select(
        F.greatest(F.col("day") + F.floor(F.col("seconds") / 86_400), F.lit(0)).cast("int")
        .alias("batch_day"), world.utc_timestamp(F.col("day"), F.col("seconds")).alias("_ts"),
        F.col("consent_id").alias("record_id"), "person_id", "consent_id", "email", "purpose",
        "status", "source")


def _product_records(world: World, spark: SparkSession) -> DataFrame:
    rows = [(p.product_id, p.sku, p.name, p.category, p.category_label, p.brand, p.price,
             p.created) for p in world.products]
    df = spark.createDataFrame(rows, "id_produit STRING, sku STRING, libelle STRING, "
                                     "categorie STRING, libelle_categorie STRING, marque STRING, "
                                     "price DOUBLE, created STRING")
    return df.select(F.lit(0).alias("batch_day"),
                     F.to_utc_timestamp(F.col("created").cast("timestamp"), "Europe/Paris")
                     .alias("_ts"),
                     F.col("id_produit").alias("record_id"),
                     F.lit(None).cast("long").alias("person_id"), "id_produit", "sku", "libelle",
                     "categorie", "libelle_categorie", "marque",
                     french_decimal(F.col("price")).alias("prix_ttc"))


# ------------------------------------------------------------------------------- driver

@dataclass
class DemoResult:
    spec: DemoSpec
    landing_files: int
    rows: dict[str, int]
    bad_rows: dict[str, int]
    seconds: float

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def generate(spark: SparkSession, spec: DemoSpec, landing_root: str, truth_root: str,
             clean: bool = False) -> DemoResult:
    """Generate the demo world of ``spec`` into the landing and truth roots."""
    spec.validate()
    started = time.monotonic()
    storage = Storage(spark)
    _check_roots(storage, spec, landing_root, truth_root, clean)
    world = World(spec.seed, spec.start, spec.days, spec.future_days)
    end = spec.start + dt.timedelta(days=spec.days - 1)
    log.info("demo world: %d persons, seed %d, %s..%s (+%d held-back days)", spec.persons,
             spec.seed, spec.start, end, spec.future_days)

    def step(name: str, df: DataFrame) -> DataFrame:
        t = time.monotonic()
        df = df.persist()
        log.info("%s: %d rows (%.1f s)", name, df.count(), time.monotonic() - t)
        return df

    persons = step("persons", population.persons(
        spark, world.draws, spec.persons, spec.cross_system_rate, spec.duplicate_rate)
        .withColumn("bulk", anomalies.bulk_units(world, spec.outlier_rate)))
    bots = anomalies.bots(spark, world, spec.bots)
    crm = step("CRM records", population.crm_records(persons, world.draws))
    emails = step("email events", behaviour.email_events(world, persons))
    offers = campaign_offers(storage, truth_root)
    sessions = step("visits", behaviour.sessions(world, persons, behaviour.email_clicks(emails),
                                                 offers))
    events = behaviour.events(world, sessions).unionByName(anomalies.bot_events(world, bots))
    orders = step("orders", behaviour.orders(world, sessions))
    consents = behaviour.consents(world, persons, emails)

    observed = (F.col("batch_day") >= 0) & (F.col("batch_day") < spec.days)
    if spec.outage:  # the app's tracking loses part of its events on those days
        first, last, share = parse_outage(spec.outage)
        lost = F.col("batch_day").between((first - spec.start).days, (last - spec.start).days) \
            & (world.draws.uniform("outage", F.col("record_id")) < share)
        log.info("demo world: the app loses %.0f%% of its events from %s to %s", share * 100,
                 first, last)
    records: dict[str, DataFrame] = {
        "web_events": _event_records(world, events, "web"),
        "app_events": _event_records(world, events, "app")
        .where(~lost if spec.outage else F.lit(True)),
        "orders": _order_records(world, orders),
        "email_events": _email_records(world, emails),
        "crm_eshop": _crm_records(world, crm, persons, "eshop"),
        "crm_loyalty": _crm_records(world, crm, persons, "loyalty"),
        "consents": _consent_records(world, consents),
        "products": _product_records(world, spark),
    }
    work = f"{landing_root.rstrip('/')}/_generating-{uuid.uuid4().hex[:8]}"
    rendered_path = f"{work}/rendered"
    for name, df in records.items():
        source = SOURCES[name]
        lines = render(source, df.where(observed), world.draws, spec.bad_row_rate)
        t = time.monotonic()
        lines.withColumn("source", F.lit(name)).write.mode("append") \
            .partitionBy("source").parquet(rendered_path)
        log.info("rendered %s (%.1f s)", name, time.monotonic() - t)
    rendered = spark.read.parquet(rendered_path)

    lines = rendered.select(F.col("source").alias("folder"), "batch_day", "line", "text")
    for name, source in SOURCES.items():
        if source.kind == "csv":  # a header line opens every day's file
            lines = lines.unionByName(spark.range(1 if name == "products" else spec.days).select(
                F.lit(name).alias("folder"), F.col("id").cast("int").alias("batch_day"),
                F.lit(0).alias("line"), F.lit(source.header).alias("text")))
    t = time.monotonic()
    files = storage.write_daily_files(lines, f"{work}/files", landing_root,
                                      lambda name, d: SOURCES[name].file_name(world.day(d)))
    log.info("wrote %d daily files (%.1f s)", files, time.monotonic() - t)

    _write_truth(world, spec, persons, crm, orders, rendered, truth_root)
    anomalies.flagged_truth(bots, persons).write.mode("overwrite").parquet(
        f"{truth_root}/flagged")
    if offers is not None:
        _write_campaign_truth(world, orders, behaviour.offer_chances(offers, persons),
                              truth_root)
    counts = rendered.groupBy("source").agg(
        F.count("*").alias("rows"), F.count("defect").alias("bad")).collect()
    result = DemoResult(spec, files, {r["source"]: r["rows"] for r in counts},
                        {r["source"]: r["bad"] for r in counts}, time.monotonic() - started)
    _write_manifest(storage, truth_root, spec, result)
    storage.delete(work)
    for df in (persons, crm, emails, sessions, orders):
        df.unpersist()
    return result


def _write_truth(world: World, spec: DemoSpec, persons: DataFrame, crm: DataFrame,
                 orders: DataFrame, rendered: DataFrame, truth_root: str) -> None:
    names = archetype_names()
    arch = literal_array(names)
    persons.select(
        "person_id", F.element_at(arch, F.col("archetype") + 1).alias("archetype"),
        F.when(F.col("archetype2").isNotNull(), F.element_at(arch, F.col("archetype2") + 1))
        .alias("archetype2"), "mix_weight",
        "has_account", "home_system", world.date(F.col("signup_day")).alias("signup_date"),
        world.date(F.col("churn_day")).alias("churn_date"), "email_optin", "gender",
        "first_name", "last_name", "birth_date", "email", "phone", "street",
        "address_complement", "postcode", "city", "eshop_id", "eshop_dup_id", "loyalty_id",
    ).write.mode("overwrite").parquet(f"{truth_root}/persons")
    delivered = rendered.where(F.col("source").isin("crm_eshop", "crm_loyalty")) \
        .select(F.col("record_id").alias("crm_id")).distinct()
    crm.join(delivered, "crm_id").select(
        "crm_id", "system", "person_id", "slot", "variants", "first_name", "last_name", "email",
        "phone", "birth_date", "address", "postcode", "city",
    ).write.mode("overwrite").parquet(f"{truth_root}/crm_records")
    date = world.date(F.col("batch_day"))
    file_name = F.coalesce(*[F.when(F.col("source") == name, F.concat(
        F.lit(f"{name}/"), source.file_column(date))) for name, source in SOURCES.items()])
    is_csv = F.col("source").isin(*[n for n, s in SOURCES.items() if s.kind == "csv"])
    header = F.when(is_csv, 1).otherwise(0)
    rendered.select("source", file_name.alias("file"), (F.col("line") + header).alias("line"),
                    "record_id", "person_id", "defect", "detail") \
        .write.mode("overwrite").parquet(f"{truth_root}/landing_rows")
    future = (F.col("day") >= spec.days) & (F.col("day") < world.horizon)
    orders.where(future).select(
        "person_id", "order_id", world.date(F.col("day")).alias("order_date"),
        world.utc_timestamp(F.col("day"), F.col("seconds")).alias("ordered_at"), "channel",
        "status", F.round(F.col("subtotal") - F.col("discount"), 2).alias("amount"),
        F.aggregate("lines", F.lit(0), lambda acc, x: acc + x["quantity"]).alias("items"),
    ).write.mode("overwrite").parquet(f"{truth_root}/future_orders")


CAMPAIGNS = "campaigns"  # under the truth root: who each activation campaign reached


def campaign_offers(storage: Storage, truth_root: str) -> DataFrame | None:
    """The persons earlier activation campaigns reached (``seglake demo campaign``), so that
    every later generation of the world replays them; None before any."""
    path = f"{truth_root.rstrip('/')}/{CAMPAIGNS}/reached"
    if not storage.list(path):
        return None
    return storage.spark.read.parquet(path).select(
        "person_id", "campaign", "activation_day", "window_days", "effect")


def _write_campaign_truth(world: World, orders: DataFrame, offers: DataFrame,
                          truth_root: str) -> None:
    """Every order of a reached person in its campaign's window, the offer's own marked: what
    the campaign changed, person by person (``seglake.demo.campaign.true_lift``); and each
    reached person's chance of taking the offer (``true_uplift``)."""
    root = f"{truth_root.rstrip('/')}/{CAMPAIGNS}"
    offers.select("campaign", "person_id", "chance").write.mode("overwrite") \
        .parquet(f"{root}/chances")
    windows = offers.select("person_id", "campaign", "activation_day", "window_days")
    in_window = (F.col("day") >= F.col("activation_day")) \
        & (F.col("day") < F.col("activation_day") + F.col("window_days"))
    orders.join(windows, "person_id").where(in_window).select(
        "campaign", "person_id", "order_id", world.date(F.col("day")).alias("order_date"),
        "status", F.round(F.col("subtotal") - F.col("discount"), 2).alias("amount"),
        F.coalesce(F.col("campaign_id") == F.col("campaign"), F.lit(False)).alias("offer"),
    ).write.mode("overwrite").parquet(f"{root}/orders")


def _write_manifest(storage: Storage, truth_root: str, spec: DemoSpec,
                    result: DemoResult) -> None:
    spec_dict = {k: (v.isoformat() if isinstance(v, dt.date) else v)
                 for k, v in asdict(spec).items()}
    manifest = {
        "generator": f"seglake {__version__}",
        "spec": spec_dict,
        "world": spec.world_key(),
        "observed": {"first_day": spec.start.isoformat(),
                     "last_day": (spec.start + dt.timedelta(days=spec.days - 1)).isoformat()},
        "held_back": {"first_day": (spec.start + dt.timedelta(days=spec.days)).isoformat(),
                      "last_day": (spec.start + dt.timedelta(
                          days=spec.days + spec.future_days - 1)).isoformat()},
        "landing_files": result.landing_files,
        "rows": dict(sorted(result.rows.items())),
        "bad_rows": dict(sorted(result.bad_rows.items())),
    }
    storage.write_text(f"{truth_root}/manifest.json", json.dumps(manifest, indent=2) + "\n")


def generated_days(spark: SparkSession, spec: DemoSpec, truth_root: str) -> int | None:
    """Days the truth root already holds of the world of ``spec`` (None: none, or another)."""
    text = Storage(spark).read_text(f"{truth_root.rstrip('/')}/manifest.json")
    if text is None:
        return None
    previous = json.loads(text)
    return previous["spec"]["days"] if previous.get("world") == spec.world_key() else None


def _check_roots(storage: Storage, spec: DemoSpec, landing_root: str, truth_root: str,
                 clean: bool) -> None:
    """Refuse to mix two worlds in one landing root; tidy what an interrupted run left."""
    if clean:
        storage.delete(landing_root)
        storage.delete(truth_root)
        return
    for leftover in storage.list(landing_root, prefix="_generating-"):
        storage.delete(leftover)
    text = storage.read_text(f"{truth_root}/manifest.json")
    if text is None:
        if storage.list(landing_root):
            raise DemoError(f"landing root {landing_root} is not empty and holds no demo "
                            f"manifest in {truth_root}; pass --clean to replace its contents")
        return
    previous = json.loads(text)
    if previous.get("world") != spec.world_key():
        raise DemoError(
            f"{landing_root} holds another demo world ({previous.get('world')}); generating "
            f"{spec.world_key()} there would mix the two. Pass --clean to replace it")
    if previous["spec"]["days"] > spec.days:
        raise DemoError(
            f"{landing_root} already holds {previous['spec']['days']} days of this world; "
            f"generating fewer ({spec.days}) would leave truth and files out of step. Pass "
            "--clean to start over")

