"""Pricing SUMS of tokens: per-token rates and tier boundaries read through ModelPrice.cost."""

from __future__ import annotations

import random

import pytest

from tokenspy import pricing
from tokenspy.ci.rates import rates_at, tier_map

NOW = 1_750_000_000.0


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-20250514", "o3-mini",
                                   "gemini-2.5-pro", "gemini-1.5-pro", "deepseek-chat", "sonar"])
def test_linear_pricing_of_sums_equals_sum_of_call_costs(model):
    price = pricing.lookup(model)
    assert price is not None
    rng = random.Random(model)
    calls = []
    for _ in range(200):
        inp = rng.choice([rng.randint(0, 5000), rng.randint(100_000, 300_000)])
        cached = rng.randint(0, inp // 2)
        write = rng.randint(0, (inp - cached) // 3)
        out = rng.randint(0, 2000)
        calls.append((inp, out, cached, write, rng.randint(0, out)))
    tm = tier_map(price, max(c[0] for c in calls), NOW)
    exact = sum(price.cost(i, o, c, w, r, timestamp=NOW) for i, o, c, w, r in calls)
    linear = sum(tm.rates[tm.tier_of(i)].cost(1, i, c, w, o, r) for i, o, c, w, r in calls)
    assert linear == pytest.approx(exact, rel=1e-9)
    # and one sum per tier, with the per-request fee counted once per call
    per_tier: dict[int, list[int]] = {}
    for call in calls:
        acc = per_tier.setdefault(tm.tier_of(call[0]), [0] * 6)
        for j, v in enumerate((1, call[0], call[2], call[3], call[1], call[4])):
            acc[j] += v
    summed = sum(tm.rates[t].cost(*acc) for t, acc in per_tier.items())
    assert summed == pytest.approx(exact, rel=1e-9)


def test_tier_boundaries_found():
    assert tier_map(pricing.lookup("gpt-4o"), 10_000_000, NOW).bounds == ()
    tm = tier_map(pricing.lookup("gemini-2.5-pro"), 10_000_000, NOW)
    assert tm.bounds == (200_000,)
    assert tm.tier_of(200_000) == 0 and tm.tier_of(200_001) == 1
    assert tm.rates[1].input == pytest.approx(2 * tm.rates[0].input)
    # only up to the largest call seen
    assert tier_map(pricing.lookup("gemini-2.5-pro"), 150_000, NOW).bounds == ()


def test_per_request_fee():
    r = rates_at(pricing.lookup("sonar"), 1, NOW)
    assert r.per_call == pytest.approx(pricing.lookup("sonar").cost(0, 0, timestamp=NOW))
    assert r.per_call > 0


def test_rates_of_one_call():
    r = rates_at(pricing.lookup("gpt-4o"), 1, NOW)
    assert r.input == pytest.approx(2.5e-6) and r.output == pytest.approx(10e-6)
    assert r.per_call == pytest.approx(0.0, abs=1e-15)
