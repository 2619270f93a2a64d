"""Anthropic SDK: messages and beta messages (sync and async), every public path.

``messages.create`` (plain and ``stream=True``), ``messages.stream()``, ``messages.parse``, the
``beta.messages`` variants (tool runners included: one record per request they make),
``with_raw_response`` and ``with_streaming_response`` all reach ``SyncAPIClient.request`` /
``AsyncAPIClient.request`` with a POST to ``/v1/messages`` (beta adds ``?beta=true``); the
generic Stainless interception (``_stainless.install``) does the rest. ``count_tokens``
(``/v1/messages/count_tokens``) and message batches are not billed per request: not recorded.

Anthropic's ``input_tokens`` excludes the cache: the recorded input is
``input + cache_read + cache_creation`` (the CallRecord semantics), with the reads as cached
input and the creations as cache writes (the 1-hour part from ``cache_creation``). In streams
the usage is ``message_start.message.usage`` overlaid with the non-null ``message_delta.usage``.
"""

from __future__ import annotations

from typing import Any

from tokenspy import recorder
from tokenspy.interceptor._patch import Patcher
from tokenspy.interceptor._stainless import get, install
from tokenspy.recorder import Pending, Usage
from tokenspy.usage_source import Request

PROVIDER = "anthropic"
_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def _billed(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    path = url.split("?", 1)[0].rstrip("/")
    return path.endswith("/messages")


def usage_of(u: Any) -> Usage:
    """Usage from an Anthropic ``usage`` object or dict (totals made inclusive of the cache)."""
    fresh = get(u, "input_tokens") or 0
    read = get(u, "cache_read_input_tokens") or 0
    write = get(u, "cache_creation_input_tokens") or 0
    write_1h = get(get(u, "cache_creation"), "ephemeral_1h_input_tokens") or 0
    output = get(u, "output_tokens") or 0
    thinking = get(get(u, "output_tokens_details"), "thinking_tokens") or 0
    return Usage(
        fresh + read + write,
        output,
        read,
        write,
        min(thinking, output),
        min(write_1h, write),
    )


class _StreamObserver:
    """Folds the stream events into the final usage: start values, then non-null delta values."""

    __slots__ = ("fields", "model", "pieces", "seen", "split", "thinking")

    def __init__(self, p: Pending) -> None:
        self.model: str | None = p.model
        # request mode: the answer as delivered (text, thinking, tool names and input JSON)
        self.pieces: list[str] | None = [] if p.request is not None else None
        self.fields: dict[str, int] = {}
        self.split: Any = None  # cache_creation (5m/1h) of message_start
        self.thinking: Any = None
        self.seen = False

    def _overlay(self, u: Any) -> None:
        for name in _FIELDS:
            value = get(u, name)
            if value is not None:
                self.fields[name] = value
        split = get(u, "cache_creation")
        if split is not None:
            self.split = split
        details = get(u, "output_tokens_details")
        if details is not None:
            self.thinking = details

    def answer(self) -> str:
        return "".join(self.pieces or ())

    # where the answer's text is in each kind of event: (the event's field, the fields read)
    _TEXT = {"content_block_start": ("content_block", ("text", "thinking", "name")),
             "content_block_delta": ("delta", ("text", "thinking", "partial_json"))}

    def _collect(self, kind: Any, event: Any) -> None:
        assert self.pieces is not None
        where = self._TEXT.get(kind)
        if where is None:
            return
        part = get(event, where[0])
        for name in where[1]:
            value = get(part, name)
            if isinstance(value, str) and value:
                self.pieces.append(value)

    def feed(self, event: Any) -> bool:
        kind = get(event, "type")
        if self.pieces is not None:
            self._collect(kind, event)
        if kind == "message_start":
            message = get(event, "message")
            self.model = get(message, "model") or self.model
            u = get(message, "usage")
            if u is not None:
                self.seen = True
                self._overlay(u)
        elif kind == "message_delta":
            u = get(event, "usage")
            if u is not None:
                self.seen = True
                self._overlay(u)
        return True

    def result(self) -> tuple[str | None, Usage | None]:
        if not self.seen:
            return self.model, None
        return self.model, usage_of({
            **self.fields,
            "cache_creation": self.split,
            "output_tokens_details": self.thinking,
        })


class AnthropicAdapter:
    provider = PROVIDER

    def start(self, options: Any, client: Any) -> Pending | None:
        if getattr(options, "method", None) != "post" or not _billed(getattr(options, "url", None)):
            return None
        body = options.json_data
        model = body.get("model") if isinstance(body, dict) else None
        request = Request("messages", body) if recorder.request_mode() and isinstance(body, dict) else None
        # depth 4: the caller walk skips this start() and _stainless' request(), always ours
        return recorder.begin(PROVIDER, model if isinstance(model, str) else None, 4, request)

    def usage(self, obj: Any) -> tuple[str | None, Usage] | None:
        u = get(obj, "usage")
        if u is None:
            return None
        return get(obj, "model"), usage_of(u)

    def observer(self, p: Pending) -> _StreamObserver:
        return _StreamObserver(p)


def patch(patcher: Patcher) -> bool:
    try:
        import anthropic  # noqa: F401
    except ImportError:
        return False
    install(patcher, "anthropic", AnthropicAdapter())
    return True
