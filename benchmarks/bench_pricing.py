"""Micro-benchmark of tokenspy.pricing's hot path against genai_prices.calc_price.

Run: python benchmarks/bench_pricing.py [iterations]
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000


def per_call_us(fn, n: int, repeat: int = 3) -> float:
    """Best of ``repeat`` runs of ``fn(n)`` (a loop of n calls), in µs per call."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> None:
    start = time.perf_counter()
    import tokenspy  # noqa: F401  (timed apart: the package __init__ is not this module's cost)

    package_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    from tokenspy import pricing

    import_ms = (time.perf_counter() - start) * 1e3
    data_loaded = "genai_prices" in sys.modules

    start = time.perf_counter()
    pricing.lookup("gpt-4o", "openai")
    first_ms = (time.perf_counter() - start) * 1e3

    lookup, calculate = pricing.lookup, pricing.calculate

    def memo_lookup(n: int) -> None:
        for _ in range(n):
            lookup("gpt-4o", "openai")

    def memo_lookup_cost(n: int) -> None:
        for _ in range(n):
            lookup("gpt-4o", "openai").cost(1000, 500, 400)

    def calc(n: int) -> None:
        for _ in range(n):
            calculate("gpt-4o", 1000, 500, cached_input_tokens=400, provider="openai")

    tiered = lookup("gemini-2.5-pro")

    def tiered_cost(n: int) -> None:
        for _ in range(n):
            tiered.cost(250_000, 1000, 10_000)

    # A cold lookup resolves the name through genai-prices' match rules; the memo is cleared
    # each time so every call pays the resolution (the data itself is already loaded).
    memo = pricing._memo

    def cold_lookup(n: int) -> None:
        for _ in range(n):
            memo.clear()
            lookup("gpt-4o", "openai")

    import genai_prices

    usage = genai_prices.Usage(input_tokens=1000, cache_read_tokens=400, output_tokens=500)
    when = datetime.now(tz=timezone.utc)

    def gp_calc(n: int) -> None:
        for _ in range(n):
            genai_prices.calc_price(usage, "gpt-4o", provider_id="openai", genai_request_timestamp=when)

    print(f"iterations: {N:,} per loop (best of 3; the two slow ones: one loop)")
    print(f"import tokenspy (package):        {package_ms:8.2f} ms")
    print(f"then import tokenspy.pricing:     {import_ms:8.2f} ms (genai_prices loaded: {data_loaded})")
    print(f"first lookup (loads the data):    {first_ms:8.2f} ms")
    print(f"memoized lookup, gpt-4o:          {per_call_us(memo_lookup, N):8.3f} µs")
    print(f"memoized lookup + cost, gpt-4o:   {per_call_us(memo_lookup_cost, N):8.3f} µs")
    print(f"calculate, gpt-4o:                {per_call_us(calc, N):8.3f} µs")
    print(f"cost, gemini-2.5-pro (>200k tier): {per_call_us(tiered_cost, N):7.3f} µs")
    print(f"cold lookup, gpt-4o:              {per_call_us(cold_lookup, N, 1):8.3f} µs")
    print(f"genai_prices.calc_price, gpt-4o:  {per_call_us(gp_calc, N, 1):8.3f} µs")


if __name__ == "__main__":
    main()
