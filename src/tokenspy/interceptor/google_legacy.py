"""Legacy Google SDK (``google.generativeai``, deprecated by Google): when it is installed,
``GenerativeModel.generate_content`` and ``generate_content_async``, plain and ``stream=True``;
``ChatSession.send_message`` calls these, one record per request. Nothing happens (and nothing
is imported) when the package is absent.

A streamed response is the SDK's own ``GenerateContentResponse``: it has already read the first
chunk when it is returned, and reads the rest from its private ``_iterator``, which we replace by
a generator of the same kind that sees each chunk on its way. The call is recorded when the
stream ends, fails, is closed, or when the response is dropped unread. Usage is cumulative: the
last chunk's ``usage_metadata`` is the call's.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from tokenspy import recorder
from tokenspy.interceptor._patch import Patcher
from tokenspy.interceptor.google_genai import model_name, usage_of
from tokenspy.recorder import Pending

PROVIDER = "google"


def _has(message: Any, field: str) -> bool:
    """A proto-plus field that is set (``in`` works on proto-plus messages)."""
    try:
        return field in message
    except TypeError:
        return getattr(message, field, None) is not None


class _Last:
    __slots__ = ("model", "usage")

    def __init__(self, p: Pending) -> None:
        self.usage: Any = None
        self.model: str | None = p.model

    def feed(self, chunk: Any) -> None:
        if chunk is None:
            return
        if _has(chunk, "usage_metadata"):
            self.usage = chunk.usage_metadata
        if _has(chunk, "model_version") and getattr(chunk, "model_version", None):
            self.model = model_name(chunk.model_version) or self.model


def _end(p: Pending, last: _Last) -> Any:
    if p.done:
        return None
    try:
        usage = usage_of(last.usage) if last.usage is not None else None
        return recorder.finish(p, usage, last.model)
    except Exception as exc:
        recorder.internal_error(exc)
        return None


def _begin(model: Any) -> Pending | None:
    try:
        return recorder.begin(PROVIDER, model_name(getattr(model, "model_name", None)))
    except Exception as exc:
        recorder.internal_error(exc)
        return None


def _proto(response: Any) -> Any:
    """The low-level response proto behind a ``GenerateContentResponse``."""
    return getattr(response, "_result", None)


def _record_now(p: Pending, response: Any) -> Any:
    last = _Last(p)
    last.feed(_proto(response))
    return _end(p, last)


def _sync_chunks(inner: Iterator[Any], p: Pending, last: _Last) -> Iterator[Any]:
    error = None
    try:
        for chunk in inner:
            last.feed(chunk)
            yield chunk
        error = _end(p, last)
    finally:
        _end(p, last)
    recorder.raise_budget(error)


async def _async_chunks(inner: AsyncIterator[Any], p: Pending, last: _Last) -> AsyncIterator[Any]:
    error = None
    try:
        async for chunk in inner:
            last.feed(chunk)
            yield chunk
        error = _end(p, last)
    finally:
        _end(p, last)
    recorder.raise_budget(error)


def _follow(p: Pending, response: Any, chunks: Callable[..., Any]) -> None:
    """Observe the rest of a streamed response through its ``_iterator``."""
    last = _Last(p)
    for chunk in getattr(response, "_chunks", None) or ():  # already read by from_iterator
        last.feed(chunk)
    inner = getattr(response, "_iterator", None)
    if inner is None or getattr(response, "_done", False):
        _end(p, last)
        return
    response._iterator = chunks(inner, p, last)
    # dropped before being read to the end (or at all): the call was still paid for
    weakref.finalize(response, _end, p, last)


def _is_stream(kwargs: dict[str, Any]) -> bool:
    return bool(kwargs.get("stream", False))  # keyword-only in the SDK


def _after_call(p: Pending | None, response: Any, stream: bool, chunks: Callable[..., Any]) -> Any:
    """Record (or follow the stream of) one call; the response is returned untouched."""
    if p is None:
        return response
    error = None
    try:
        if stream:
            _follow(p, response, chunks)
        else:
            error = _record_now(p, response)
    except Exception as exc:
        recorder.internal_error(exc)
    recorder.raise_budget(error)
    return response


def _sync_generate(orig: Callable[..., Any]) -> Callable[..., Any]:
    def generate_content(self: Any, *args: Any, **kwargs: Any) -> Any:
        p = _begin(self)
        return _after_call(p, orig(self, *args, **kwargs), _is_stream(kwargs), _sync_chunks)

    return generate_content


def _async_generate(orig: Callable[..., Any]) -> Callable[..., Any]:
    async def generate_content_async(self: Any, *args: Any, **kwargs: Any) -> Any:
        p = _begin(self)
        return _after_call(p, await orig(self, *args, **kwargs), _is_stream(kwargs), _async_chunks)

    return generate_content_async


def _import() -> Any:
    """``google.generativeai.generative_models``, or None when the package is not installed."""
    if "google.generativeai.generative_models" in sys.modules:
        return sys.modules["google.generativeai.generative_models"]
    if importlib.util.find_spec("google.generativeai") is None:
        return None
    # Importing it announces Google's end of support for the package: the user did not import
    # it (only tokenspy did, to patch it), so that notice is not theirs to see from us.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        return importlib.import_module("google.generativeai.generative_models")


def patch(patcher: Patcher) -> bool:
    try:
        generative_models = _import()
    except (ImportError, ValueError):
        return False
    cls = getattr(generative_models, "GenerativeModel", None)
    if cls is None or "generate_content" not in cls.__dict__:
        return False
    patcher.patch(cls, "generate_content", _sync_generate)
    if "generate_content_async" in cls.__dict__:
        patcher.patch(cls, "generate_content_async", _async_generate)
    return True
