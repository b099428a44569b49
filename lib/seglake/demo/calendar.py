"""French retail calendar: weekly rhythm, soldes, Black Friday, Christmas, time of day.

Per-day intensities are computed once on the driver (a few hundred numbers) and shipped into
Spark expressions as literal arrays; behaviour then scales with them.
"""

from __future__ import annotations

import datetime as dt

# Monday..Sunday relative traffic of a French web shop (weekends and Sunday evening peak).
WEEKDAY_FACTORS = (0.95, 0.92, 0.97, 0.95, 1.0, 1.08, 1.18)
# Local hour-of-day weights, 0h..23h: lunch and evening peaks.
HOUR_WEIGHTS = (0.6, 0.3, 0.15, 0.1, 0.1, 0.2, 0.6, 1.4, 2.2, 2.6, 2.8, 3.0,
                3.8, 3.6, 3.0, 2.8, 2.8, 3.0, 3.6, 4.6, 5.4, 5.6, 4.4, 2.2)
STORE_HOUR_WEIGHTS = tuple(0.0 if h < 10 or h >= 19 else (1.5 if h in (12, 17, 18) else 1.0)
                           for h in range(24))


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def sale_intensity(day: dt.date) -> float:
    """0..1: winter soldes (from the 2nd Wednesday of January, 4 weeks), summer soldes (from
    the last Wednesday of June, 4 weeks), Black Friday week and Cyber Monday."""
    for start in (_nth_weekday(day.year, 1, 2, 2), _last_wednesday_of_june(day.year)):
        offset = (day - start).days
        if 0 <= offset < 28:
            return 1.0 if offset < 7 else 0.6 if offset < 14 else 0.35
    black_friday = _nth_weekday(day.year, 11, 3, 4) + dt.timedelta(days=1)
    offset = (day - black_friday).days
    if offset == 0:
        return 1.6
    if -4 <= offset <= 3:  # the week before, the weekend, Cyber Monday
        return 0.8
    return 0.0


def _last_wednesday_of_june(year: int) -> dt.date:
    last = dt.date(year, 6, 30)
    return last - dt.timedelta(days=(last.weekday() - 2) % 7)


def gift_intensity(day: dt.date) -> float:
    """0..1: the run-up to Christmas (strongest the week before), a little for Mother's Day."""
    if day.month == 12 and day.day <= 23:
        return 0.3 + 0.7 * day.day / 23
    if day.month == 11 and day.day >= 15:
        return 0.15
    mothers_day = _nth_weekday(day.year, 5, 6, 4)  # last Sunday of May (usual French date)
    if 0 <= (mothers_day - day).days < 10:
        return 0.3
    return 0.0


def christmas_lull(day: dt.date) -> float:
    return 0.55 if (day.month == 12 and day.day in (24, 25, 31)) or (day.month, day.day) == (1, 1) \
        else 1.0


def day_profile(start: dt.date, n_days: int) -> dict[str, list[float]]:
    """Per-day base, sale and gift intensities for days 0..n_days-1 after ``start``."""
    base, sale, gift = [], [], []
    for i in range(n_days):
        day = start + dt.timedelta(days=i)
        base.append(WEEKDAY_FACTORS[day.weekday()] * christmas_lull(day))
        sale.append(sale_intensity(day))
        gift.append(gift_intensity(day))
    return {"base": base, "sale": sale, "gift": gift}
