"""The latent behaviour of demo customers, as data: one row of parameters per archetype.

A person has a primary archetype and, for some, a secondary one blended in (mixtures); every
behaviour the generator draws reads its rate from here, so segments have something real to find.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from seglake.demo.vocabulary import CATEGORIES


@dataclass(frozen=True)
class Archetype:
    name: str
    share: float                 # share of the population
    has_account: float           # probability of a CRM account (else an anonymous visitor)
    store_first: float           # probability the home CRM system is the loyalty programme
    age_mean: float
    visits_per_week: float       # web + app sessions per week at a neutral time of year
    app_share: float             # share of sessions in the app
    sale_sensitivity: float      # extra activity per unit of soldes / Black Friday intensity
    gift_sensitivity: float      # extra activity per unit of Christmas intensity
    decay_halflife_days: float   # activity halves every this many days (0: no decay)
    churn_per_year: float        # hazard of stopping all activity
    browse_events: float         # mean browsing events per session (pages, views, searches)
    event_gap_s: float           # mean seconds between two events of a session
    cart_prob: float             # a session adds something to the cart
    cart_items: float            # mean items added when it does
    checkout_prob: float         # a cart goes to checkout
    purchase_prob: float         # a checkout ends in a purchase
    login_prob: float            # a session without checkout logs in anyway
    price_tier: float            # exponent on the price rank: < 1 buys dearer, > 1 cheaper
    discount_use: float          # an order uses a coupon
    return_rate: float           # an order is returned
    cancel_rate: float           # an order is cancelled
    store_orders_per_week: float
    email_optin: float           # marketing consent at sign-up
    open_rate: float             # a delivered email is opened
    click_rate: float            # an opened email is clicked
    unsubscribe_per_year: float
    category_weights: tuple[float, ...]  # over CATEGORIES, in order


def _weights(**by_slug: float) -> tuple[float, ...]:
    """Category preference vector; categories not named get a small base weight."""
    return tuple(by_slug.get(slug.replace("-", "_"), 1.0) for slug, *_ in CATEGORIES)


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("loyal_high_value", 0.12, 1.0, 0.45, 46, 1.6, 0.55, 0.3, 0.6, 0, 0.05,
              5, 45, 0.50, 2.3, 0.80, 0.92, 0.70, 0.5, 0.10, 0.05, 0.02, 0.20,
              0.75, 0.40, 0.20, 0.05,
              _weights(mode_femme=6, mode_homme=4, chaussures=4, beaute=5, maison_deco=4)),
    Archetype("bargain_hunter", 0.18, 0.97, 0.25, 36, 0.7, 0.30, 2.5, 0.8, 0, 0.25,
              6, 35, 0.40, 1.8, 0.65, 0.85, 0.40, 2.2, 0.75, 0.12, 0.04, 0.04,
              0.85, 0.30, 0.35, 0.10,
              _weights(mode_femme=6, mode_homme=5, chaussures=5, sport=3)),
    Archetype("window_shopper", 0.16, 0.55, 0.10, 29, 2.0, 0.35, 0.5, 0.5, 0, 0.35,
              11, 60, 0.35, 1.6, 0.15, 0.50, 0.15, 1.0, 0.20, 0.10, 0.05, 0.01,
              0.50, 0.12, 0.10, 0.20,
              _weights(high_tech=6, maison_deco=5, mode_femme=3, sport=3)),
    Archetype("new_customer", 0.13, 1.0, 0.20, 31, 0.9, 0.40, 0.5, 0.5, 0, 0.30,
              6, 50, 0.35, 1.5, 0.60, 0.85, 0.40, 1.0, 0.50, 0.06, 0.03, 0.03,
              0.70, 0.30, 0.15, 0.15,
              _weights(mode_femme=3, beaute=3, maison_deco=3, high_tech=2)),
    Archetype("dormant_churning", 0.15, 1.0, 0.30, 43, 1.0, 0.30, 0.3, 0.3, 45, 2.5,
              4, 40, 0.25, 1.3, 0.50, 0.80, 0.30, 1.0, 0.20, 0.05, 0.03, 0.05,
              0.60, 0.06, 0.05, 0.40,
              _weights(mode_femme=2, mode_homme=2, maison_deco=2)),
    Archetype("email_engaged_non_buyer", 0.12, 1.0, 0.10, 52, 0.12, 0.10, 0.5, 0.5, 0, 0.10,
              3, 30, 0.10, 1.2, 0.30, 0.70, 0.30, 1.0, 0.30, 0.05, 0.05, 0.0,
              1.00, 0.65, 0.35, 0.02,
              _weights(livres_loisirs=4, epicerie_fine=4, maison_deco=3)),
    Archetype("seasonal_gifter", 0.14, 0.95, 0.50, 41, 0.15, 0.10, 0.5, 7.0, 0, 0.20,
              6, 50, 0.45, 2.0, 0.75, 0.90, 0.35, 0.7, 0.20, 0.04, 0.02, 0.03,
              0.60, 0.15, 0.15, 0.15,
              _weights(enfant=6, high_tech=4, epicerie_fine=5, livres_loisirs=3, beaute=3)),
)

NUMERIC_PARAMETERS: tuple[str, ...] = tuple(
    f.name for f in fields(Archetype) if f.name not in ("name", "share", "category_weights")
)
MIXTURE_SHARE = 0.2          # persons with a secondary archetype
MIXTURE_WEIGHT = 0.7         # weight of the primary archetype in a mixture


def archetype_names() -> list[str]:
    return [a.name for a in ARCHETYPES]
