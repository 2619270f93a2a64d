"""The dollars of recorded calls, checked against hand-computed values from the providers'
published per-million-token prices (the arithmetic is written out in each test).

Each call goes through the real SDK over ``httpx2.MockTransport`` with a usage block shaped the
way that provider reports it, so these tests cover the token mapping of each interceptor and
the price table together.

Published prices used ($ per 1M tokens):
- Anthropic claude-sonnet-4-5: input 3, output 15, cache write 5m 3.75, cache write 1h 6,
  cache read 0.30; prompts over 200k input tokens: input 6, output 22.50, 5m write 7.50,
  1h write 12, cache read 0.60. Extended-thinking tokens are billed as output.
- Anthropic claude-haiku-4-5: input 1, output 5, 5m write 1.25, 1h write 2, cache read 0.10.
- Google gemini-2.5-flash: input 0.30 (text), output 2.50 (thinking included), cache read 0.03.
- Google gemini-2.5-pro: up to 200k prompt tokens input 1.25, output 10, cache read 0.125;
  over 200k: input 2.50, output 15, cache read 0.25.
- OpenAI gpt-4o: input 2.50, cached input 1.25, output 10.
- OpenAI gpt-5: input 1.25, cached input 0.125, output 10 (reasoning billed as output).
- OpenAI o3: input 2, cached input 0.50, output 8.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

M = 1_000_000


@pytest.fixture
def sdk(wire, active):
    from wire import anthropic_clients, google_client, openai_clients

    return {"openai": openai_clients(wire)[0], "anthropic": anthropic_clients(wire)[0],
            "google": google_client(wire)}


def _only(tracker) -> Any:
    (r,) = tracker.records()
    return r


# ---------------------------------------------------------------------------- Anthropic


def _claude(wire, model: str, usage: dict[str, Any]) -> None:
    wire.overrides["/messages"] = {
        "id": "msg", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": usage,
    }


def _ask_claude(client: Any) -> None:
    client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "x"}])


def test_claude_sonnet_4_5_cache_reads_and_5m_writes(sdk, wire, fresh_tracker):
    _claude(wire, "claude-sonnet-4-5-20250929", {
        "input_tokens": 1_000, "cache_read_input_tokens": 20_000, "cache_creation_input_tokens": 5_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 5_000, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 2_000,
    })
    _ask_claude(sdk["anthropic"])
    r = _only(fresh_tracker)
    expected = (
        1_000 * 3.00      # fresh input      $0.003
        + 20_000 * 0.30   # cache reads      $0.006
        + 5_000 * 3.75    # 5m cache writes  $0.01875
        + 2_000 * 15.00   # output           $0.03
    ) / M                 # = $0.05775
    assert expected == pytest.approx(0.05775)
    assert r.cost_usd == pytest.approx(expected)
    assert (r.input_tokens, r.cached_input_tokens, r.cache_write_tokens) == (26_000, 20_000, 5_000)


def test_claude_sonnet_4_5_one_hour_cache_writes(sdk, wire, fresh_tracker):
    _claude(wire, "claude-sonnet-4-5-20250929", {
        "input_tokens": 500, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 10_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 4_000, "ephemeral_1h_input_tokens": 6_000},
        "output_tokens": 100,
    })
    _ask_claude(sdk["anthropic"])
    expected = (
        500 * 3.00        # fresh input      $0.0015
        + 4_000 * 3.75    # 5m cache writes  $0.015
        + 6_000 * 6.00    # 1h cache writes  $0.036
        + 100 * 15.00     # output           $0.0015
    ) / M                 # = $0.054
    assert expected == pytest.approx(0.054)
    assert _only(fresh_tracker).cost_usd == pytest.approx(expected)


def test_claude_thinking_tokens_are_output(sdk, wire, fresh_tracker):
    _claude(wire, "claude-haiku-4-5-20251001", {
        "input_tokens": 2_000, "output_tokens": 3_000, "output_tokens_details": {"thinking_tokens": 2_500},
    })
    _ask_claude(sdk["anthropic"])
    r = _only(fresh_tracker)
    expected = (2_000 * 1.00 + 3_000 * 5.00) / M  # thinking is in output_tokens: $0.017
    assert r.cost_usd == pytest.approx(expected) == pytest.approx(0.017)
    assert (r.output_tokens, r.reasoning_tokens) == (3_000, 2_500)


def test_claude_long_context_tier_applies_to_the_whole_call(sdk, wire, fresh_tracker):
    _claude(wire, "claude-sonnet-4-5-20250929", {
        "input_tokens": 150_000, "cache_read_input_tokens": 100_000, "cache_creation_input_tokens": 0,
        "output_tokens": 1_000,
    })
    _ask_claude(sdk["anthropic"])
    # 250,000 input tokens > 200k: every token at the long-context rates
    expected = (150_000 * 6.00 + 100_000 * 0.60 + 1_000 * 22.50) / M  # $0.9825
    assert _only(fresh_tracker).cost_usd == pytest.approx(expected) == pytest.approx(0.9825)


def test_claude_stream_costs_the_same_as_the_message(sdk, fresh_tracker):
    # fixtures: 12 fresh + 4,096 cache read + 2,048 5m write in, 150 out
    list(sdk["anthropic"].messages.create(model="claude-sonnet-4-6", max_tokens=64, stream=True,
                                          messages=[{"role": "user", "content": "x"}]))
    _ask_claude(sdk["anthropic"])
    expected = (12 * 3.00 + 4_096 * 0.30 + 2_048 * 3.75 + 150 * 15.00) / M  # $0.0111948
    assert [r.cost_usd for r in fresh_tracker.records()] == [pytest.approx(expected)] * 2


# ---------------------------------------------------------------------------- Google


def _gemini(wire, version: str, usage: dict[str, Any]) -> None:
    wire.overrides[":generateContent"] = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP",
                        "index": 0}],
        "usageMetadata": usage, "modelVersion": version,
    }


def test_gemini_2_5_flash_thoughts_billed_as_output_and_cache_reads(sdk, fresh_tracker):
    # fixture: 1,200 prompt tokens of which 1,024 cached, 300 candidates + 128 thoughts
    sdk["google"].models.generate_content(model="gemini-2.5-flash", contents="x")
    r = _only(fresh_tracker)
    expected = (
        (1_200 - 1_024) * 0.30   # fresh input        $0.0000528
        + 1_024 * 0.03           # cached input       $0.00003072
        + (300 + 128) * 2.50     # output + thoughts  $0.00107
    ) / M                        # = $0.00115352
    assert r.cost_usd == pytest.approx(expected) == pytest.approx(0.00115352)
    assert (r.output_tokens, r.reasoning_tokens) == (428, 128)


def test_gemini_2_5_pro_price_tiers_by_prompt_size(sdk, wire, fresh_tracker):
    _gemini(wire, "gemini-2.5-pro", {"promptTokenCount": 100_000, "candidatesTokenCount": 1_000,
                                     "thoughtsTokenCount": 3_000, "totalTokenCount": 104_000})
    sdk["google"].models.generate_content(model="gemini-2.5-pro", contents="x")
    _gemini(wire, "gemini-2.5-pro", {"promptTokenCount": 300_000, "cachedContentTokenCount": 200_000,
                                     "candidatesTokenCount": 1_000, "totalTokenCount": 301_000})
    sdk["google"].models.generate_content(model="gemini-2.5-pro", contents="x")
    small, large = fresh_tracker.records()
    assert small.cost_usd == pytest.approx((100_000 * 1.25 + 4_000 * 10.00) / M)  # $0.165
    # over 200k prompt tokens: 100k fresh at 2.50, 200k cached at 0.25, output at 15
    assert large.cost_usd == pytest.approx((100_000 * 2.50 + 200_000 * 0.25 + 1_000 * 15.00) / M)  # $0.315


# ---------------------------------------------------------------------------- OpenAI


def test_gpt_4o_cached_input(sdk, fresh_tracker):
    # fixture openai_chat.json: 1,200 prompt tokens (1,024 cached), 300 completion tokens
    sdk["openai"].chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    expected = ((1_200 - 1_024) * 2.50 + 1_024 * 1.25 + 300 * 10.00) / M  # $0.00472
    assert _only(fresh_tracker).cost_usd == pytest.approx(expected) == pytest.approx(0.00472)


def test_gpt_5_reasoning_billed_as_output(sdk, fresh_tracker):
    # fixture openai_responses.json: gpt-5, 1,200 in (1,024 cached), 300 out of which 128 reasoning
    sdk["openai"].responses.create(model="gpt-5", input="x")
    r = _only(fresh_tracker)
    expected = ((1_200 - 1_024) * 1.25 + 1_024 * 0.125 + 300 * 10.00) / M  # $0.003348
    assert r.cost_usd == pytest.approx(expected) == pytest.approx(0.003348)
    assert r.reasoning_tokens == 128


def test_o3_reasoning_and_cache(sdk, wire, fresh_tracker):
    from wire import fixture_json

    body = fixture_json("openai_chat.json")
    body["model"] = "o3-2025-04-16"
    body["usage"] = {"prompt_tokens": 10_000, "completion_tokens": 5_000, "total_tokens": 15_000,
                     "prompt_tokens_details": {"cached_tokens": 8_000},
                     "completion_tokens_details": {"reasoning_tokens": 4_000}}
    wire.routes["/chat/completions"] = lambda req, b: httpx2.Response(200, json=body)
    sdk["openai"].chat.completions.create(model="o3", messages=[{"role": "user", "content": "x"}])
    expected = (2_000 * 2.00 + 8_000 * 0.50 + 5_000 * 8.00) / M  # $0.048
    assert _only(fresh_tracker).cost_usd == pytest.approx(expected) == pytest.approx(0.048)


# ---------------------------------------------------------------------------- async and LangChain


def test_async_calls_cost_the_same(wire, fresh_tracker, active):
    from wire import anthropic_clients, google_client

    async def main():
        await anthropic_clients(wire)[1].messages.create(
            model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "x"}])
        await google_client(wire).aio.models.generate_content(model="gemini-2.5-flash", contents="x")

    asyncio.run(main())
    claude, gemini = fresh_tracker.records()
    assert claude.cost_usd == pytest.approx((12 * 3.00 + 4_096 * 0.30 + 2_048 * 3.75 + 150 * 15.00) / M)
    assert gemini.cost_usd == pytest.approx((176 * 0.30 + 1_024 * 0.03 + 428 * 2.50) / M)


def test_langchain_usage_metadata_is_priced_like_the_sdk(fresh_tracker):
    pytest.importorskip("langchain_core")
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from tokenspy.integrations.langchain import TokenspyCallbackHandler

    usage = {"input_tokens": 26_000, "output_tokens": 2_000, "total_tokens": 28_000,
             "input_token_details": {"cache_read": 20_000, "cache_creation": 5_000}}
    msg = AIMessage(content="ok", usage_metadata=usage,
                    response_metadata={"model_name": "claude-sonnet-4-5-20250929"})
    GenericFakeChatModel(messages=iter([msg])).invoke("x", config={"callbacks": [TokenspyCallbackHandler()]})
    r = _only(fresh_tracker)
    assert r.provider == "langchain"
    # same call as test_claude_sonnet_4_5_cache_reads_and_5m_writes: $0.05775
    assert r.cost_usd == pytest.approx((1_000 * 3.00 + 20_000 * 0.30 + 5_000 * 3.75 + 2_000 * 15.00) / M)


# --------------------------------------------------------------------------- recorder vs pricing

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_tokens = st.integers(min_value=0, max_value=3 * M)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    model=st.sampled_from([("gpt-4o", "openai"), ("gpt-5", "openai"), ("claude-haiku-4-5", "anthropic"),
                           ("claude-sonnet-4-5", "anthropic"), ("gemini-2.5-pro", "google")]),
    inp=_tokens, out=_tokens, cached=_tokens, write=_tokens, reasoning=_tokens,
)
def test_a_recorded_call_costs_exactly_what_pricing_calculate_says(fresh_tracker, model, inp, out, cached, write,
                                                                    reasoning):
    # The recorder prices untiered models without calling ModelPrice.cost (hot path); tiered
    # ones (claude-sonnet-4-5 and gemini-2.5-pro over 200k) go through it. Either way a record
    # costs, to the last bit, what the public calculate() says for the same (consistent) usage.
    from tokenspy import pricing, recorder
    from tokenspy.recorder import Usage

    name, provider = model
    fresh_tracker.reset()
    p = recorder.begin(provider, name)
    recorder.finish(p, Usage(inp, out, cached, write, reasoning))
    (rec,) = fresh_tracker.records()
    total_in, total_out = max(inp, cached + write), max(out, reasoning)  # totals include their parts
    assert (rec.input_tokens, rec.output_tokens) == (total_in, total_out)
    expected = pricing.calculate(name, total_in, total_out, cached_input_tokens=cached, cache_write_tokens=write,
                                 reasoning_tokens=reasoning, provider=provider, timestamp=rec.timestamp)
    assert rec.cost_usd == expected
    assert rec.priced
