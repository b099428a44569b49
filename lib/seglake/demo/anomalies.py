"""Bots and outlier customers in the demo world, with their truth.

Real traffic holds crawlers, scrapers and uptime monitors, and real order books a few bulk
buyers (resellers); models fitted on them learn their extremes. The generator adds both so that
``gold.customer_flags`` has something to find: bots as web visitors (``person_id`` below 0, no
account), resellers as ordinary persons whose order lines carry tens of units.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from seglake.demo.behaviour import category_of, product_id
from seglake.demo.catalogue import PRODUCTS_PER_CATEGORY
from seglake.demo.draws import hex16, index_below, pick
from seglake.demo.vocabulary import CATEGORIES
from seglake.demo.world import World

# kind -> (share of bots, events per session: low, spread; seconds between events, sessions
# per active day); a crawler reads category pages and searches, a scraper product pages, a
# monitor polls the home page; crawlers and scrapers drop their cookie every day
BOT_KINDS: dict[str, tuple[float, int, int, float, int]] = {
    "crawler": (0.4, 30, 40, 9.0, 1),
    "scraper": (0.3, 40, 40, 5.0, 1),
    "monitor": (0.3, 14, 8, 60.0, 2),
}
BOT_START_SPAN = 120   # a bot starts on a day drawn in [0, this): independent of --days
BOT_LIFE = (15, 45)    # active days: low, spread
BULK_UNITS = (10, 30)  # a reseller's line quantity is multiplied by low + [0, spread)


def bots(spark: SparkSession, world: World, count: int) -> DataFrame:
    """``person_id`` (negative), ``behaviour`` of each bot."""
    kinds = list(BOT_KINDS)
    bot = -(F.col("id") + 1)
    return spark.range(count).select(
        bot.alias("person_id"),
        pick(kinds, index_below(world.draws.uniform("bot_kind", bot),
                                [BOT_KINDS[k][0] for k in kinds])).alias("behaviour"))


def bot_events(world: World, bots_df: DataFrame) -> DataFrame:
    """Web events of every bot, in the columns ``behaviour.events`` gives persons' events."""
    draws = world.draws
    pid = F.col("person_id")
    kind = F.col("behaviour")

    def by_kind(i: int) -> Column:
        return F.coalesce(*[F.when(kind == k, F.lit(v[i])) for k, v in BOT_KINDS.items()])

    start = F.floor(draws.uniform("bot_start", pid) * BOT_START_SPAN).cast("int")
    life = (BOT_LIFE[0] + F.floor(draws.uniform("bot_life", pid) * BOT_LIFE[1])).cast("int")
    days = bots_df.select("*", F.explode(F.sequence(start, start + life - 1)).alias("day"))
    sessions = days.select("*", F.explode(F.sequence(F.lit(0), by_kind(4) - 1)).alias("slot"))
    key = draws.hash("bot_session", pid, F.col("day"), F.col("slot"))
    gap = by_kind(3) * (0.8 + 0.4 * draws.uniform("bot_gap", pid))
    sessions = sessions.select(
        "person_id", "behaviour", "day", key.alias("session_key"), gap.alias("gap"),
        (by_kind(1) + F.floor(draws.uniform("bot_events", key) * by_kind(2))).cast("int")
        .alias("n_events"),
        (draws.uniform("bot_at", key) * 0.9 * 86_400).alias("start"))
    df = sessions.select("*", F.posexplode(F.sequence(F.lit(0), F.col("n_events") - 1))
                         .alias("pos", "_p"))
    p, sk = F.col("pos"), F.col("session_key")
    index = F.floor(draws.uniform("bot_product", sk, p) * len(CATEGORIES)
                    * PRODUCTS_PER_CATEGORY).cast("int")
    search = (kind == "crawler") & (draws.uniform("bot_search", sk, p) < 0.25)
    event_type = F.when(kind == "scraper", "product_view").when(search, "search") \
        .otherwise("page_view")
    nouns = [noun.lower() for *_, ns in CATEGORIES for noun in ns]
    cookie_epoch = F.when(kind == "monitor", F.lit(0)).otherwise(F.col("day"))
    return df.select(
        "person_id", "session_key", F.lit("web").alias("channel"), "day", "pos",
        event_type.alias("event_type"), F.lit(None).cast("string").alias("user_id"),
        *[F.lit(None).cast("string").alias(c) for c in ("utm_source", "utm_medium",
                                                         "utm_campaign")],
        # clockwork: the same gap every time, a tenth of it in jitter
        (F.col("start") + p * F.col("gap") + draws.uniform("bot_jitter", sk, p) * 0.1
         * F.col("gap")).alias("seconds"),
        F.when(kind == "scraper", product_id(index)).alias("product_id"),
        F.when(kind == "crawler", category_of(index)).alias("category"),
        F.when(search, pick(nouns, F.floor(draws.uniform("bot_query", sk, p) * len(nouns))
                            .cast("int"))).alias("search_query"),
        F.lit(None).cast("string").alias("order_id"),
        F.lit(1).alias("duration_s"), F.lit("desktop").alias("device"),
        F.concat(F.lit("ck."), F.lower(hex16(draws.hash("bot_cookie", pid, cookie_epoch))))
        .alias("client_id"))


def bulk_units(world: World, rate: float) -> Column:
    """Per person: the multiplier of their order lines' quantities (1, or a reseller's tens of
    units); only persons with an account can be resellers."""
    pid = F.col("person_id")
    draws = world.draws
    return F.when(F.col("has_account") & draws.bernoulli(rate, "reseller", pid),
                  BULK_UNITS[0] + F.floor(draws.uniform("bulk", pid) * BULK_UNITS[1])) \
        .otherwise(1).cast("int")


def flagged_truth(bots_df: DataFrame, persons: DataFrame) -> DataFrame:
    """``person_id``, ``flag`` (bot/outlier), ``behaviour`` of every injected case."""
    return bots_df.select("person_id", F.lit("bot").alias("flag"), "behaviour").unionByName(
        persons.where(F.col("bulk") > 1).select(
            "person_id", F.lit("outlier").alias("flag"), F.lit("reseller").alias("behaviour")))
