"""Read both sides (SQL) and price their groups with the CURRENT price table.

Both sides are priced with one table at one instant (``now``), from their stored token counts;
the ``cost_usd`` stored at record time is ignored. So a price-table update, or a price schedule
(e.g. off-peak discounts), never shows up as a regression, and the report names the table
version it used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from tokenspy.ci.diff import Side, build_side
from tokenspy.ci.query import Group, Source, fetch_groups, fetch_tiered, parallel
from tokenspy.ci.rates import PriceLike, Rates, TierMap, tier_map

Lookup = Callable[[str, "str | None"], "PriceLike | None"]


def _default_lookup() -> Lookup:
    from tokenspy import pricing

    return pricing.lookup


def load_sides(sources: Sequence[Source], lookup: Lookup | None = None,
               now: float | None = None) -> list[Side]:
    """Fetch, price and roll up each source; all sides priced at the same instant."""
    lookup = lookup or _default_lookup()
    now = time.time() if now is None else now
    per_side = parallel([lambda s=s: fetch_groups(s) for s in sources])

    max_input: dict[tuple[str | None, str | None], int] = {}
    for groups in per_side:
        for g in groups:
            k = (g.model, g.provider)
            if g.max_input > max_input.get(k, -1):
                max_input[k] = g.max_input
    tiers: dict[tuple[str | None, str | None], TierMap | None] = {}
    for (model, provider), top in max_input.items():
        price = lookup(model, provider) if model else None
        tiers[(model, provider)] = None if price is None else tier_map(price, top, now)

    # A tiered model with calls above its first boundary: re-read just that model split by tier
    # (rare; costs one more filtered pass over the side).
    for i, (src, groups) in enumerate(zip(sources, per_side, strict=True)):
        crossing = {
            k for k, tm in tiers.items() if tm is not None and tm.bounds
            and any(g.max_input > tm.bounds[0] for g in groups if (g.model, g.provider) == k)
        }
        if crossing:
            kept = [g for g in groups if (g.model, g.provider) not in crossing]
            extra = parallel([lambda k=k, src=src: fetch_tiered(src, k[0], k[1], tiers[k].bounds)  # type: ignore[union-attr]
                              for k in sorted(crossing, key=lambda k: (str(k[0]), str(k[1])))])
            per_side[i] = kept + [g for part in extra for g in part]

    def rates_of(g: Group) -> Rates | None:
        tm = tiers.get((g.model, g.provider))
        return None if tm is None else tm.rates[g.tier]

    return [
        build_side(((g, rates_of(g)) for g in groups), src.label, src.commit)
        for src, groups in zip(sources, per_side, strict=True)
    ]
