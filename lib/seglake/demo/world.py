"""What every generator step shares: seed, observation window, calendar and catalogue."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pyspark.sql import Column
from pyspark.sql import functions as F

from seglake.demo.calendar import day_profile
from seglake.demo.catalogue import Product, catalogue
from seglake.demo.draws import Draws, pick

TIMEZONE = "Europe/Paris"


@dataclass
class World:
    seed: int
    start: dt.date
    days: int                 # observed days: their files go to the landing root
    future_days: int          # held-back days: only their purchases go to the truth root
    draws: Draws = field(init=False)
    products: list[Product] = field(init=False)
    profile: dict[str, list[float]] = field(init=False)

    def __post_init__(self) -> None:
        self.draws = Draws(self.seed)
        self.products = catalogue(self.seed)
        weeks = -(-self.horizon // 7)
        profile = day_profile(self.start, self.horizon)
        pad = weeks * 7 - self.horizon
        self.profile = {k: v + [0.0] * pad for k, v in profile.items()}

    @property
    def horizon(self) -> int:
        return self.days + self.future_days

    @property
    def weeks(self) -> int:
        return -(-self.horizon // 7)

    def daily(self, name: str, day: Column) -> Column:
        """Calendar value ``name`` (base, sale, gift) of a day index column."""
        return pick(self.profile[name], day)

    def local_timestamp(self, day: Column, seconds: Column) -> Column:
        """Wall-clock time in France of second ``seconds`` of day ``day`` (as a naive timestamp)."""
        epoch = int(dt.datetime.combine(self.start, dt.time()).replace(tzinfo=dt.UTC).timestamp())
        return F.timestamp_seconds(F.lit(epoch) + day.cast("long") * 86_400 + seconds)

    def utc_timestamp(self, day: Column, seconds: Column) -> Column:
        return F.to_utc_timestamp(self.local_timestamp(day, seconds), TIMEZONE)

    def day(self, index: int) -> dt.date:
        return self.start + dt.timedelta(days=index)

    def date(self, day: Column) -> Column:
        return F.date_add(F.lit(self.start.isoformat()).cast("date"), day.cast("int"))
