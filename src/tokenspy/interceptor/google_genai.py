"""Google GenAI SDK (``google-genai``): generate_content and generate_content_stream, sync and
async (``client.aio``), and the chats built on them.

The patch points are the private per-request methods ``Models._generate_content`` /
``_generate_content_stream`` and their ``AsyncModels`` twins: every HTTP call that generates
content goes through exactly one of them, below the SDK's automatic-function-calling and
automatic-continuation loops. Those loops make several HTTP calls for one public call and the
response they return carries only the last call's usage; patched here, each hop is one record
with its own tokens. Chats (``client.chats`` / ``client.aio.chats``) call the public methods,
so they are covered too.

What the user receives is unchanged: the response object itself, and for streams the SDK's own
public generator, which iterates ours one layer down (same chunks, same kind of generator).
Streams carry cumulative usage: the last chunk's is the call's. A stream is recorded when it
ends, fails after its first chunk, or is closed or dropped early.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from tokenspy import recorder
from tokenspy.interceptor._patch import Patcher
from tokenspy.recorder import Pending, Usage
from tokenspy.usage_source import Request, jsonable, text_of

PROVIDER = "google"


def _get(obj: Any, snake: str, camel: str) -> Any:
    """A field of a pydantic model (snake_case) or of the JSON body (camelCase)."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        value = obj.get(camel)
        return obj.get(snake) if value is None else value
    return getattr(obj, snake, None)


def model_name(name: Any) -> str | None:
    """``models/gemini-2.5-flash`` and ``publishers/google/models/x`` -> the bare model id."""
    if not isinstance(name, str) or not name:
        return None
    if name.startswith("models/") or "/models/" in name:
        return name.rsplit("models/", 1)[1]
    return name


def usage_of(um: Any) -> Usage:
    """Usage from ``usage_metadata`` (model or camelCase dict), with CallRecord semantics."""
    prompt = _get(um, "prompt_token_count", "promptTokenCount") or 0
    tool_prompt = _get(um, "tool_use_prompt_token_count", "toolUsePromptTokenCount") or 0
    candidates = _get(um, "candidates_token_count", "candidatesTokenCount") or 0
    thoughts = _get(um, "thoughts_token_count", "thoughtsTokenCount") or 0
    cached = _get(um, "cached_content_token_count", "cachedContentTokenCount") or 0
    total_in = prompt + tool_prompt
    return Usage(total_in, candidates + thoughts, min(cached, total_in), 0, thoughts)


def _result_of(response: Any, requested: str | None) -> tuple[str | None, Usage | None]:
    um = _get(response, "usage_metadata", "usageMetadata")
    model = model_name(_get(response, "model_version", "modelVersion")) or requested
    if um is None and not isinstance(response, dict):
        # config.should_return_http_response: only the raw body was kept
        body = getattr(getattr(response, "sdk_http_response", None), "body", None)
        if isinstance(body, str) and body:
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            if isinstance(data, dict):
                return _result_of(data, requested)
    return model, (usage_of(um) if um is not None else None)


def _begin(kwargs: dict[str, Any]) -> Pending | None:
    try:
        request = None
        if recorder.request_mode():  # the SDK's snake_case request, as tokenspy.tokens reads it
            body = {"contents": jsonable(kwargs.get("contents")), "config": jsonable(kwargs.get("config")) or {}}
            request = Request("generate_content", body)
        return recorder.begin(PROVIDER, model_name(kwargs.get("model")), 2, request)
    except Exception as exc:
        recorder.internal_error(exc)
        return None


def _finish(p: Pending, response: Any) -> Any:
    try:
        model, usage = _result_of(response, p.model)
        return recorder.finish(p, usage, model, response)
    except Exception as exc:
        recorder.internal_error(exc)
        return None


class _Last:
    """What a stream said last: usage is cumulative, so the last one is the call's."""

    __slots__ = ("model", "pieces", "seen", "usage")

    def __init__(self, p: Pending) -> None:
        self.usage: Any = None
        self.model: Any = None
        self.seen = 0
        # request mode: the answer as delivered (text parts, function calls)
        self.pieces: list[str] | None = [] if p.request is not None else None

    def _collect(self, chunk: Any) -> None:
        assert self.pieces is not None
        for cand in (getattr(chunk, "candidates", None) or ())[:1]:
            for part in getattr(getattr(cand, "content", None), "parts", None) or ():
                if getattr(part, "thought", None):
                    continue
                text = getattr(part, "text", None)
                if text:
                    self.pieces.append(text)
                call = getattr(part, "function_call", None)
                if call is not None:
                    self.pieces += [getattr(call, "name", None) or "", text_of(getattr(call, "args", None) or {})]

    def feed(self, chunk: Any) -> None:
        self.seen += 1
        if self.pieces is not None:
            self._collect(chunk)
        um = getattr(chunk, "usage_metadata", None)
        if um is not None:
            self.usage = um
        version = getattr(chunk, "model_version", None)
        if version:
            self.model = version


def _finish_stream(p: Pending, last: _Last) -> Any:
    if p.done or not last.seen:  # nothing came back: the request failed, nothing was billed
        return None
    try:
        usage = usage_of(last.usage) if last.usage is not None else None
        answer = "".join(last.pieces) if last.pieces is not None else None
        return recorder.finish(p, usage, model_name(last.model) or p.model, answer)
    except Exception as exc:
        recorder.internal_error(exc)
        return None


def _sync_generate(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _generate_content(self: Any, *args: Any, **kwargs: Any) -> Any:
        p = _begin(kwargs)
        response = orig(self, *args, **kwargs)
        if p is not None:
            recorder.raise_budget(_finish(p, response))
        return response

    return _generate_content


def _async_generate(orig: Callable[..., Any]) -> Callable[..., Any]:
    async def _generate_content(self: Any, *args: Any, **kwargs: Any) -> Any:
        p = _begin(kwargs)
        response = await orig(self, *args, **kwargs)
        if p is not None:
            recorder.raise_budget(_finish(p, response))
        return response

    return _generate_content


def _sync_stream(orig: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    def _generate_content_stream(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        # A generator like the original: the request starts on the first next(), as before.
        p = _begin(kwargs)
        inner = orig(self, *args, **kwargs)
        if p is None:
            yield from inner
            return
        last = _Last(p)
        error = None
        try:
            for chunk in inner:
                last.feed(chunk)
                yield chunk
            error = _finish_stream(p, last)
        finally:
            # closed or dropped early, or failed mid-stream: what was seen was paid for
            _finish_stream(p, last)
            inner.close()
        recorder.raise_budget(error)

    return _generate_content_stream


async def _observe(inner: AsyncIterator[Any], p: Pending) -> AsyncIterator[Any]:
    last = _Last(p)
    error = None
    try:
        async for chunk in inner:
            last.feed(chunk)
            yield chunk
        error = _finish_stream(p, last)
    finally:
        _finish_stream(p, last)
        aclose = getattr(inner, "aclose", None)
        if aclose is not None:
            await aclose()
    recorder.raise_budget(error)


def _async_stream(orig: Callable[..., Any]) -> Callable[..., Any]:
    async def _generate_content_stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        # The original is a coroutine that makes the request and returns an async generator.
        p = _begin(kwargs)
        inner = await orig(self, *args, **kwargs)
        if p is None:
            return inner
        return _observe(inner, p)

    return _generate_content_stream


def patch(patcher: Patcher) -> bool:
    try:
        from google.genai import models
    except ImportError:
        return False
    patcher.patch(models.Models, "_generate_content", _sync_generate)
    patcher.patch(models.Models, "_generate_content_stream", _sync_stream)
    patcher.patch(models.AsyncModels, "_generate_content", _async_generate)
    patcher.patch(models.AsyncModels, "_generate_content_stream", _async_stream)
    return True
