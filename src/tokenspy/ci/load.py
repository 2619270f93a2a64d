"""Read both sides (SQL) and price their groups with the CURRENT price table.

Both sides are priced with one table at one instant (``now``), from their stored token counts;
the ``cost_usd`` stored at record time is ignored. So a price-table update, or a price schedule
(e.g. off-peak discounts), never shows up as a regression, and the report names the table
version it used.

The SQL runs on a thread pool; meanwhile this thread loads the price data and rolls up the
first side while the second one is still being read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tokenspy.ci import runsel
from tokenspy.ci.diff import Side, build_side
from tokenspy.ci.query import Group, Source, bucket_range, fetch_tiered, parallel, run_info, submit_all
from tokenspy.ci.rates import PriceLike, Rates, TierMap, tier_map
from tokenspy.ci.sources import FAMILY, match

Lookup = Callable[[str, "str | None"], "PriceLike | None"]
ModelKey = tuple["str | None", "str | None"]
MAX_INPUT = 10**9  # tiers are searched up to this many input tokens per call


def _default_lookup() -> Lookup:
    # Import the price data now, while the SQL threads run, rather than at the first lookup.
    # (Import only: resolving a model here would add a lookup the diff does not need.)
    import genai_prices.data  # noqa: F401

    from tokenspy import pricing

    pricing.table_version()
    return pricing.lookup


def _spans(tm: TierMap, bucket: int) -> bool:
    lo, hi = bucket_range(bucket)
    return any(lo < b < hi for b in tm.bounds)


class _Pricer:
    """Rates per (model, provider, bucket), tier maps computed once per model and reach."""

    def __init__(self, lookup: Lookup, now: float) -> None:
        self.lookup = lookup
        self.now = now
        self.prices: dict[ModelKey, PriceLike | None] = {}
        self.maps: dict[tuple[ModelKey, int], TierMap] = {}

    def tier_map(self, key: ModelKey, top_bucket: int) -> TierMap | None:
        if key not in self.prices:
            self.prices[key] = self.lookup(key[0], key[1]) if key[0] else None
        price = self.prices[key]
        if price is None:
            return None
        mk = (key, top_bucket)
        if mk not in self.maps:
            self.maps[mk] = tier_map(price, min(bucket_range(top_bucket)[1], MAX_INPUT), self.now)
        return self.maps[mk]

    def price_side(self, src: Source, groups: list[Group]) -> list[tuple[Group, Rates | None]]:
        top: dict[ModelKey, int] = {}
        for g in groups:
            k = (g.model, g.provider)
            if g.bucket > top.get(k, -1):
                top[k] = g.bucket
        maps = {k: self.tier_map(k, b) for k, b in top.items()}
        # A model with a tier boundary inside a bucket that holds its calls: re-read that model
        # split by its own tiers (no known model needs it; costs one filtered pass).
        redo = sorted({k for k, b in {((g.model, g.provider), g.bucket) for g in groups}
                       if (tm := maps[k]) is not None and tm.bounds and _spans(tm, b)},
                      key=lambda k: (str(k[0]), str(k[1])))
        out: list[tuple[Group, Rates | None]] = []
        memo: dict[tuple[ModelKey, int], Rates | None] = {}
        skip = set(redo)
        for g in groups:
            k = (g.model, g.provider)
            if k in skip:
                continue
            mk = (k, g.bucket)
            try:
                rates = memo[mk]
            except KeyError:
                tm = maps[k]
                rates = memo[mk] = None if tm is None else tm.rates[tm.tier_of(bucket_range(g.bucket)[0] + 1)]
            out.append((g, rates))
        extra = parallel([lambda k=k: fetch_tiered(src, k[0], k[1], maps[k].bounds) for k in redo])  # type: ignore[union-attr]
        allowed = {g.usage_source for g in groups}  # the side may be cut to like sources
        for k, part in zip(redo, extra, strict=True):
            tm = maps[k]
            assert tm is not None
            out.extend((g, tm.rates[g.bucket]) for g in part if g.usage_source in allowed)
        return out


def load_sides(sources: Sequence[Source], lookup: Lookup | None = None,
               now: float | None = None, usage: str | None = None, pair: bool = True) -> LoadedSides:
    """Fetch, price and roll up each source; all sides priced at the same instant. Each side
    is made of the runs ``runsel.select`` picks (one code state, or the run asked for). With two
    sources (current, baseline) and ``pair``, both are cut to like usage sources
    (``tokenspy.ci.sources``); a baseline with none of them comes back as ``None``."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        infos = [pool.submit(run_info, s) for s in sources]
        futures = submit_all(sources, pool)
        pricer = _Pricer(lookup or _default_lookup(), time.time() if now is None else now)
        kept: list[tuple[list[Group], runsel.Selection]] = []
        for src, fs, info in zip(sources, futures, infos, strict=True):
            groups = [g for f in fs for g in f.result()]
            recorded, last = info.result()
            sel = runsel.select(groups, recorded, last, label=src.path, commit=src.commit, run=src.run,
                                clean=src.clean)
            kept.append(([g for g in groups if g.run in sel.runs], sel))
        note, compared = "", ()
        chosen: list[list[Group] | None] = [g for g, _ in kept]
        if pair and len(kept) == 2:
            m = match(kept[0][0], kept[1][0], usage)
            chosen, note, compared = [m.current, m.baseline], m.note, m.compared
        elif usage:
            chosen = [[g for g in groups if g.usage_source in FAMILY[usage]] for groups, _ in kept]
        sides: list[Side | None] = []
        for src, groups, (_, sel) in zip(sources, chosen, kept, strict=True):
            if groups is None:
                sides.append(None)
                continue
            keep = sel.runs
            priced = [(g, r) for g, r in pricer.price_side(src, groups) if g.run in keep]
            sides.append(build_side(priced, src.label, src.commit, zero_call_runs=sel.zero_call_runs,
                                    selection=sel))
        return LoadedSides(sides, note, compared)


@dataclass(frozen=True)
class LoadedSides:
    sides: list[Side | None]  # in the order of the sources; a baseline of no like source is None
    usage_note: str  # one line when the sides' usage sources differ (tokenspy.ci.sources)
    compared: tuple[str, ...]  # the usage sources the diff compares

    def __getitem__(self, i: int) -> Side | None:  # loaded[0]: the first side
        return self.sides[i]

    def __len__(self) -> int:
        return len(self.sides)
