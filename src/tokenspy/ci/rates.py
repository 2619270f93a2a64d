"""Per-token prices for pricing SUMS of tokens, derived from ``ModelPrice.cost`` alone.

The diff prices GROUP BY sums, not single calls. ``cost(sum of calls)`` is wrong in two ways:
a per-request fee would be charged once instead of once per call, and a model with "cliff" tiers
(every token of a call billed at a higher rate once the call's input exceeds e.g. 200k tokens)
would be priced at the tier of the SUM. So we read the rate vector of each tier by probing
``cost`` at a few points (it is affine in the token counts within a tier), locate tier
boundaries by bisection up to the largest single call seen, and price each (group, tier) sum
linearly. Only the public ``cost`` API is used, so any future pricing detail that stays affine
per tier is handled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class PriceLike(Protocol):
    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        timestamp: float | None = None,
    ) -> float: ...


@dataclass(frozen=True)
class Rates:
    """USD per token of each kind, plus a fixed fee per call."""

    input: float
    cached: float
    cache_write: float
    output: float
    reasoning: float
    per_call: float

    def cost(self, calls: float, inp: float, cached: float, cache_write: float, out: float,
             reasoning: float) -> float:
        # Sums of inconsistent stored rows could go negative: never price a negative count.
        fresh = max(inp - cached - cache_write, 0.0)
        plain_out = max(out - reasoning, 0.0)
        return (fresh * self.input + cached * self.cached + cache_write * self.cache_write
                + plain_out * self.output + reasoning * self.reasoning + calls * self.per_call)


def rates_at(price: PriceLike, n: int, timestamp: float) -> Rates:
    """The rate vector in force for calls of ``n`` and ``n + 1`` input tokens (same tier)."""
    n = max(int(n), 1)
    c = price.cost
    a = c(n, 0, timestamp=timestamp)
    per_input = c(n + 1, 0, timestamp=timestamp) - a
    fee = a - n * per_input
    return Rates(
        input=per_input,
        cached=(c(n, 0, n, timestamp=timestamp) - fee) / n,
        cache_write=(c(n, 0, 0, n, timestamp=timestamp) - fee) / n,
        output=c(n, 1, timestamp=timestamp) - a,
        reasoning=c(n, 1, 0, 0, 1, timestamp=timestamp) - a,
        per_call=fee,
    )


@dataclass(frozen=True)
class TierMap:
    """Tiers of one model up to the largest call seen: ``bounds[i]`` is the input size above
    which tier ``i + 1`` applies; ``rates[i]`` the rates of tier ``i``."""

    bounds: tuple[int, ...]
    rates: tuple[Rates, ...]

    def tier_of(self, input_tokens: int) -> int:
        return sum(1 for b in self.bounds if input_tokens > b)


def tier_map(price: PriceLike, max_input: int, timestamp: float) -> TierMap:
    """Find every tier boundary in [1, max_input].

    Within one tier ``cost(n, 0)`` is affine in ``n`` and the price of one output / cached /
    cache-write / reasoning token is constant. So "``n`` is in the tier that starts at ``s``"
    is: the line through ``s`` and ``s + 1`` predicts ``cost(n, 0)`` and the per-kind
    differences at ``n`` equal those at ``s``. That predicate holds up to the next boundary and
    fails after it (tiers are assumed at least two tokens wide and never to repeat), so each
    boundary is found by binary search.
    """
    c = price.cost

    def probe(n: int) -> tuple[float, tuple[float, ...]]:
        base = c(n, 1, timestamp=timestamp)
        others = (c(n, 1, 1, timestamp=timestamp), c(n, 1, 0, 1, timestamp=timestamp),
                  c(n, 1, 0, 0, 1, timestamp=timestamp), c(n, 2, timestamp=timestamp))
        return base, tuple(x - base for x in others)

    top = max(int(max_input), 1)
    bounds: list[int] = []
    start = 1
    while True:
        f0, ref = probe(start)
        slope = probe(start + 1)[0] - f0

        def same(n: int, f0: float = f0, slope: float = slope, ref: tuple[float, ...] = ref,
                 start: int = start) -> bool:
            base, diffs = probe(n)
            # Absolute tolerance at the scale of the call's cost: the differences are taken
            # between numbers of that size, so their float noise is too.
            tol = 1e-9 * max(abs(base), abs(f0), 1e-12)
            return abs(base - (f0 + (n - start) * slope)) <= tol and all(
                abs(a - b) <= tol for a, b in zip(diffs, ref, strict=True))

        if same(top):
            break
        lo, hi = start, top  # same(lo) holds, same(hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if same(mid):
                lo = mid
            else:
                hi = mid
        bounds.append(lo)
        start = lo + 1
        if start >= top:
            break
    rates = (rates_at(price, 1, timestamp), *(rates_at(price, b + 1, timestamp) for b in bounds))
    return TierMap(tuple(bounds), rates)
