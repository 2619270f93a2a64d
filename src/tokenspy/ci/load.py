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
from tokenspy.ci.query import Group, Source, bucket_range, fetch_all, fetch_tiered, parallel
from tokenspy.ci.rates import PriceLike, Rates, TierMap, tier_map

Lookup = Callable[[str, "str | None"], "PriceLike | None"]
ModelKey = tuple["str | None", "str | None"]
MAX_INPUT = 10**9  # tiers are searched up to this many input tokens per call


def _default_lookup() -> Lookup:
    from tokenspy import pricing

    return pricing.lookup


def _spans(tm: TierMap, bucket: int) -> bool:
    lo, hi = bucket_range(bucket)
    return any(lo < b < hi for b in tm.bounds)


def load_sides(sources: Sequence[Source], lookup: Lookup | None = None,
               now: float | None = None) -> list[Side]:
    """Fetch, price and roll up each source; all sides priced at the same instant."""
    lookup = lookup or _default_lookup()
    now = time.time() if now is None else now
    per_side = fetch_all(sources)

    top_bucket: dict[ModelKey, int] = {}
    for groups in per_side:
        for g in groups:
            k = (g.model, g.provider)
            if g.bucket > top_bucket.get(k, -1):
                top_bucket[k] = g.bucket
    tiers: dict[ModelKey, TierMap | None] = {}
    for (model, provider), bucket in top_bucket.items():
        price = lookup(model, provider) if model else None
        top = min(bucket_range(bucket)[1], MAX_INPUT)
        tiers[(model, provider)] = None if price is None else tier_map(price, top, now)

    priced: list[list[tuple[Group, Rates | None]]] = []
    refetch: list[tuple[int, ModelKey]] = []
    for i, groups in enumerate(per_side):
        # A model with a tier boundary inside a bucket that holds its calls: re-read that model
        # split by its own tiers (no known model needs it; costs one filtered pass).
        redo = {k for k, b in {((g.model, g.provider), g.bucket) for g in groups}
                if (tm := tiers[k]) is not None and tm.bounds and _spans(tm, b)}
        refetch += [(i, k) for k in sorted(redo, key=lambda k: (str(k[0]), str(k[1])))]
        side: list[tuple[Group, Rates | None]] = []
        memo: dict[tuple[ModelKey, int], Rates | None] = {}
        for g in groups:
            k = (g.model, g.provider)
            if k in redo:
                continue
            mk = (k, g.bucket)
            try:
                rates = memo[mk]
            except KeyError:
                tm = tiers[k]
                rates = memo[mk] = None if tm is None else tm.rates[tm.tier_of(bucket_range(g.bucket)[0] + 1)]
            side.append((g, rates))
        priced.append(side)
    extra = parallel([lambda i=i, k=k: fetch_tiered(sources[i], k[0], k[1], tiers[k].bounds)  # type: ignore[union-attr]
                      for i, k in refetch])
    for (i, k), groups in zip(refetch, extra, strict=True):
        tm = tiers[k]
        assert tm is not None
        priced[i].extend((g, tm.rates[g.bucket]) for g in groups)

    return [build_side(side, src.label, src.commit) for src, side in zip(sources, priced, strict=True)]
