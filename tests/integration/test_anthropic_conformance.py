"""Every Anthropic SDK path, run with and without tokenspy: the user sees the same thing, and each
path makes exactly one record with the right model and tokens.

Real ``anthropic.Anthropic``/``AsyncAnthropic`` clients over ``httpx2.MockTransport``
(tests/wire.py, fixtures anthropic_message.json and anthropic_stream.sse).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pydantic
import pytest

from conformance import dump, off_then_on
from tokenspy import interceptor

MODEL = "claude-sonnet-4-6"  # what is asked for; the fixtures answer as claude-sonnet-4-5-20250929
MSG = [{"role": "user", "content": "hi"}]
KW = {"model": MODEL, "max_tokens": 256, "messages": MSG}
# (model, input incl. cache, output, cache read, cache write, 1h write, reasoning)
# fixture usage: input_tokens 12 (excludes cache) + cache read 4096 + cache creation 2048
FULL = ("claude-sonnet-4-5-20250929", 12 + 4096 + 2048, 150, 4096, 2048, 0, 0)


class Answer(pydantic.BaseModel):
    answer: str


@pytest.fixture
def clients(wire):
    from wire import anthropic_clients

    return anthropic_clients(wire)


# ---------------------------------------------------------------------------- sync paths


def create(c: anthropic.Anthropic) -> Any:
    return dump(c.messages.create(**KW))


def create_stream_iter(c: anthropic.Anthropic) -> Any:
    stream = c.messages.create(**KW, stream=True)
    assert isinstance(stream, anthropic.Stream)
    assert isinstance(stream.response, httpx2.Response)
    return dump(list(stream))


def create_stream_next_with(c: anthropic.Anthropic) -> Any:
    with c.messages.create(**KW, stream=True) as stream:
        first = next(stream)
        rest = list(stream)
    return dump([first, *rest])


def stream_helper_events(c: anthropic.Anthropic) -> Any:
    with c.messages.stream(**KW) as s:
        events = [e.type for e in s]
        final = s.get_final_message()
    return (events, dump(final))


def stream_helper_text_stream(c: anthropic.Anthropic) -> Any:
    with c.messages.stream(**KW) as s:
        text = list(s.text_stream)
        final_text = s.get_final_text()
        snapshot = dump(s.current_message_snapshot)
    return (text, final_text, snapshot)


def stream_helper_final_only(c: anthropic.Anthropic) -> Any:
    with c.messages.stream(**KW) as s:
        return dump(s.get_final_message())


def stream_helper_until_done(c: anthropic.Anthropic) -> Any:
    with c.messages.stream(**KW) as s:
        s.until_done()
        return s.request_id


def parse(c: anthropic.Anthropic) -> Any:
    r = c.messages.parse(**KW, output_format=Answer)
    return (dump(r), r.parsed_output)


def stream_helper_parsed(c: anthropic.Anthropic) -> Any:
    with c.messages.stream(**KW, output_format=Answer) as s:
        final = s.get_final_message()
    return final.parsed_output


def raw(c: anthropic.Anthropic) -> Any:
    r = c.messages.with_raw_response.create(**KW)
    return (type(r).__name__, r.status_code, dump(r.parse()), dump(r.parse()))


def raw_unparsed(c: anthropic.Anthropic) -> Any:
    # the user only reads the headers: the call was still paid for
    r = c.messages.with_raw_response.create(**KW)
    return (type(r).__name__, r.headers.get("content-type"))


def raw_stream(c: anthropic.Anthropic) -> Any:
    r = c.messages.with_raw_response.create(**KW, stream=True)
    return dump(list(r.parse()))


def streaming_response(c: anthropic.Anthropic) -> Any:
    with c.messages.with_streaming_response.create(**KW) as r:
        return (type(r).__name__, dump(r.parse()))


def streaming_response_stream(c: anthropic.Anthropic) -> Any:
    with c.messages.with_streaming_response.create(**KW, stream=True) as r:
        return dump(list(r.parse()))


def beta_create(c: anthropic.Anthropic) -> Any:
    return dump(c.beta.messages.create(**KW))


def beta_create_stream(c: anthropic.Anthropic) -> Any:
    return dump(list(c.beta.messages.create(**KW, stream=True)))


def beta_stream_helper(c: anthropic.Anthropic) -> Any:
    with c.beta.messages.stream(**KW) as s:
        text = list(s.text_stream)
        final = s.get_final_message()
    return (text, dump(final))


def beta_parse(c: anthropic.Anthropic) -> Any:
    r = c.beta.messages.parse(**KW, output_format=Answer)
    return (dump(r), r.parsed_output)


def beta_raw(c: anthropic.Anthropic) -> Any:
    return dump(c.beta.messages.with_raw_response.create(**KW).parse())


def beta_streaming_response(c: anthropic.Anthropic) -> Any:
    with c.beta.messages.with_streaming_response.create(**KW) as r:
        return dump(r.parse())


SYNC_PATHS: list[Callable[[anthropic.Anthropic], Any]] = [
    create,
    create_stream_iter,
    create_stream_next_with,
    stream_helper_events,
    stream_helper_text_stream,
    stream_helper_final_only,
    stream_helper_until_done,
    parse,
    stream_helper_parsed,
    raw,
    raw_unparsed,
    raw_stream,
    streaming_response,
    streaming_response_stream,
    beta_create,
    beta_create_stream,
    beta_stream_helper,
    beta_parse,
    beta_raw,
    beta_streaming_response,
]


def _check_one_record(tracker, expected: tuple = FULL) -> None:
    recs = tracker.records()
    assert len(recs) == 1, [(r.model, r.input_tokens) for r in recs]
    r = recs[0]
    got = (r.model, r.input_tokens, r.output_tokens, r.cached_input_tokens, r.cache_write_tokens,
           0, r.reasoning_tokens)
    assert got == expected
    assert r.provider == "anthropic"
    assert r.priced
    assert r.cost_usd > 0


@pytest.mark.parametrize("path", SYNC_PATHS, ids=[p.__name__ for p in SYNC_PATHS])
def test_sync_path_same_result_and_one_record(path, clients, wire, fresh_tracker):
    client = clients[0]
    without, with_ = off_then_on(path, client, fresh_tracker)
    assert with_ == without
    assert wire.bodies[0] == wire.bodies[1]  # the request is not changed either
    _check_one_record(fresh_tracker)


# ---------------------------------------------------------------------------- async paths


async def acreate(c: anthropic.AsyncAnthropic) -> Any:
    return dump(await c.messages.create(**KW))


async def acreate_stream(c: anthropic.AsyncAnthropic) -> Any:
    stream = await c.messages.create(**KW, stream=True)
    assert isinstance(stream, anthropic.AsyncStream)
    async with stream as s:
        first = await s.__anext__()
        rest = [e async for e in s]
    return dump([first, *rest])


async def astream_helper(c: anthropic.AsyncAnthropic) -> Any:
    async with c.messages.stream(**KW) as s:
        events = [e.type async for e in s]
        final = await s.get_final_message()
    return (events, dump(final))


async def astream_helper_text_stream(c: anthropic.AsyncAnthropic) -> Any:
    async with c.messages.stream(**KW) as s:
        text = [t async for t in s.text_stream]
        final_text = await s.get_final_text()
    return (text, final_text)


async def aparse(c: anthropic.AsyncAnthropic) -> Any:
    r = await c.messages.parse(**KW, output_format=Answer)
    return (dump(r), r.parsed_output)


async def araw(c: anthropic.AsyncAnthropic) -> Any:
    r = await c.messages.with_raw_response.create(**KW)
    return (type(r).__name__, dump(await r.parse()))


async def araw_unparsed(c: anthropic.AsyncAnthropic) -> Any:
    r = await c.messages.with_raw_response.create(**KW)
    return r.status_code


async def astreaming_response(c: anthropic.AsyncAnthropic) -> Any:
    async with c.messages.with_streaming_response.create(**KW) as r:
        return dump(await r.parse())


async def astreaming_response_stream(c: anthropic.AsyncAnthropic) -> Any:
    async with c.messages.with_streaming_response.create(**KW, stream=True) as r:
        stream = await r.parse()
        return dump([e async for e in stream])


async def abeta_create(c: anthropic.AsyncAnthropic) -> Any:
    return dump(await c.beta.messages.create(**KW))


async def abeta_stream_helper(c: anthropic.AsyncAnthropic) -> Any:
    async with c.beta.messages.stream(**KW) as s:
        return dump(await s.get_final_message())


async def abeta_parse(c: anthropic.AsyncAnthropic) -> Any:
    r = await c.beta.messages.parse(**KW, output_format=Answer)
    return r.parsed_output


ASYNC_PATHS = [
    acreate,
    acreate_stream,
    astream_helper,
    astream_helper_text_stream,
    aparse,
    araw,
    araw_unparsed,
    astreaming_response,
    astreaming_response_stream,
    abeta_create,
    abeta_stream_helper,
    abeta_parse,
]


@pytest.mark.parametrize("path", ASYNC_PATHS, ids=[p.__name__ for p in ASYNC_PATHS])
def test_async_path_same_result_and_one_record(path, clients, fresh_tracker):
    client = clients[1]
    without, with_ = off_then_on(path, client, fresh_tracker)
    assert with_ == without
    _check_one_record(fresh_tracker)


# ---------------------------------------------------------------------------- usage details


def _message(usage: dict[str, Any], content: list[dict[str, Any]] | None = None,
             stop_reason: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_x", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": content or [{"type": "text", "text": "ok"}], "stop_reason": stop_reason,
        "stop_sequence": None, "usage": usage,
    }


def test_one_hour_cache_writes_and_thinking_tokens(clients, wire, fresh_tracker, active):
    wire.overrides["/messages"] = _message({
        "input_tokens": 100, "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 500,
        "output_tokens": 400, "output_tokens_details": {"thinking_tokens": 250},
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    })
    clients[0].messages.create(**KW)
    (r,) = fresh_tracker.records()
    assert (r.input_tokens, r.cached_input_tokens, r.cache_write_tokens) == (3600, 500, 3000)
    assert (r.output_tokens, r.reasoning_tokens) == (400, 250)
    # claude-sonnet-4-5 per 1M: $3 input, $0.30 cache read, $3.75 5m write, $6 1h write, $15 output
    assert r.cost_usd == pytest.approx((100 * 3 + 500 * 0.30 + 1000 * 3.75 + 2000 * 6 + 400 * 15) / 1e6)


def test_usage_without_cache_fields(clients, wire, fresh_tracker, active):
    wire.overrides["/messages"] = _message({"input_tokens": 20, "output_tokens": 5})
    clients[0].messages.create(**KW)
    (r,) = fresh_tracker.records()
    assert (r.input_tokens, r.output_tokens, r.cached_input_tokens, r.cache_write_tokens) == (20, 5, 0, 0)


def test_stream_usage_is_start_overlaid_with_non_null_delta(clients, wire, fresh_tracker, active):
    from wire import sse

    start = {"type": "message_start", "message": {**_message(
        {"input_tokens": 30, "cache_read_input_tokens": 70, "cache_creation_input_tokens": 0,
         "output_tokens": 1}), "content": [], "stop_reason": None}}
    # the delta has the cumulative output, a null cache read (keep the start's) and a cache write
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
             "usage": {"output_tokens": 42, "input_tokens": None, "cache_read_input_tokens": None,
                       "cache_creation_input_tokens": 8}}
    import json

    wire.routes["/messages"] = lambda req, body: sse([
        f"event: message_start\ndata: {json.dumps(start)}\n\n",
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        '"content_block":{"type":"text","text":""}}\n\n',
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"text_delta","text":"ok"}}\n\n',
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
        f"event: message_delta\ndata: {json.dumps(delta)}\n\n",
        'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ])
    with clients[0].messages.stream(**KW) as s:
        assert s.get_final_text() == "ok"
    (r,) = fresh_tracker.records()
    assert (r.input_tokens, r.cached_input_tokens, r.cache_write_tokens, r.output_tokens) == (108, 70, 8, 42)


# ---------------------------------------------------------------------------- edges


def test_count_tokens_is_not_billed(clients, fresh_tracker, active):
    assert clients[0].messages.count_tokens(model=MODEL, messages=MSG).input_tokens == 42
    assert clients[0].beta.messages.count_tokens(model=MODEL, messages=MSG).input_tokens == 42
    assert asyncio.run(clients[1].messages.count_tokens(model=MODEL, messages=MSG)).input_tokens == 42
    assert fresh_tracker.records() == []


def test_abandoned_stream_keeps_what_message_start_said(clients, fresh_tracker, active):
    # anthropic iterates a copy of the stream: closing the original must still see its events
    stream = clients[0].messages.create(**KW, stream=True)
    assert next(stream).type == "message_start"
    stream.close()
    del stream
    gc.collect()
    (r,) = fresh_tracker.records()
    assert (r.model, r.input_tokens, r.cached_input_tokens, r.output_tokens) == (FULL[0], FULL[1], 4096, 1)


def test_stream_helper_left_early_is_recorded_once(clients, fresh_tracker, active):
    with clients[0].messages.stream(**KW) as s:
        next(iter(s))
    gc.collect()
    assert len(fresh_tracker.records()) == 1


def test_api_error_propagates_unchanged_and_records_nothing(clients, wire, fresh_tracker, active):
    wire.routes["/messages"] = lambda req, body: httpx2.Response(
        529, json={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    with pytest.raises(anthropic.APIStatusError) as info:
        clients[0].messages.create(**KW)
    assert info.value.status_code == 529
    assert fresh_tracker.records() == []


def test_error_event_inside_stream_propagates_and_partial_is_recorded(clients, wire, fresh_tracker, active):
    from wire import fixture_text, sse, sse_events

    events = sse_events(fixture_text("anthropic_stream.sse"))[:2]
    events.append('event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
                  '"message":"Overloaded"}}\n\n')
    wire.routes["/messages"] = lambda req, body: sse(events)
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        list(clients[0].messages.create(**KW, stream=True))
    (r,) = fresh_tracker.records()
    assert (r.input_tokens, r.output_tokens) == (FULL[1], 1)


def test_beta_tool_runner_records_every_request(clients, wire, fresh_tracker, active):
    from anthropic import beta_tool

    @beta_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    answers = iter([
        _message({"input_tokens": 50, "output_tokens": 20}, [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
            stop_reason="tool_use"),
        _message({"input_tokens": 90, "output_tokens": 10}),
    ])
    wire.routes["/messages"] = lambda req, body: httpx2.Response(200, json=next(answers))
    runner = clients[0].beta.messages.tool_runner(**KW, tools=[get_weather])
    final = runner.until_done()
    assert final.content[0].text == "ok"
    assert wire.count == 2
    assert [(r.input_tokens, r.output_tokens) for r in fresh_tracker.records()] == [(50, 20), (90, 10)]


def test_client_built_before_activation_is_recorded(wire, fresh_tracker):
    from wire import anthropic_clients

    interceptor.deactivate()
    client = anthropic_clients(wire)[0]
    raw_api = client.messages.with_raw_response  # bound before the patch exists
    interceptor.activate()
    try:
        raw_api.create(**KW).parse()
    finally:
        interceptor.deactivate()
    _check_one_record(fresh_tracker)


def test_activate_reports_anthropic(active):
    assert "anthropic" in interceptor.patched_providers()
