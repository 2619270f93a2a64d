"""tokenspy.pricing against the real genai-prices data (no mocks).

Expected dollars are written out from the published $/1M prices, so a wrong rate, a wrong
split of cached / reasoning tokens or a wrong tier shows up as a plain arithmetic mismatch.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenspy import pricing
from tokenspy.errors import PricingMatrixOutdatedWarning
from tokenspy.pricing import (
    PRICING,
    ModelPrice,
    calculate,
    get_cheaper_alternative,
    get_price_per_million,
    list_models,
    lookup,
    reload_overrides,
    table_version,
)

# 2026-01-15 12:00 UTC: after every price change these tests rely on (o3's 2025-06-10 cut).
NOW = datetime(2026, 1, 15, 12, tzinfo=timezone.utc).timestamp()


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


@pytest.fixture(autouse=True)
def no_overrides(tmp_path_factory):
    """Every test starts and ends with an empty override table, whatever the cwd holds."""
    empty = tmp_path_factory.mktemp("no-overrides") / "pyproject.toml"
    empty.write_text("[project]\nname = 'x'\n")
    reload_overrides(empty)
    yield
    reload_overrides(empty)


# --- basic prices ---------------------------------------------------------------------------


def test_gpt_4o_with_cached_input():
    # $2.50 in, $1.25 cached in, $10 out per 1M.
    cost = calculate("gpt-4o", 1000, 500, cached_input_tokens=400, timestamp=NOW)
    assert close(cost, (600 * 2.5 + 400 * 1.25 + 500 * 10) / 1e6)


def test_lookup_returns_a_memoized_model_price():
    price = lookup("gpt-4o", "openai")
    assert isinstance(price, ModelPrice)
    assert (price.model, price.provider) == ("gpt-4o", "openai")
    assert lookup("gpt-4o", "openai") is price
    assert close(price.cost(1000, 500, 400), (600 * 2.5 + 400 * 1.25 + 500 * 10) / 1e6)


def test_claude_cache_read_write_and_1h_write():
    # claude-sonnet-4-5: $3 in, $0.30 cache read, $3.75 5m write, $6 1h write, $15 out.
    cost = calculate(
        "claude-sonnet-4-5",
        10_000,
        1_000,
        cached_input_tokens=2_000,
        cache_write_tokens=3_000,
        cache_write_1h_tokens=1_000,
        timestamp=NOW,
    )
    fresh = 10_000 - 2_000 - 3_000
    assert close(cost, (fresh * 3 + 2_000 * 0.30 + 2_000 * 3.75 + 1_000 * 6 + 1_000 * 15) / 1e6)


def test_cache_write_without_a_cache_price_is_plain_input():
    # gpt-4o has no cache-write price: written tokens bill as input ($2.50).
    cost = calculate("gpt-4o", 1000, 0, cache_write_tokens=300, timestamp=NOW)
    assert close(cost, 1000 * 2.5 / 1e6)


def test_reasoning_tokens_bill_at_the_output_rate():
    # o3 (since 2025-06-10): $2 in, $8 out; reasoning is part of the output.
    cost = calculate("o3", 1000, 2000, reasoning_tokens=1500, timestamp=NOW)
    assert close(cost, (1000 * 2 + 2000 * 8) / 1e6)


def test_reasoning_tokens_use_a_reasoning_price_when_the_model_has_one():
    # perplexity sonar-deep-research: $2 in, $8 out, $3 reasoning.
    cost = calculate("sonar-deep-research", 100, 1000, reasoning_tokens=600, provider="perplexity")
    assert close(cost, (100 * 2 + 400 * 8 + 600 * 3) / 1e6)


def test_embeddings_resolve_without_and_with_provider():
    # text-embedding-3-small: $0.02 per 1M input tokens.
    assert close(calculate("text-embedding-3-small", 1_000_000, 0), 0.02)
    assert close(calculate("text-embedding-3-small", 1_000_000, 0, provider="openai"), 0.02)


def test_inconsistent_counts_raise():
    with pytest.raises(ValueError, match="inconsistent"):
        calculate("gpt-4o", 100, 10, cached_input_tokens=101)
    with pytest.raises(ValueError):
        calculate("gpt-4o", 100, 10, reasoning_tokens=11)
    with pytest.raises(ValueError):
        calculate("claude-sonnet-4-5", 100, 10, cache_write_tokens=5, cache_write_1h_tokens=6)


# --- long-context tiers and price history ---------------------------------------------------


def test_gemini_2_5_pro_long_context_tier():
    # gemini-2.5-pro: $1.25 in / $10 out up to 200k input tokens, then $2.50 / $15 for the whole call.
    assert close(
        calculate("gemini-2.5-pro", 200_000, 1_000, timestamp=NOW), (200_000 * 1.25 + 1_000 * 10) / 1e6
    )
    assert close(
        calculate("gemini-2.5-pro", 250_000, 1_000, timestamp=NOW), (250_000 * 2.5 + 1_000 * 15) / 1e6
    )
    # cache reads are tiered too: $0.125 -> $0.25.
    cost = calculate("gemini-2.5-pro", 250_000, 0, cached_input_tokens=50_000, timestamp=NOW)
    assert close(cost, (200_000 * 2.5 + 50_000 * 0.25) / 1e6)


def test_price_history_follows_the_timestamp():
    # o3 was $10 / $40 until 2025-06-09, $2 / $8 from 2025-06-10 (UTC dates).
    before = datetime(2025, 6, 9, 23, 59, tzinfo=timezone.utc).timestamp()
    after = datetime(2025, 6, 10, 0, 1, tzinfo=timezone.utc).timestamp()
    assert close(calculate("o3", 1000, 1000, timestamp=before), (1000 * 10 + 1000 * 40) / 1e6)
    assert close(calculate("o3", 1000, 1000, timestamp=after), (1000 * 2 + 1000 * 8) / 1e6)


# --- name resolution ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "provider", "canonical"),
    [
        ("gpt-4o-2024-08-06", None, "gpt-4o"),
        ("claude-sonnet-4-5-20250929", None, "claude-sonnet-4-5"),
        ("models/gemini-2.5-flash", None, "gemini-2.5-flash"),
        ("models/gemini-2.5-flash", "google", "gemini-2.5-flash"),
        ("openai/gpt-4o", None, "gpt-4o"),
        ("anthropic/claude-sonnet-4-5", None, "claude-sonnet-4-5"),
        ("google/gemini-2.5-flash", None, "gemini-2.5-flash"),
        ("gpt-4o", "langchain", "gpt-4o"),
        ("gpt-4o", "unknown", "gpt-4o"),
        ("GPT-4o", None, "gpt-4o"),
    ],
)
def test_aliases_and_prefixes(name, provider, canonical):
    price = lookup(name, provider)
    assert price is not None
    assert price.model == canonical


def test_google_provider_hint_maps_to_genai_prices_google():
    price = lookup("gemini-2.5-flash", "google")
    assert price is not None and price.provider == "google"
    # gemini-2.5-flash: $0.30 in, $0.03 cached, $2.50 out.
    cost = price.cost(10_000, 1_000, 4_000)
    assert close(cost, (6_000 * 0.30 + 4_000 * 0.03 + 1_000 * 2.5) / 1e6)


@pytest.mark.parametrize(
    ("name", "expected", "not_expected"),
    [
        ("gpt-4.1", (2.0, 8.0), (30.0, 60.0)),  # not gpt-4
        ("o3", (2.0, 8.0), (1.1, 4.4)),  # not o3-mini
        ("gpt-4o-mini", (0.15, 0.6), (2.5, 10.0)),  # not gpt-4o
    ],
)
def test_no_prefix_guessing(name, expected, not_expected):
    price = get_price_per_million(name)
    assert price == expected
    assert price != not_expected
    assert lookup(name).model == name


@pytest.mark.parametrize(
    "name", ["gpt-4.1-turbo", "o3-large", "gpt-4o-mini-2099", "gpt-5-foo", "totally-made-up"]
)
def test_unknown_names_stay_unknown(name):
    assert lookup(name) is None
    assert get_price_per_million(name) is None


def test_unknown_model_warns_once_at_the_caller_and_costs_zero():
    name = "no-such-model-for-warning-test"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert calculate(name, 1000, 1000) == 0.0
        assert calculate(name, 5, 5) == 0.0
    ours = [w for w in caught if issubclass(w.category, PricingMatrixOutdatedWarning)]
    assert len(ours) == 1
    assert name in str(ours[0].message)
    assert ours[0].filename == __file__


# --- catalogue views ------------------------------------------------------------------------


def test_pricing_mapping():
    assert PRICING["gpt-4o"] == (2.5, 10.0)
    assert "gpt-4o" in PRICING
    assert "gpt-4o-2024-08-06" not in PRICING  # an alias, not a model id
    assert "nope-model" not in PRICING
    assert PRICING.get("nope-model") is None
    assert PRICING.get("gpt-4.1") == (2.0, 8.0)
    with pytest.raises(KeyError):
        PRICING["nope-model"]
    with pytest.raises(TypeError):
        PRICING["gpt-4o"] = (1.0, 1.0)  # type: ignore[index]
    keys = list(PRICING)
    assert len(keys) == len(PRICING) > 1000
    assert keys == sorted(keys)
    assert set(keys) <= set(list_models())
    assert dict(PRICING.items())["claude-haiku-4-5"] == (1.0, 5.0)


def test_list_models():
    models = list_models()
    assert models == sorted(set(models))
    for name in ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-pro", "text-embedding-3-small"):
        assert name in models


@pytest.mark.parametrize(
    ("model", "alternative"),
    [
        ("gpt-4o", "gpt-4o-mini"),
        ("gpt-4.1", "gpt-4.1-mini"),
        ("o3", "o3-mini"),
        ("gemini-2.5-pro", "gemini-2.5-flash"),
        ("claude-sonnet-4-5", "claude-haiku-4-5"),
        ("text-embedding-3-large", "text-embedding-3-small"),
    ],
)
def test_cheaper_alternative(model, alternative):
    assert get_cheaper_alternative(model) == alternative


def test_cheaper_alternative_for_opus_is_a_sonnet_or_haiku():
    alt = get_cheaper_alternative("claude-opus-4-1")
    assert alt is not None and re.search(r"sonnet|haiku", alt)
    assert lookup(alt).provider == "anthropic"
    assert sum(get_price_per_million(alt)) < sum(get_price_per_million("claude-opus-4-1"))
    assert get_cheaper_alternative("claude-opus-4-1") == alt  # deterministic


def test_cheaper_alternative_unknown_is_none():
    assert get_cheaper_alternative("totally-made-up") is None


# --- overrides ------------------------------------------------------------------------------


def write_pyproject(directory: Path, body: str) -> Path:
    path = directory / "pyproject.toml"
    path.write_text("[project]\nname = 'demo'\n\n" + body)
    return path


OVERRIDES = """
[tool.tokenspy.prices."my-finetune"]
input = 1.0
output = 4.0
cached_input = 0.1
cache_write = 1.25

[tool.tokenspy.prices."gpt-4o"]
input = 2.0
output = 8.0
"""


def test_overrides_add_and_replace_models(tmp_path):
    write_pyproject(tmp_path, OVERRIDES)
    nested = tmp_path / "pkg" / "sub"
    nested.mkdir(parents=True)
    reload_overrides(nested)  # found by walking up

    cost = calculate("my-finetune", 1000, 100, cached_input_tokens=200, cache_write_tokens=300)
    assert close(cost, (500 * 1.0 + 200 * 0.1 + 300 * 1.25 + 100 * 4.0) / 1e6)
    assert lookup("my-finetune").provider == "custom"

    # gpt-4o: cached_input and cache_write default to the override's input price.
    assert close(calculate("gpt-4o", 1000, 100, cached_input_tokens=400), (1000 * 2.0 + 100 * 8.0) / 1e6)
    assert close(calculate("gpt-4o-2024-08-06", 1000, 0), 1000 * 2.0 / 1e6)  # aliases follow
    assert PRICING["gpt-4o"] == (2.0, 8.0)
    assert PRICING["my-finetune"] == (1.0, 4.0)
    assert "my-finetune" in list_models()

    version = table_version()
    assert re.fullmatch(r"genai-prices \S+\+overrides:[0-9a-f]{8}", version)


def test_table_version_without_overrides():
    from importlib.metadata import version

    assert table_version() == f"genai-prices {version('genai-prices')}"


def test_reload_overrides_drops_memoized_prices(tmp_path):
    assert get_price_per_million("gpt-4o") == (2.5, 10.0)
    reload_overrides(write_pyproject(tmp_path, OVERRIDES))
    assert get_price_per_million("gpt-4o") == (2.0, 8.0)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ("input = 1.0", "output"),  # missing
        ("input = -1.0\noutput = 1.0", "input"),  # negative
        ('input = 1.0\noutput = "4"', "output"),  # not a number
        ("input = 1.0\noutput = true", "output"),  # a bool is not a price
        ("input = 1.0\noutput = 1.0\ncached_input = nan", "cached_input"),
        ("input = 1.0\noutput = 1.0\ncached = 0.5", "cached"),  # unknown field (typo)
    ],
)
def test_invalid_override_names_model_and_field(tmp_path, entry, field):
    path = write_pyproject(tmp_path, f'[tool.tokenspy.prices."bad-model"]\n{entry}\n')
    with pytest.raises(ValueError, match=rf"bad-model.*{field}"):
        reload_overrides(path)
    assert get_price_per_million("gpt-4o") == (2.5, 10.0)  # the previous table stays in force


# --- agreement with genai_prices.calc_price -------------------------------------------------

AGREEMENT_MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "o3",
    "o3-mini",
    "claude-sonnet-4-5",
    "claude-opus-4-1",
    "claude-haiku-4-5",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "text-embedding-3-small",
]


@st.composite
def usages(draw):
    total_in = draw(
        st.one_of(st.integers(0, 5_000), st.integers(0, 400_000), st.sampled_from([200_000, 200_001]))
    )
    cached = draw(st.integers(0, total_in))
    written = draw(st.integers(0, total_in - cached))
    written_1h = draw(st.integers(0, written))
    total_out = draw(st.integers(0, 100_000))
    reasoning = draw(st.integers(0, total_out))
    return total_in, total_out, cached, written, reasoning, written_1h


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(AGREEMENT_MODELS),
    usage=usages(),
    # 2024-01-01 .. 2027-06-01: across o3's price cut and today's prices.
    ts=st.floats(1_704_067_200, 1_811_808_000),
)
def test_cost_agrees_with_genai_prices(model, usage, ts):
    import genai_prices

    total_in, total_out, cached, written, reasoning, written_1h = usage
    price = lookup(model)
    ours = price.cost(total_in, total_out, cached, written, reasoning, written_1h, ts)
    ref = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=total_in,
            cache_read_tokens=cached,
            cache_write_tokens=written,
            cache_write_1h_tokens=written_1h,
            output_tokens=total_out,
            output_reasoning_tokens=reasoning,
        ),
        model,
        provider_id=price.provider,
        genai_request_timestamp=datetime.fromtimestamp(ts, timezone.utc),
    )
    assert math.isclose(ours, float(ref.total_price), rel_tol=1e-9, abs_tol=1e-15)


# --- import cost ----------------------------------------------------------------------------


def test_import_does_not_load_genai_prices():
    code = "import sys, tokenspy.pricing; print('genai_prices' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_module_state_is_private():
    # The memo is a plain dict keyed by (model, provider): the recorder's hot path relies on it.
    lookup("gpt-4o")
    assert isinstance(pricing._memo, dict)
    assert ("gpt-4o", None) in pricing._memo
