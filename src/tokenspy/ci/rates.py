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

    def signature(self) -> tuple[float, ...]:
        # Rounded so that float noise of the probes does not look like a tier boundary.
        return tuple(float(f"{v:.9g}") for v in (self.input, self.cached, self.cache_write, self.output,
                                                  self.reasoning, self.per_call))


def rates_at(price: PriceLike, n: int, timestamp: float) -> Rates:
    """The rate vector in force for a call of ``n`` (>= 1) input tokens."""
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
    """Find every tier boundary in [1, max_input] by bisection on the rate signature."""
    memo: dict[int, Rates] = {}

    def at(n: int) -> Rates:
        r = memo.get(n)
        if r is None:
            r = memo[n] = rates_at(price, n, timestamp)
        return r

    hi = max(int(max_input), 1)
    bounds: list[int] = []

    def split(lo: int, hi: int) -> None:
        if at(lo).signature() == at(hi).signature():
            return
        if hi - lo <= 1:
            bounds.append(lo)
            return
        mid = (lo + hi) // 2
        split(lo, mid)
        split(mid, hi)

    split(1, hi)
    bounds.sort()
    rates = (at(1), *(at(b + 1) for b in bounds))
    return TierMap(tuple(bounds), rates)
