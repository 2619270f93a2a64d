"""Every Google GenAI SDK path, run with and without tokenspy: the user sees the same thing, and
each HTTP call makes exactly one record with the right model and tokens (automatic function
calling and automatic continuation included). Also: the legacy ``google.generativeai`` SDK is
absent here, and that must cost nothing.

A real ``google.genai.Client`` over ``httpx2.MockTransport`` (tests/wire.py, fixtures
google_generate_content.json and google_stream.sse).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import inspect
import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from google.genai import errors, types

from conformance import dump, off_then_on
from tokenspy import interceptor

MODEL = "gemini-2.5-flash"
# (model, input, output = candidates + thoughts, cached, reasoning = thoughts)
FULL = ("gemini-2.5-flash", 1200, 300 + 128, 1024, 128)


@pytest.fixture
def client(wire):
    from wire import google_client

    return google_client(wire)


# ---------------------------------------------------------------------------- sync paths


def generate(c: Any) -> Any:
    r = c.models.generate_content(model=MODEL, contents="hi")
    return (dump(r), r.text)


def generate_models_prefix(c: Any) -> Any:
    return dump(c.models.generate_content(model=f"models/{MODEL}", contents="hi"))


def generate_with_config(c: Any) -> Any:
    cfg = types.GenerateContentConfig(temperature=0.1, thinking_config=types.ThinkingConfig(thinking_budget=64))
    return dump(c.models.generate_content(model=MODEL, contents="hi", config=cfg))


def stream_list(c: Any) -> Any:
    stream = c.models.generate_content_stream(model=MODEL, contents="hi")
    assert inspect.isgenerator(stream)
    return dump(list(stream))


def stream_next_and_close(c: Any) -> Any:
    stream = c.models.generate_content_stream(model=MODEL, contents="hi")
    first = next(stream)
    rest = list(stream)
    stream.close()
    return dump([first, *rest])


def stream_text(c: Any) -> Any:
    return [chunk.text for chunk in c.models.generate_content_stream(model=MODEL, contents="hi")]


def chat_send_message(c: Any) -> Any:
    chat = c.chats.create(model=MODEL)
    r = chat.send_message("hi")
    return (dump(r), dump(chat.get_history()))


def chat_send_message_stream(c: Any) -> Any:
    chat = c.chats.create(model=MODEL)
    stream = chat.send_message_stream("hi")
    assert inspect.isgenerator(stream)
    chunks = [ch.text for ch in stream]
    return (chunks, dump(chat.get_history()))


SYNC_PATHS: list[Callable[[Any], Any]] = [
    generate,
    generate_models_prefix,
    generate_with_config,
    stream_list,
    stream_next_and_close,
    stream_text,
    chat_send_message,
    chat_send_message_stream,
]


def _check(tracker, expected: list[tuple] | None = None) -> None:
    expected = expected or [FULL]
    recs = tracker.records()
    got = [(r.model, r.input_tokens, r.output_tokens, r.cached_input_tokens, r.reasoning_tokens) for r in recs]
    assert got == expected
    for r in recs:
        assert r.provider == "google"
        assert r.priced and r.cost_usd > 0


@pytest.mark.parametrize("path", SYNC_PATHS, ids=[p.__name__ for p in SYNC_PATHS])
def test_sync_path_same_result_and_one_record(path, client, wire, fresh_tracker):
    without, with_ = off_then_on(path, client, fresh_tracker)
    assert with_ == without
    assert wire.bodies[0] == wire.bodies[1]
    _check(fresh_tracker)


# ---------------------------------------------------------------------------- async paths


async def agenerate(c: Any) -> Any:
    r = await c.aio.models.generate_content(model=MODEL, contents="hi")
    return (dump(r), r.text)


async def astream(c: Any) -> Any:
    stream = await c.aio.models.generate_content_stream(model=MODEL, contents="hi")
    assert inspect.isasyncgen(stream)
    first = await stream.__anext__()
    rest = [ch async for ch in stream]
    await stream.aclose()
    return dump([first, *rest])


async def achat_send_message(c: Any) -> Any:
    chat = c.aio.chats.create(model=MODEL)
    r = await chat.send_message("hi")
    return (dump(r), dump(chat.get_history()))


async def achat_send_message_stream(c: Any) -> Any:
    chat = c.aio.chats.create(model=MODEL)
    stream = await chat.send_message_stream("hi")
    assert inspect.isasyncgen(stream)
    chunks = [ch.text async for ch in stream]
    return (chunks, dump(chat.get_history()))


ASYNC_PATHS = [agenerate, astream, achat_send_message, achat_send_message_stream]


@pytest.mark.parametrize("path", ASYNC_PATHS, ids=[p.__name__ for p in ASYNC_PATHS])
def test_async_path_same_result_and_one_record(path, client, fresh_tracker):
    without, with_ = off_then_on(path, client, fresh_tracker)
    assert with_ == without
    _check(fresh_tracker)


# ---------------------------------------------------------------------------- automatic function calling

CALL_USAGE = {"promptTokenCount": 60, "candidatesTokenCount": 12, "thoughtsTokenCount": 20,
              "totalTokenCount": 92}
TEXT_USAGE = {"promptTokenCount": 140, "candidatesTokenCount": 30, "cachedContentTokenCount": 40,
              "totalTokenCount": 170}
AFC_RECORDS = [("gemini-2.5-flash", 60, 32, 0, 20), ("gemini-2.5-flash", 140, 30, 40, 0)]


def _candidate(part: dict[str, Any], finish: str | None = "STOP", **extra: Any) -> dict[str, Any]:
    cand = {"content": {"role": "model", "parts": [part]}, "index": 0, **extra}
    if finish:
        cand["finishReason"] = finish
    return cand


def _body(part: dict[str, Any], usage: dict[str, Any], finish: str | None = "STOP", **extra: Any) -> dict:
    return {"candidates": [_candidate(part, finish, **extra)], "usageMetadata": usage,
            "modelVersion": "gemini-2.5-flash"}


FUNCTION_CALL = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}


def _afc_wire(wire) -> list[str]:
    """First call: the model asks for get_weather; second call (with its result): text."""
    from wire import sse

    seen: list[str] = []

    def answer(req: httpx2.Request, body: dict[str, Any]) -> httpx2.Response:
        has_result = any("functionResponse" in p for c in body.get("contents", []) for p in c.get("parts", []))
        seen.append("result" if has_result else "question")
        data = _body({"text": "It is sunny in Paris."}, TEXT_USAGE) if has_result else _body(FUNCTION_CALL, CALL_USAGE)
        if ":streamGenerateContent" in req.url.path:
            return sse([f"data: {json.dumps(data)}\n\n"])
        return httpx2.Response(200, json=data)

    wire.routes[":generateContent"] = answer
    wire.routes[":streamGenerateContent"] = answer
    return seen


calls: list[str] = []


def get_weather(city: str) -> str:
    """Returns the weather in a city."""
    calls.append(city)
    return f"sunny in {city}"


def _afc_config(fn: Any = get_weather) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(tools=[fn])


def test_afc_generate_content_records_every_hop(client, wire, fresh_tracker, active):
    seen = _afc_wire(wire)
    calls.clear()
    r = client.models.generate_content(model=MODEL, contents="weather in Paris?", config=_afc_config())
    assert r.text == "It is sunny in Paris."
    assert seen == ["question", "result"] and calls == ["Paris"]
    # the SDK reports only the last call's usage ...
    assert r.usage_metadata.prompt_token_count == 140
    # ... tokenspy records both calls, each with its own tokens
    _check(fresh_tracker, AFC_RECORDS)


def test_afc_chat_and_stream_record_every_hop(client, wire, fresh_tracker, active):
    _afc_wire(wire)
    chat = client.chats.create(model=MODEL, config=_afc_config())
    assert chat.send_message("weather in Paris?").text == "It is sunny in Paris."
    text = "".join(ch.text or "" for ch in client.models.generate_content_stream(
        model=MODEL, contents="weather in Paris?", config=_afc_config()))
    assert "sunny" in text
    _check(fresh_tracker, AFC_RECORDS * 2)


def test_afc_async_records_every_hop(client, wire, fresh_tracker, active):
    _afc_wire(wire)

    async def get_weather(city: str) -> str:
        """Returns the weather in a city."""
        return f"sunny in {city}"

    async def main():
        r = await client.aio.models.generate_content(
            model=MODEL, contents="weather in Paris?", config=_afc_config(get_weather))
        chunks = [ch async for ch in await client.aio.models.generate_content_stream(
            model=MODEL, contents="weather in Paris?", config=_afc_config(get_weather))]
        return r.text, chunks

    text, chunks = asyncio.run(main())
    assert text == "It is sunny in Paris." and chunks
    _check(fresh_tracker, AFC_RECORDS * 2)


def test_afc_same_result_with_and_without_tokenspy(client, wire, fresh_tracker):
    _afc_wire(wire)
    interceptor.deactivate()
    without = dump(client.models.generate_content(model=MODEL, contents="q", config=_afc_config()))
    interceptor.activate()
    try:
        with_ = dump(client.models.generate_content(model=MODEL, contents="q", config=_afc_config()))
    finally:
        interceptor.deactivate()
    assert with_ == without
    assert len(fresh_tracker.records()) == 2


def test_automatic_continuation_records_every_hop(client, wire, fresh_tracker, active):
    token = base64.b64encode(b"resume-here").decode()
    answers = iter([
        _body({"text": "first half, "}, {"promptTokenCount": 100, "candidatesTokenCount": 50,
                                         "totalTokenCount": 150}, "CONTINUATION", continuationToken=token),
        _body({"text": "second half"}, {"promptTokenCount": 100, "candidatesTokenCount": 20,
                                        "totalTokenCount": 120}),
    ])
    wire.routes[":generateContent"] = lambda req, body: httpx2.Response(200, json=next(answers))
    client.models.generate_content(model=MODEL, contents="long story")
    assert wire.count == 2
    _check(fresh_tracker, [("gemini-2.5-flash", 100, 50, 0, 0), ("gemini-2.5-flash", 100, 20, 0, 0)])


# ---------------------------------------------------------------------------- usage details


def test_tool_use_prompt_tokens_count_as_input(client, wire, fresh_tracker, active):
    wire.overrides[":generateContent"] = _body({"text": "ok"}, {
        "promptTokenCount": 100, "toolUsePromptTokenCount": 25, "candidatesTokenCount": 10,
        "totalTokenCount": 135})
    client.models.generate_content(model=MODEL, contents="hi")
    _check(fresh_tracker, [("gemini-2.5-flash", 125, 10, 0, 0)])


def test_model_from_model_version_else_requested_without_prefix(client, wire, fresh_tracker, active):
    body = _body({"text": "ok"}, {"promptTokenCount": 10, "candidatesTokenCount": 1, "totalTokenCount": 11})
    body["modelVersion"] = "models/gemini-2.5-pro"
    wire.overrides[":generateContent"] = body
    client.models.generate_content(model=MODEL, contents="hi")
    del body["modelVersion"]
    client.models.generate_content(model="models/gemini-2.0-flash", contents="hi")
    assert [r.model for r in fresh_tracker.records()] == ["gemini-2.5-pro", "gemini-2.0-flash"]


def test_stream_takes_the_last_chunks_usage_never_the_sum(client, fresh_tracker, active):
    # google_stream.sse: chunk 1 says 1200 prompt tokens, chunk 2 the final 1200/300/128
    list(client.models.generate_content_stream(model=MODEL, contents="hi"))
    _check(fresh_tracker)


def test_raw_http_response_config_is_recorded(client, fresh_tracker, active):
    cfg = types.GenerateContentConfig(should_return_http_response=True)
    r = client.models.generate_content(model=MODEL, contents="hi", config=cfg)
    assert r.sdk_http_response.body
    _check(fresh_tracker)


# ---------------------------------------------------------------------------- edges


def test_abandoned_stream_is_recorded_once(client, fresh_tracker, active):
    stream = client.models.generate_content_stream(model=MODEL, contents="hi")
    next(stream)
    del stream
    gc.collect()
    recs = fresh_tracker.records()
    assert len(recs) == 1  # what the first chunk said: 1200 prompt tokens, nothing out yet
    assert (recs[0].input_tokens, recs[0].output_tokens) == (1200, 0)


def test_abandoned_async_stream_is_recorded_once(client, fresh_tracker, active):
    async def main():
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="hi")
        async for _ in stream:
            break
        await stream.aclose()

    asyncio.run(main())
    assert len(fresh_tracker.records()) == 1


def test_api_error_propagates_unchanged_and_records_nothing(client, wire, fresh_tracker, active):
    err = {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}
    wire.routes[":generateContent"] = lambda req, body: httpx2.Response(429, json=err)
    wire.routes[":streamGenerateContent"] = lambda req, body: httpx2.Response(429, json=err)
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents="hi")
    assert info.value.code == 429
    with pytest.raises(errors.ClientError):
        list(client.models.generate_content_stream(model=MODEL, contents="hi"))

    async def main():
        with pytest.raises(errors.ClientError):
            [ch async for ch in await client.aio.models.generate_content_stream(model=MODEL, contents="hi")]

    asyncio.run(main())
    assert fresh_tracker.records() == []


def test_non_billed_calls_are_not_recorded(client, wire, fresh_tracker, active):
    wire.routes[":countTokens"] = lambda req, body: httpx2.Response(200, json={"totalTokens": 7})
    assert client.models.count_tokens(model=MODEL, contents="hi").total_tokens == 7
    assert fresh_tracker.records() == []


def test_activate_reports_google_and_not_the_absent_legacy_sdk():
    import importlib.util

    assert importlib.util.find_spec("google.generativeai") is None  # not installed here
    was = interceptor.is_active()
    try:
        patched = interceptor.activate()
    finally:
        if not was:
            interceptor.deactivate()
    assert "google" in patched
    assert "google_legacy" not in patched


def test_legacy_module_patch_says_absent_and_raises_nothing():
    from tokenspy.interceptor import google_legacy
    from tokenspy.interceptor._patch import Patcher

    patcher = Patcher()
    assert google_legacy.patch(patcher) is False
    assert patcher._saved == []
