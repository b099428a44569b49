"""What demo customers do: visits (web, app, store), the events of each visit, orders, emails
and consents — every rate read from the person's archetype and the retail calendar.

Times are kept as (day index, local second of that day) until rendering, so a session that
crosses midnight lands in the next day's file as it would in a real export.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from seglake.demo.archetypes import ARCHETYPES
from seglake.demo.calendar import HOUR_WEIGHTS, STORE_HOUR_WEIGHTS, gift_intensity, sale_intensity
from seglake.demo.catalogue import PRODUCTS_PER_CATEGORY
from seglake.demo.draws import hex16, index_below, pick
from seglake.demo.population import pick_columns, signup_seconds
from seglake.demo.vocabulary import CATEGORIES, UTM_ORGANIC
from seglake.demo.world import World

SALE_ON = 0.35  # sale intensity from which products with a markdown are reduced


def _col(name: str) -> Column:
    return F.col(name)


# ------------------------------------------------------------------------------- visits

def _day_weight(world: World, day: Column) -> Column:
    """Relative activity of a person on a day: weekly rhythm x (1 + their seasonal uplifts)."""
    return world.daily("base", day) * (
        1 + _col("p_sale_sensitivity") * world.daily("sale", day)
        + _col("p_gift_sensitivity") * world.daily("gift", day))


def _decay(day: Column) -> Column:
    """Activity left after the archetype's decay (dormant customers fade), blended for mixtures."""
    def of(archetype: Column) -> Column:
        halflife = pick([float(a.decay_halflife_days) for a in ARCHETYPES], archetype)
        return F.when(halflife > 0, F.pow(F.lit(0.5), day / halflife)).otherwise(1.0)
    w = _col("mix_weight")
    return w * of(_col("archetype")) + (1 - w) * of(F.coalesce("archetype2", "archetype"))


def _weekly_visits(world: World, persons: DataFrame, rate: str, tag: str) -> DataFrame:
    """(person, week, day) rows for visits drawn per person-week: geometric counts, then the day
    within the week by that person's daily weights. Only persons active that day are kept."""
    draws = world.draws
    weeks = persons.sparkSession.range(world.weeks).select(F.col("id").cast("int").alias("week"))
    needed = ["person_id", "archetype", "archetype2", "mix_weight", "activity", "signup_day",
              "churn_day", "p_sale_sensitivity", "p_gift_sensitivity", "p_app_share", rate]
    df = persons.select(needed).crossJoin(weeks)
    # materialised: each weight is used several times below
    df = df.withColumns({f"_w{i}": _day_weight(world, _col("week") * 7 + i) for i in range(7)})
    df = df.withColumns({f"_c{i}": sum((_col(f"_w{j}") for j in range(1, i + 1)), _col("_w0"))
                         for i in range(7)})
    df = df.withColumn("_lam", _col(rate) / 7 * _col("activity") * _col("_c6")
                       * _decay(_col("week") * 7 + 3))
    df = df.withColumn("_n", draws.geometric(_col("_lam"), tag, _col("person_id"), _col("week")))
    # explode rather than filter on _n: a filter would be pushed below the join with every
    # expression above inlined into it
    df = df.select("*", F.posexplode(F.array_repeat(F.lit(0), _col("_n"))).alias("slot", "_z"))
    df = df.withColumn("_u", draws.uniform(tag + ":day", _col("person_id"), _col("week"),
                                           _col("slot")) * _col("_c6"))
    offset = sum((F.when(_col("_u") >= _col(f"_c{i}"), 1).otherwise(0) for i in range(6)),
                 F.lit(0))
    df = df.withColumn("day", (_col("week") * 7 + offset).cast("int"))
    active = (_col("day") < world.horizon) & (_col("day") < _col("churn_day")) & (
        _col("signup_day").isNull() | (_col("day") >= _col("signup_day") - 14))
    return df.where(active).select("person_id", "week", "slot", "day", "p_app_share")


def offer_chances(offers: DataFrame, persons: DataFrame) -> DataFrame:
    """``offers`` with each reached person's ``chance`` of taking the offer: the segment's
    ``effect`` scaled by how much the person reads email (twice its open rate, at most 1), as
    the offer goes out by email. The effect differs from person to person, which is what an
    uplift model has to find."""
    return offers.join(persons.select("person_id", "p_open_rate"), "person_id").withColumn(
        "chance", _col("effect") * F.least(F.lit(1.0), 2 * _col("p_open_rate")))


def offer_visits(world: World, offers: DataFrame) -> DataFrame:
    """Store visits an activation campaign caused: each reached person (``offers``: person_id,
    campaign, activation_day, window_days, chance) buys once in the window with probability
    ``chance`` (a drive-to-store offer: ``campaign_id`` names the campaign)."""
    draws = world.draws
    pid, camp = _col("person_id"), _col("campaign")
    took = offers.where(draws.bernoulli(_col("chance"), "offer", pid, camp))
    return took.select(
        "person_id", draws.hash("offer_visit", pid, camp).alias("session_key"),
        F.lit("store").alias("channel"),
        (_col("activation_day") + F.floor(draws.uniform("offer_day", pid, camp)
                                          * _col("window_days"))).cast("int").alias("day"),
        _seconds_of_day(draws.uniform("o_hour", pid, camp), draws.uniform("o_minute", pid, camp),
                        STORE_HOUR_WEIGHTS).alias("seconds"),
        *[F.lit(None).cast("string").alias(c) for c in ("utm_source", "utm_medium",
                                                          "utm_campaign")],
        camp.alias("campaign_id"))


def sessions(world: World, persons: DataFrame, email_clicks: DataFrame,
             offers: DataFrame | None = None) -> DataFrame:
    """Every visit: organic web/app sessions, sessions opened from an email click, and store
    visits (which only produce orders), those of activation offers included."""
    draws = world.draws
    pid = _col("person_id")
    organic = _weekly_visits(world, persons, "p_visits_per_week", "visits")
    organic = organic.select(
        "*",
        draws.hash("session", pid, _col("week"), _col("slot")).alias("session_key"),
        F.when(draws.uniform("app", pid, _col("week"), _col("slot")) < _col("p_app_share"), "app")
        .otherwise("web").alias("channel"),
        _seconds_of_day(draws.uniform("hour", pid, _col("week"), _col("slot")),
                        draws.uniform("minute", pid, _col("week"), _col("slot")),
                        HOUR_WEIGHTS).alias("seconds"),
        *_utm(draws.uniform("utm", pid, _col("week"), _col("slot"))),
        F.lit(None).cast("string").alias("campaign_id"))
    store = _weekly_visits(world, persons.where("has_account"), "p_store_orders_per_week",
                           "store")
    store = store.select(
        "*",
        draws.hash("store_visit", pid, _col("week"), _col("slot")).alias("session_key"),
        F.lit("store").alias("channel"),
        _seconds_of_day(draws.uniform("s_hour", pid, _col("week"), _col("slot")),
                        draws.uniform("s_minute", pid, _col("week"), _col("slot")),
                        STORE_HOUR_WEIGHTS).alias("seconds"),
        *[F.lit(None).cast("string").alias(c) for c in ("utm_source", "utm_medium",
                                                          "utm_campaign", "campaign_id")])
    # a Sunday store visit moves to Saturday (most French shops close on Sunday)
    sunday = F.dayofweek(world.date(_col("day"))) == 1
    store = store.withColumn("day", F.when(sunday, _col("day") - 1).otherwise(_col("day")))
    clicks = email_clicks.select(
        "*",
        draws.hash("email_visit", pid, _col("campaign_id")).alias("session_key"),
        F.when(draws.uniform("e_app", pid, _col("campaign_id")) < 0.3, "app").otherwise("web")
        .alias("channel"),
        F.lit("newsletter").alias("utm_source"), F.lit("email").alias("utm_medium"),
        F.lower(_col("campaign_id")).alias("utm_campaign"))
    columns = ["person_id", "session_key", "channel", "day", "seconds", "utm_source",
               "utm_medium", "utm_campaign", "campaign_id"]
    visits = organic.select(columns).unionByName(store.select(columns)) \
        .unionByName(clicks.select(columns))
    if offers is not None:
        visits = visits.unionByName(offer_visits(world, offer_chances(offers, persons))
                                     .select(columns))
    return _session_plan(world, visits.join(persons, "person_id"))


def _seconds_of_day(u_hour: Column, u_minute: Column, hour_weights: tuple[float, ...]) -> Column:
    return (index_below(u_hour, hour_weights) * 3600 + F.floor(u_minute * 3600)).cast("double")


def _utm(u: Column) -> list[Column]:
    sources, mediums, campaigns, weights = zip(*UTM_ORGANIC, strict=True)
    index = index_below(u, weights)
    return [pick(list(sources), index).alias("utm_source"),
            pick(list(mediums), index).alias("utm_medium"),
            pick(list(campaigns), index).alias("utm_campaign")]


def _session_plan(world: World, df: DataFrame) -> DataFrame:
    """How each visit unfolds: browsing, cart, removals, login, checkout, purchase."""
    draws = world.draws
    key = _col("session_key")
    store = _col("channel") == "store"
    sale = world.daily("sale", _col("day"))
    can_login = _col("has_account") & (_col("day") >= _col("signup_day"))
    df = df.withColumn("_boost", 1 + 0.3 * _col("p_sale_sensitivity") * sale)
    boost = _col("_boost")
    df = df.withColumn("_browse", draws.geometric(_col("p_browse_events") - 1, "browse", key)) \
        .withColumn("_items", draws.geometric(F.when(store, F.lit(1.2))
                                              .otherwise(_col("p_cart_items") - 1), "items", key))
    carts = draws.bernoulli(F.least(_col("p_cart_prob") * boost, F.lit(0.95)), "cart", key)
    n_cart = F.when(store | carts, 1 + _col("_items")).otherwise(0)
    df = df.withColumn("n_browse", F.when(store, 0).otherwise(1 + _col("_browse"))) \
        .withColumn("n_cart", n_cart).drop("_browse", "_items")
    n_remove = F.when(~store & (_col("n_cart") >= 2) & draws.bernoulli(0.25, "remove", key), 1) \
        .otherwise(0)
    checkout = ~store & can_login & (_col("n_cart") > 0) & draws.bernoulli(
        F.least(_col("p_checkout_prob") * boost, F.lit(0.95)), "checkout", key)
    df = df.withColumn("n_remove", n_remove).withColumn("checkout", checkout)
    purchase = store | (_col("checkout") & draws.bernoulli(_col("p_purchase_prob"), "buy", key))
    login = ~store & can_login & (_col("checkout") | draws.bernoulli(_col("p_login_prob"),
                                                                      "login", key))
    before_checkout = _col("n_browse") + 2 * _col("n_cart") + _col("n_remove")
    login_at = F.when(draws.bernoulli(0.5, "login_first", key), 0).otherwise(
        F.floor(draws.uniform("login_at", key) * (before_checkout + 1))).cast("int")
    # the web/app login id: the e-shop account, a second account once it exists, or the
    # loyalty card for store-first customers without an e-shop account
    dup_days = F.element_at("record_days", 3)
    account = F.when(_col("eshop_dup_id").isNotNull() & (_col("day") >= dup_days)
                     & draws.bernoulli(0.5, "which_account", key), _col("eshop_dup_id")) \
        .when(_col("eshop_id").isNotNull() & (_col("day") >= _col("eshop_day")), _col("eshop_id")) \
        .otherwise(_col("loyalty_id"))
    return df.withColumn("purchase", purchase).withColumn("login", login & account.isNotNull()) \
        .withColumn("login_at", F.when(_col("login"), login_at)) \
        .withColumn("user_id", F.when(_col("login"), account)) \
        .withColumn("n_events", F.when(store, 0).otherwise(
            before_checkout + _col("login").cast("int") + _col("checkout").cast("int")
            + (_col("purchase") & ~store).cast("int")))


# ------------------------------------------------------------------------------- products

def product_index(world: World, key: Column, item: Column, tag: str) -> Column:
    """A product for item ``item`` of a visit: the person's favourite category or one their
    archetype likes, and a price rank skewed by their price tier."""
    draws = world.draws
    by_archetype = [index_below(draws.uniform(tag + ":cat", key, item), a.category_weights)
                    for a in ARCHETYPES]
    category = F.when(draws.uniform(tag + ":fav", key, item) < 0.4, _col("favourite_category")) \
        .otherwise(pick_columns(by_archetype, _col("archetype")))
    rank = F.floor(F.pow(draws.uniform(tag + ":rank", key, item), _col("p_price_tier"))
                   * PRODUCTS_PER_CATEGORY)
    return (category * PRODUCTS_PER_CATEGORY + rank).cast("int")


def product_id(index: Column) -> Column:
    return F.format_string("P%05d", index + 1)


def category_of(index: Column) -> Column:
    return pick([c[0] for c in CATEGORIES], F.floor(index / PRODUCTS_PER_CATEGORY).cast("int"))


def unit_price(world: World, index: Column, day: Column) -> Column:
    price = pick([p.price for p in world.products], index)
    markdown = pick([p.markdown for p in world.products], index)
    on_sale = world.daily("sale", day) >= SALE_ON
    return F.round(F.when(on_sale, price * (1 - markdown)).otherwise(price), 2)


# ------------------------------------------------------------------------------- events

EVENT_TYPES = ("page_view", "product_view", "search", "add_to_cart", "remove_from_cart",
               "checkout_start", "purchase", "login")


def events(world: World, sessions_df: DataFrame) -> DataFrame:
    """Web and app events of every visit, typed; identifiers as each channel records them."""
    draws = world.draws
    key = _col("session_key")
    df = sessions_df.where("n_events > 0").select(
        "*", F.posexplode(F.sequence(F.lit(0), _col("n_events") - 1)).alias("pos", "_p"))
    p = _col("pos")
    df = df.withColumn("_login", _col("login") & (p == _col("login_at"))) \
        .withColumn("q", p - F.when(_col("login") & (p > _col("login_at")), 1).otherwise(0)) \
        .withColumn("_cart_end", _col("n_browse") + 2 * _col("n_cart")) \
        .withColumn("_remove_end", _col("_cart_end") + _col("n_remove"))
    is_login, q = _col("_login"), _col("q")
    cart_end, remove_end = _col("_cart_end"), _col("_remove_end")
    in_cart = (q >= _col("n_browse")) & (q < cart_end)
    browse_kind = index_below(draws.uniform("browse_kind", key, p), (55, 25, 20))
    event_type = F.when(is_login, "login") \
        .when(q == 0, "page_view") \
        .when(q < _col("n_browse"), pick(["product_view", "page_view", "search"], browse_kind)) \
        .when(in_cart, F.when((q - _col("n_browse")) % 2 == 0, "product_view")
              .otherwise("add_to_cart")) \
        .when(q < remove_end, "remove_from_cart") \
        .when(_col("checkout") & (q == remove_end), "checkout_start") \
        .otherwise("purchase")
    # which product an event is about: cart item i (shared with the order lines) or, while
    # browsing, an item numbered 1000 + position
    item = F.when(is_login, None) \
        .when(in_cart, F.floor((q - _col("n_browse")) / 2)) \
        .when(q < _col("n_browse"), 1000 + p) \
        .when(q < remove_end, _col("n_cart") - 1 - (q - cart_end))
    df = df.withColumn("_item", item.cast("int"))
    index = F.when(_col("_item").isNotNull(), product_index(world, key, _col("_item"), "item"))
    df = df.withColumn("event_type", event_type).withColumn("_index", index)
    t = _col("event_type")
    has_product = t.isin("product_view", "add_to_cart", "remove_from_cart")
    browse_category = (t == "page_view") | (t == "search")
    category = F.when(has_product | browse_category, category_of(_col("_index")))
    gap = _col("p_event_gap_s")
    offset = p * gap + draws.uniform("gap", key, p) * 0.8 * gap
    nouns = [noun.lower() for *_, ns in CATEGORIES for noun in ns]
    query = pick(nouns, (F.floor(_col("_index") / PRODUCTS_PER_CATEGORY) * 10
                         + F.floor(draws.uniform("query", key, p) * 10)).cast("int"))
    return df.select(
        "person_id", "session_key", "channel", "day", "pos", "event_type", "user_id",
        "utm_source", "utm_medium", "utm_campaign",
        (_col("seconds") + offset).alias("seconds"),
        F.when(p >= F.coalesce(_col("login_at"), F.lit(1 << 30)), _col("user_id"))
        .alias("known_user_id"),
        F.when(has_product, product_id(_col("_index"))).alias("product_id"),
        category.alias("category"),
        F.when(t == "search", query).alias("search_query"),
        F.when(t == "purchase", order_id(key)).alias("order_id"),
        F.round(gap * (0.3 + 1.4 * draws.uniform("duration", key, p))).cast("int")
        .alias("duration_s"),
        _device(world).alias("device"),
    ).drop("user_id").withColumnRenamed("known_user_id", "user_id") \
        .withColumn("client_id", _client_id(world))


def order_id(key: Column) -> Column:
    return F.concat(F.lit("CMD-"), hex16(F.xxhash64(F.lit("order"), key)))


def _device(world: World) -> Column:
    """Web: the person's desktop, mobile or tablet; app: their phone's OS."""
    draws = world.draws
    pid = _col("person_id")
    os = F.when(draws.bernoulli(0.42, "ios", pid), "ios").otherwise("android")
    web = pick(["desktop", "mobile", "tablet"],
               index_below(draws.uniform("web_device", _col("session_key")), (45, 48, 7)))
    return F.when(_col("channel") == "app", os).otherwise(web)


def _client_id(world: World) -> Column:
    """Cookie (web) or device id (app). Cookies expire (30 days on mobile browsers, 90 on
    desktop), apps are reinstalled about yearly: the same person shows up under many ids."""
    draws = world.draws
    pid = _col("person_id")
    device = _col("device")
    life = F.when(device == "desktop", 90).when(device == "tablet", 60).otherwise(30)
    phase = F.floor(draws.uniform("cookie_phase", pid, device) * life)
    epoch = F.floor((_col("day") + phase) / life)
    cookie = F.concat(F.lit("ck."), F.lower(hex16(draws.hash("cookie", pid, device, epoch))))
    install = F.floor((_col("day") + F.floor(draws.uniform("install", pid) * 365)) / 365)
    raw = hex16(draws.hash("device", pid, install))
    raw2 = hex16(draws.hash("device2", pid, install))
    idfv = F.concat_ws("-", F.substring(raw, 1, 8), F.substring(raw, 9, 4),
                       F.substring(raw, 13, 4), F.substring(raw2, 1, 4), F.substring(raw2, 5, 12))
    android = F.lower(raw)
    return F.when(_col("channel") == "app", F.when(device == "ios", idfv).otherwise(android)) \
        .otherwise(cookie)


# ------------------------------------------------------------------------------- orders

def orders(world: World, sessions_df: DataFrame) -> DataFrame:
    """One order per purchasing visit (web, app, store), lines from the cart that survived."""
    draws = world.draws
    key = _col("session_key")
    df = sessions_df.where("purchase")
    n_lines = _col("n_cart") - _col("n_remove")
    qty_u = draws.uniform
    # a reseller's lines carry tens of units (seglake.demo.anomalies.bulk_units)
    bulk = _col("bulk") if "bulk" in df.columns else F.lit(1)

    def line(i: Column) -> Column:
        index = product_index(world, key, i, "item")
        quantity = (1 + F.when(qty_u("qty", key, i) < 0.15, 1).otherwise(0)
                    + F.when(qty_u("qty2", key, i) < 0.04, 1).otherwise(0)) * bulk
        return F.struct(product_id(index).alias("product_id"), quantity.alias("quantity"),
                        unit_price(world, index, _col("day")).alias("unit_price"))

    df = df.withColumn("lines", F.transform(F.sequence(F.lit(0), n_lines - 1), line))
    subtotal = F.aggregate("lines", F.lit(0.0),
                           lambda acc, x: acc + x["quantity"] * x["unit_price"])
    sale = world.daily("sale", _col("day"))
    uses_coupon = draws.bernoulli(F.least(_col("p_discount_use") * (1 + sale), F.lit(0.95)),
                                  "coupon", key)
    month = F.month(world.date(_col("day")))
    coupon = F.when(_col("campaign_id").isNotNull(), "NEWSLETTER10") \
        .when(sale >= 1.0, F.when(month == 11, "BLACKFRIDAY").otherwise("SOLDES20")) \
        .when(month == 12, "NOEL15") \
        .when(_col("day") - _col("signup_day") < 30, "BIENVENUE10") \
        .otherwise(pick(["FIDELITE5", "LIVRAISONOFFERTE"],
                        F.floor(draws.uniform("coupon_kind", key) * 2).cast("int")))
    rate = F.when(coupon == "SOLDES20", 0.2).when(coupon == "BLACKFRIDAY", 0.25) \
        .when(coupon == "NOEL15", 0.15).when(coupon == "FIDELITE5", 0.05) \
        .when(coupon == "LIVRAISONOFFERTE", 0.0).otherwise(0.10)
    store = _col("channel") == "store"
    status_u = draws.uniform("status", key)
    status = F.when(status_u < _col("p_cancel_rate"), "cancelled") \
        .when(status_u < _col("p_cancel_rate") + _col("p_return_rate"), "returned") \
        .otherwise("completed")
    by_email = draws.bernoulli(0.25, "ref_email", key)
    web_ref = F.when(by_email | _col("user_id").isNull(), _col("email")).otherwise(_col("user_id"))
    store_ref = F.when(_col("loyalty_id").isNotNull() & (_col("day") >= _col("loyalty_day"))
                       & ~draws.bernoulli(0.1, "no_card", key), _col("loyalty_id")) \
        .otherwise(_col("email"))
    gap = _col("p_event_gap_s")
    last = (_col("n_events") - 1).cast("int")
    purchase_offset = last * gap + draws.uniform("gap", key, last) * 0.8 * gap
    return df.select(
        "person_id", "session_key", "channel", "day", "lines", status.alias("status"),
        "campaign_id",
        order_id(key).alias("order_id"),
        F.when(store, store_ref).otherwise(web_ref).alias("customer_ref"),
        F.when(store, _col("seconds")).otherwise(_col("seconds") + purchase_offset)
        .alias("seconds"),
        F.when(uses_coupon & ~store, coupon).alias("coupon_code"),
        F.when(uses_coupon & ~store, F.round(subtotal * rate, 2)).otherwise(0.0)
        .alias("discount"),
        F.when(store | (subtotal >= 49), 0.0).otherwise(4.90).alias("shipping_fee"),
        F.when(store, F.concat(F.lit("MAG-"), F.substring(_col("postcode"), 1, 2), F.lit("01")))
        .alias("store_id"),
        F.round(subtotal, 2).alias("subtotal"))


# ------------------------------------------------------------------------------- email

@dataclass(frozen=True)
class Campaign:
    number: int
    day: int
    campaign_id: str
    name: str


def campaigns(world: World) -> list[Campaign]:
    """A newsletter every Thursday at 10:00, themed by the retail calendar."""
    first = (3 - world.start.weekday()) % 7
    routine = ("Nouveautés de la semaine", "Notre sélection du moment",
               "Les incontournables de la saison", "Offre fidélité : -5 € dès 50 € d'achat")
    result = []
    for number, day in enumerate(range(first, world.horizon, 7)):
        date = world.start + dt.timedelta(days=day)
        if sale_intensity(date) > 0:
            name = "Black Friday : -25 % sur tout le site" if date.month == 11 \
                else "Soldes : jusqu'à -50 %"
        elif date.month == 12 and gift_intensity(date) > 0:
            name = "Idées cadeaux de Noël"
        elif gift_intensity(date) > 0:
            name = "Fête des mères : nos idées cadeaux"
        else:
            name = routine[number % len(routine)]
        result.append(Campaign(number, day, f"NL-{date:%Y%m%d}", name))
    return result


def email_events(world: World, persons: DataFrame) -> DataFrame:
    """Platform events per send: sent, delivered or bounce, open, click, unsubscribe,
    complaint. Subscribers are those who opted in at sign-up, until they unsubscribe."""
    draws = world.draws
    spark: SparkSession = persons.sparkSession
    plan = campaigns(world)
    first_day = plan[0].day if plan else 0
    camp = spark.createDataFrame([(c.number, c.day, c.campaign_id, c.name) for c in plan],
                                 "number INT, campaign_day INT, campaign_id STRING, "
                                 "campaign_name STRING")
    pid = _col("person_id")
    subscribed_from = F.greatest(_col("signup_day"), F.lit(0))
    unsub_day = subscribed_from + (-F.log(1.0 - draws.uniform("unsub", pid))
                                   / _col("p_unsubscribe_per_year") * 365)
    subs = persons.where("has_account AND email_optin").withColumn(
        "unsub_number", F.ceil((unsub_day - first_day) / 7).cast("int"))
    sends = subs.crossJoin(F.broadcast(camp)).where(
        (_col("campaign_day") >= _col("signup_day")) & (_col("number") <= _col("unsub_number")))
    send = draws.hash("send", pid, _col("number"))
    unsubscribes = _col("number") == _col("unsub_number")
    sends = sends.where(unsubscribes | draws.bernoulli(0.6, "targeted", send)) \
        .withColumn("send_key", send)
    sk = _col("send_key")
    alive = F.when(_col("campaign_day") < _col("churn_day"), 1.0).otherwise(0.15)
    bounced = draws.bernoulli(0.02, "bounce", sk)
    opened = ~bounced & (unsubscribes | draws.bernoulli(_col("p_open_rate") * alive, "open", sk))
    clicked = opened & ~unsubscribes & draws.bernoulli(_col("p_click_rate"), "click", sk)
    complained = ~bounced & ~unsubscribes & draws.bernoulli(0.0008, "complaint", sk)
    sent_at = 10 * 3600 + F.floor(draws.uniform("sent_at", sk) * 1200)
    open_at = sent_at + 60 + F.least(-F.log(1.0 - draws.uniform("open_at", sk)) * 4 * 3600,
                                     F.lit(72 * 3600.0))
    after_open = open_at + 20 + draws.uniform("click_at", sk) * 600

    def event(name: str, when: Column, at: Column) -> Column:
        return F.when(when, F.struct(F.lit(name).alias("event"), at.cast("double").alias("at")))

    rows = F.filter(F.array(
        event("sent", F.lit(True), sent_at),
        event("delivered", ~bounced, sent_at + 2 + draws.uniform("dlv", sk) * 30),
        event("bounce", bounced, sent_at + 5 + draws.uniform("bnc", sk) * 60),
        event("open", opened, open_at),
        event("click", clicked, after_open),
        event("unsubscribe", unsubscribes & ~bounced, after_open),
        event("complaint", complained, sent_at + 3600 + draws.uniform("cpl", sk) * 86_400),
    ), lambda x: x.isNotNull())
    df = sends.select("person_id", "email", "campaign_id", "campaign_name", "send_key",
                      _col("campaign_day").alias("day"), F.explode(rows).alias("e"))
    return df.select(
        "person_id", "email", "campaign_id", "campaign_name", "day",
        _col("e.event").alias("event"), _col("e.at").alias("seconds"),
        F.when(_col("e.event") == "click", F.concat(
            F.lit("https://www.boutique-demo.fr/"),
            pick([c[0] for c in CATEGORIES], F.floor(draws.uniform("link", sk) * len(CATEGORIES))
                 .cast("int")),
            F.lit("?utm_source=newsletter&utm_medium=email&utm_campaign="),
            F.lower(_col("campaign_id")))).alias("url"),
        F.when(_col("e.event") == "bounce", "soft").alias("bounce_type"),
        F.lower(hex16(draws.hash("email_event", sk, _col("e.event"))))
        .alias("event_id"))


def email_clicks(emails: DataFrame) -> DataFrame:
    """Clicks open a visit a few seconds later (person, day, local second, campaign)."""
    return emails.where("event = 'click'").select(
        "person_id", "campaign_id",
        (_col("day") + F.floor((_col("seconds") + 5) / 86_400)).cast("int").alias("day"),
        ((_col("seconds") + 5) % 86_400).alias("seconds"))


def consents(world: World, persons: DataFrame, emails: DataFrame) -> DataFrame:
    """Marketing-email consent: granted at sign-up by those who opted in, withdrawn when they
    unsubscribe from a newsletter."""
    granted = persons.where("has_account AND email_optin").select(
        "person_id", "email", F.lit("granted").alias("status"),
        F.when(_col("home_system") == "eshop", "eshop_signup").otherwise("loyalty_signup")
        .alias("source"),
        _col("signup_day").alias("day"),
        (signup_seconds(world.draws, _col("person_id") * 4) + 5).alias("seconds"))
    withdrawn = emails.where("event = 'unsubscribe'").select(
        "person_id", "email", F.lit("withdrawn").alias("status"),
        F.lit("email_unsubscribe").alias("source"), "day", (_col("seconds") + 1).alias("seconds"))
    df = granted.unionByName(withdrawn)
    return df.withColumn("purpose", F.lit("marketing_email")).withColumn(
        "consent_id", F.concat(F.lit("CNS-"), hex16(world.draws.hash(
            "consent", _col("person_id"), _col("status"), _col("day")))))

