"""Every OpenAI SDK path, run with and without tokenspy: the user sees the same thing, and each
path makes exactly one record with the right model and tokens.

Real ``openai.OpenAI``/``AsyncOpenAI`` clients over ``httpx2.MockTransport`` (tests/wire.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pydantic
import pytest

import tokenspy
from conformance import dump, off_then_on
from tokenspy import interceptor

MSG = [{"role": "user", "content": "hi"}]
CHAT = ("gpt-4o", 1200, 300, 1024, 128)
CHAT_STREAM = ("gpt-4o-2024-08-06", 1200, 300, 1024, 128)
RESP = ("gpt-5-2025-08-07", 1200, 300, 1024, 128)
EMB = ("text-embedding-3-small", 8, 0, 0, 0)
COMPL = ("gpt-3.5-turbo-instruct", 5, 1, 0, 0)


class Answer(pydantic.BaseModel):
    answer: str


# ---------------------------------------------------------------------------- sync paths


def chat_create(c: openai.OpenAI) -> Any:
    return dump(c.chat.completions.create(model="gpt-4o", messages=MSG))


def chat_stream_iter(c: openai.OpenAI) -> Any:
    stream = c.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    assert isinstance(stream, openai.Stream)
    assert isinstance(stream.response, httpx2.Response)
    return dump(list(stream))


def chat_stream_next_with(c: openai.OpenAI) -> Any:
    with c.chat.completions.create(model="gpt-4o", messages=MSG, stream=True) as stream:
        first = next(stream)
        rest = list(stream)
    return dump([first, *rest])


def chat_stream_user_usage(c: openai.OpenAI) -> Any:
    # the user asked for usage themselves: they must still see the usage chunk
    stream = c.chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    return dump(list(stream))


def chat_parse(c: openai.OpenAI) -> Any:
    r = c.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Answer)
    return (dump(r), r.choices[0].message.parsed)


def chat_stream_helper(c: openai.OpenAI) -> Any:
    with c.chat.completions.stream(model="gpt-4o", messages=MSG) as s:
        events = [e.type for e in s]
        final = s.get_final_completion()
    return (events, dump(final))


def chat_raw(c: openai.OpenAI) -> Any:
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)
    return (type(raw).__name__, raw.status_code, dump(raw.parse()), dump(raw.parse()))


def chat_raw_unparsed(c: openai.OpenAI) -> Any:
    # the user only reads the headers: the call was still paid for
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)
    return (type(raw).__name__, raw.headers.get("content-type"))


def chat_raw_stream(c: openai.OpenAI) -> Any:
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG, stream=True)
    return dump(list(raw.parse()))


def chat_streaming_response(c: openai.OpenAI) -> Any:
    with c.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MSG) as r:
        return (type(r).__name__, dump(r.parse()))


def chat_streaming_response_stream(c: openai.OpenAI) -> Any:
    with c.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MSG, stream=True) as r:
        return dump(list(r.parse()))


def responses_create(c: openai.OpenAI) -> Any:
    return dump(c.responses.create(model="gpt-5", input="hi"))


def responses_stream(c: openai.OpenAI) -> Any:
    return [e.type for e in c.responses.create(model="gpt-5", input="hi", stream=True)]


def responses_parse(c: openai.OpenAI) -> Any:
    r = c.responses.parse(model="gpt-5", input="hi", text_format=Answer)
    return (dump(r), r.output_parsed)


def responses_stream_helper(c: openai.OpenAI) -> Any:
    with c.responses.stream(model="gpt-5", input="hi") as s:
        events = [e.type for e in s]
        final = s.get_final_response()
    return (events, dump(final))


def responses_raw(c: openai.OpenAI) -> Any:
    return dump(c.responses.with_raw_response.create(model="gpt-5", input="hi").parse())


def embeddings_create(c: openai.OpenAI) -> Any:
    return dump(c.embeddings.create(model="text-embedding-3-small", input="hi"))


def completions_create(c: openai.OpenAI) -> Any:
    return dump(c.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi"))


def completions_stream(c: openai.OpenAI) -> Any:
    return dump(list(c.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", stream=True)))


SYNC_PATHS: list[tuple[Callable[[openai.OpenAI], Any], tuple]] = [
    (chat_create, CHAT),
    (chat_stream_iter, CHAT_STREAM),
    (chat_stream_next_with, CHAT_STREAM),
    (chat_stream_user_usage, CHAT_STREAM),
    (chat_parse, CHAT),
    (chat_stream_helper, CHAT_STREAM),
    (chat_raw, CHAT),
    (chat_raw_unparsed, CHAT),
    (chat_raw_stream, CHAT_STREAM),
    (chat_streaming_response, CHAT),
    (chat_streaming_response_stream, CHAT_STREAM),
    (responses_create, RESP),
    (responses_stream, RESP),
    (responses_parse, RESP),
    (responses_stream_helper, RESP),
    (responses_raw, RESP),
    (embeddings_create, EMB),
    (completions_create, COMPL),
    (completions_stream, COMPL),
]


def _check_one_record(tracker, expected: tuple) -> None:
    recs = tracker.records()
    assert len(recs) == 1, [(r.model, r.input_tokens) for r in recs]
    r = recs[0]
    assert (r.model, r.input_tokens, r.output_tokens, r.cached_input_tokens, r.reasoning_tokens) == expected
    assert r.provider == "openai"
    assert r.priced
    assert r.cost_usd > 0


@pytest.mark.parametrize(("path", "expected"), SYNC_PATHS, ids=[p.__name__ for p, _ in SYNC_PATHS])
def test_sync_path_same_result_and_one_record(path, expected, oai, fresh_tracker):
    client = oai[0]
    without, with_ = off_then_on(path, client, fresh_tracker)
    assert with_ == without
    _check_one_record(fresh_tracker, expected)


# ---------------------------------------------------------------------------- async paths


async def achat_create(c: openai.AsyncOpenAI) -> Any:
    return dump(await c.chat.completions.create(model="gpt-4o", messages=MSG))


async def achat_stream(c: openai.AsyncOpenAI) -> Any:
    stream = await c.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    assert isinstance(stream, openai.AsyncStream)
    async with stream as s:
        first = await s.__anext__()
        rest = [chunk async for chunk in s]
    return dump([first, *rest])


async def achat_parse(c: openai.AsyncOpenAI) -> Any:
    r = await c.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Answer)
    return dump(r)


async def achat_stream_helper(c: openai.AsyncOpenAI) -> Any:
    async with c.chat.completions.stream(model="gpt-4o", messages=MSG) as s:
        events = [e.type async for e in s]
        final = await s.get_final_completion()
    return (events, dump(final))


async def achat_raw(c: openai.AsyncOpenAI) -> Any:
    raw = await c.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)
    return dump(raw.parse())


async def achat_streaming_response(c: openai.AsyncOpenAI) -> Any:
    async with c.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MSG) as r:
        return dump(await r.parse())


async def achat_streaming_response_stream(c: openai.AsyncOpenAI) -> Any:
    async with c.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MSG, stream=True
    ) as r:
        stream = await r.parse()
        return dump([chunk async for chunk in stream])


async def aresponses_create(c: openai.AsyncOpenAI) -> Any:
    return dump(await c.responses.create(model="gpt-5", input="hi"))


async def aresponses_stream(c: openai.AsyncOpenAI) -> Any:
    return [e.type async for e in await c.responses.create(model="gpt-5", input="hi", stream=True)]


async def aresponses_stream_helper(c: openai.AsyncOpenAI) -> Any:
    async with c.responses.stream(model="gpt-5", input="hi") as s:
        events = [e.type async for e in s]
        final = await s.get_final_response()
    return (events, dump(final))


async def aembeddings(c: openai.AsyncOpenAI) -> Any:
    return dump(await c.embeddings.create(model="text-embedding-3-small", input="hi"))


async def acompletions_stream(c: openai.AsyncOpenAI) -> Any:
    return dump([x async for x in await c.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="hi", stream=True)])


ASYNC_PATHS = [
    (achat_create, CHAT),
    (achat_stream, CHAT_STREAM),
    (achat_parse, CHAT),
    (achat_stream_helper, CHAT_STREAM),
    (achat_raw, CHAT),
    (achat_streaming_response, CHAT),
    (achat_streaming_response_stream, CHAT_STREAM),
    (aresponses_create, RESP),
    (aresponses_stream, RESP),
    (aresponses_stream_helper, RESP),
    (aembeddings, EMB),
    (acompletions_stream, COMPL),
]


@pytest.mark.parametrize(("path", "expected"), ASYNC_PATHS, ids=[p.__name__ for p, _ in ASYNC_PATHS])
def test_async_path_same_result_and_one_record(path, expected, oai, fresh_tracker):
    client = oai[1]
    without, with_ = off_then_on(path, client, fresh_tracker)
    assert with_ == without
    _check_one_record(fresh_tracker, expected)


# ---------------------------------------------------------------------------- edges


def test_client_built_before_activation_is_recorded(wire, fresh_tracker):
    from wire import openai_clients

    interceptor.deactivate()
    client = openai_clients(wire)[0]
    raw = client.chat.completions.with_raw_response  # bound before the patch exists
    interceptor.activate()
    try:
        raw.create(model="gpt-4o", messages=MSG).parse()
    finally:
        interceptor.deactivate()
    _check_one_record(fresh_tracker, CHAT)


def test_abandoned_stream_is_recorded_once(oai, fresh_tracker, active):
    stream = oai[0].chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    next(stream)
    stream.close()
    del stream
    recs = fresh_tracker.records()
    assert len(recs) == 1
    assert recs[0].model == "gpt-4o-2024-08-06"


def test_stream_closed_unread_is_recorded(oai, fresh_tracker, active):
    with oai[0].chat.completions.create(model="gpt-4o", messages=MSG, stream=True):
        pass
    assert len(fresh_tracker.records()) == 1


def test_api_error_propagates_unchanged_and_records_nothing(wire, oai, fresh_tracker, active):
    from wire import error_response

    wire.routes["/chat/completions"] = lambda req, body: error_response(400, "bad request")
    with pytest.raises(openai.BadRequestError) as info:
        oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
    assert info.value.status_code == 400
    assert "bad request" in str(info.value)
    assert fresh_tracker.records() == []


def test_error_inside_stream_propagates_and_partial_is_recorded(wire, oai, fresh_tracker, active):
    from wire import sse

    def broken(req, body):
        return sse([
            'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o",'
            '"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n',
            'data: {"error": {"message": "overloaded"}}\n\n',
        ])

    wire.routes["/chat/completions"] = broken
    stream = oai[0].chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    with pytest.raises(openai.APIError, match="overloaded"):
        list(stream)
    recs = fresh_tracker.records()
    assert len(recs) == 1 and recs[0].model == "gpt-4o"


def test_internal_error_warns_once_and_returns_result_untouched(oai, fresh_tracker, active, monkeypatch):
    from tokenspy import recorder

    def explode(*a, **k):
        raise RuntimeError("pricing exploded")

    monkeypatch.setattr(recorder, "_internal_warned", False)
    monkeypatch.setattr(recorder.pricing, "lookup", explode)
    with pytest.warns(tokenspy.errors.TokenspyWarning, match="internal error") as caught:
        r1 = oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
        r2 = oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
        chunks = list(oai[0].chat.completions.create(model="gpt-4o", messages=MSG, stream=True))
    assert isinstance(r1, openai.types.chat.ChatCompletion)
    assert r1.model_dump() == r2.model_dump()
    assert [c.choices[0].delta.content for c in chunks] == ["", '{"answer": "hi"}', None]
    assert len([w for w in caught if issubclass(w.category, tokenspy.errors.TokenspyWarning)]) == 1


def test_injected_usage_does_not_change_what_the_server_is_asked_otherwise(wire, oai, active):
    list(oai[0].chat.completions.create(model="gpt-4o", messages=MSG, stream=True))
    body = wire.bodies[-1]
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == MSG and body["model"] == "gpt-4o"


def test_non_billed_endpoints_are_not_recorded(wire, oai, fresh_tracker, active):
    wire.routes["/models"] = lambda req, body: httpx2.Response(
        200, json={"object": "list", "data": [{"id": "gpt-4o", "object": "model", "created": 1,
                                                 "owned_by": "openai"}]})
    assert [m.id for m in oai[0].models.list()] == ["gpt-4o"]
    assert fresh_tracker.records() == []
