"""OpenAI SDK: chat completions, responses, embeddings, completions (sync and async)."""

from __future__ import annotations

from typing import Any

from tokenspy import recorder
from tokenspy.config import config
from tokenspy.interceptor._patch import Patcher
from tokenspy.interceptor._stainless import install
from tokenspy.recorder import Pending, Usage
from tokenspy.usage_source import Request

PROVIDER = "openai"
# URL suffix -> kind; "/chat/completions" is tested before "/completions".
_ENDPOINTS = (
    ("/chat/completions", "chat"),
    ("/responses", "responses"),
    ("/embeddings", "embeddings"),
    ("/completions", "completions"),
)


def _kind(url: Any) -> str | None:
    if isinstance(url, str):
        for suffix, kind in _ENDPOINTS:
            if url.endswith(suffix):
                return kind
    return None


def _is_azure(client: Any) -> bool:
    """An Azure OpenAI client: the request's model is a deployment name."""
    try:
        from openai.lib.azure import BaseAzureClient
    except ImportError:  # pragma: no cover - every supported SDK has it
        return False
    return isinstance(client, BaseAzureClient)


def usage_of(u: Any) -> Usage:
    """Usage from an OpenAI ``usage`` object or dict (chat, completions, embeddings, responses)."""
    if isinstance(u, dict):
        return _usage_of_dict(u)
    # attribute access on the SDK's models: the hot path
    prompt = getattr(u, "prompt_tokens", None)
    if prompt is not None:  # chat completions, completions, embeddings
        details = getattr(u, "prompt_tokens_details", None)
        out_details = getattr(u, "completion_tokens_details", None)
        return Usage(
            prompt,
            getattr(u, "completion_tokens", 0) or 0,
            (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0,
            (getattr(details, "cache_write_tokens", 0) or 0) if details is not None else 0,
            (getattr(out_details, "reasoning_tokens", 0) or 0) if out_details is not None else 0,
        )
    details = getattr(u, "input_tokens_details", None)
    out_details = getattr(u, "output_tokens_details", None)
    return Usage(
        getattr(u, "input_tokens", 0) or 0,
        getattr(u, "output_tokens", 0) or 0,
        (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0,
        (getattr(details, "cache_write_tokens", 0) or 0) if details is not None else 0,
        (getattr(out_details, "reasoning_tokens", 0) or 0) if out_details is not None else 0,
    )


def _usage_of_dict(u: dict[str, Any]) -> Usage:
    prompt = u.get("prompt_tokens")
    if prompt is not None:
        details = u.get("prompt_tokens_details") or {}
        out_details = u.get("completion_tokens_details") or {}
        return Usage(prompt, u.get("completion_tokens") or 0, details.get("cached_tokens") or 0,
                     details.get("cache_write_tokens") or 0, out_details.get("reasoning_tokens") or 0)
    details = u.get("input_tokens_details") or {}
    out_details = u.get("output_tokens_details") or {}
    return Usage(u.get("input_tokens") or 0, u.get("output_tokens") or 0, details.get("cached_tokens") or 0,
                 details.get("cache_write_tokens") or 0, out_details.get("reasoning_tokens") or 0)


def _marked(chunk: Any) -> bool:
    """Whether the chunk carried the ``usage`` key (null on all but the last chunk of a server
    that honours ``stream_options.include_usage``, per OpenAI's API reference)."""
    fields = getattr(chunk, "model_fields_set", None)
    if fields is None:
        fields = getattr(chunk, "__fields_set__", None)
    return fields is None or "usage" in fields


class _StreamObserver:
    __slots__ = ("chunks", "final", "injected", "model", "pieces", "usage")

    def __init__(self, p: Pending) -> None:
        # True while the usage chunk to come is the one we asked for: cleared by a chunk that
        # shows the server ignores include_usage (it would send its usage chunk unasked)
        self.injected = p.injected
        self.model: str | None = p.model
        self.usage: Any = None
        self.chunks = 0
        # request mode: the answer as delivered (text, refusals, tool calls; or the final response)
        self.pieces: list[str] | None = [] if p.request is not None else None
        self.final: Any = None

    def _collect(self, chunk: Any) -> None:
        pieces = self.pieces
        assert pieces is not None
        for choice in getattr(chunk, "choices", None) or ():
            delta = getattr(choice, "delta", None)
            if delta is None:  # legacy completions: the text is on the choice
                text = getattr(choice, "text", None)
                if text:
                    pieces.append(text)
                continue
            for name in ("content", "refusal"):
                text = getattr(delta, name, None)
                if text:
                    pieces.append(text)
            for call in getattr(delta, "tool_calls", None) or ():
                fn = getattr(call, "function", None)
                pieces.extend(x for x in (getattr(fn, "name", None), getattr(fn, "arguments", None)) if x)

    def answer(self) -> Any:
        return self.final if self.final is not None else "".join(self.pieces or ())

    def feed(self, chunk: Any) -> bool:
        if self.pieces is not None:
            self._collect(chunk)
        u = getattr(chunk, "usage", None)
        if u is not None:  # chat/completions: the final usage chunk
            self.usage = u
            self.model = getattr(chunk, "model", None) or self.model
            # the usage-only chunk we asked for is hidden; one the user asked for, or one the
            # server sends unasked, is not
            return not (self.injected and not getattr(chunk, "choices", None))
        response = getattr(chunk, "response", None)  # responses API events
        if response is not None:
            self.model = getattr(response, "model", None) or self.model
            if getattr(chunk, "type", None) in ("response.completed", "response.incomplete"):
                self.final = response
            ru = getattr(response, "usage", None)
            if ru is not None:
                self.usage = ru
            return True
        if self.injected and not _marked(chunk):
            self.injected = False
        if self.chunks == 0:
            self.model = getattr(chunk, "model", None) or self.model
        if getattr(chunk, "choices", None):
            self.chunks += 1
        return True

    def result(self) -> tuple[str | None, Usage | None]:
        if self.usage is not None:
            return self.model, usage_of(self.usage)
        # no usage seen (stream cut short): one content chunk is about one output token
        return self.model, Usage(0, self.chunks)


class OpenAIAdapter:
    provider = PROVIDER

    def start(self, options: Any, client: Any) -> Pending | None:
        if options.method != "post":
            return None
        kind = _kind(options.url)
        if kind is None:
            return None
        body = options.json_data
        model = body.get("model") if isinstance(body, dict) else None
        request = None
        if recorder.request_mode() and isinstance(body, dict):
            request = Request(kind, body, _is_azure(client))
        # depth 4: the caller walk skips this start() and _stainless' request(), always ours
        p = recorder.begin(PROVIDER, model if isinstance(model, str) else None, 4, request)
        if p is None:
            return None
        if kind in ("chat", "completions") and isinstance(body, dict) and body.get("stream"):
            so = body.get("stream_options")
            if config.inject_stream_usage and not (isinstance(so, dict) and so.get("include_usage")):
                new = options.model_copy() if hasattr(options, "model_copy") else options.copy()
                new.json_data = {**body, "stream_options": {**(so or {}), "include_usage": True}}
                p.options = new
                p.injected = True
        return p

    def usage(self, obj: Any) -> tuple[str | None, Usage] | None:
        u = obj.get("usage") if isinstance(obj, dict) else getattr(obj, "usage", None)
        if u is None:
            return None
        model = obj.get("model") if isinstance(obj, dict) else getattr(obj, "model", None)
        return model, usage_of(u)

    def observer(self, p: Pending) -> _StreamObserver:
        return _StreamObserver(p)


def patch(patcher: Patcher) -> bool:
    try:
        import openai  # noqa: F401
    except ImportError:
        return False
    install(patcher, "openai", OpenAIAdapter())
    return True
