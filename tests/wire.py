"""A small stand-in for the providers' HTTP APIs, served through ``httpx2.MockTransport``.

It answers the way the real services do (JSON bodies and SSE streams from the recorded wire
fixtures in tests/fixtures/), honours OpenAI's ``stream_options.include_usage``, and counts and
keeps the requests it saw, so that tests use the real SDK clients end to end.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def fixture_json(name: str) -> dict[str, Any]:
    return json.loads(fixture_text(name))


def sse_events(text: str) -> list[str]:
    """Split an SSE fixture into its events (each keeps its own lines)."""
    return [block.strip("\n") + "\n\n" for block in text.split("\n\n") if block.strip()]


class Wire:
    """The handler of a MockTransport: route by URL path, count requests.

    ``keep=False`` (benchmarks, memory tests) keeps no request or body, only the count, as an
    app that does not hold on to its requests."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.seen = 0
        self.requests: list[httpx2.Request] = []
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.routes: dict[str, Callable[[httpx2.Request, dict[str, Any]], httpx2.Response]] = {}
        self.overrides: dict[str, Any] = {}  # path suffix -> JSON body replacing the fixture

    @property
    def count(self) -> int:
        return self.seen

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        try:
            body = json.loads(request.content) if request.content else {}
        except ValueError:
            body = {}
        with self._lock:
            self.seen += 1
            if self.keep:
                self.requests.append(request)
                self.bodies.append(body)
        path = request.url.path
        for suffix, route in self.routes.items():
            if path.endswith(suffix):
                return route(request, body)
        return self.default(request, body)

    def default(self, request: httpx2.Request, body: dict[str, Any]) -> httpx2.Response:
        path = request.url.path
        for suffix, data in self.overrides.items():
            if path.endswith(suffix):
                return httpx2.Response(200, json=data)
        if path.endswith("/chat/completions"):
            if body.get("stream"):
                events = sse_events(fixture_text("openai_chat_stream.sse"))
                include = (body.get("stream_options") or {}).get("include_usage")
                if not include:  # the real API sends the usage chunk only when asked
                    events = [e for e in events if '"usage"' not in e]
                return sse(_usage_null(events) if include else events)
            data = fixture_json("openai_chat.json")
            if body.get("model"):
                data["model"] = body["model"]
            return httpx2.Response(200, json=data)
        if path.endswith("/responses"):
            if body.get("stream"):
                return sse(sse_events(fixture_text("openai_responses_stream.sse")))
            return httpx2.Response(200, json=fixture_json("openai_responses.json"))
        if path.endswith("/embeddings"):
            return httpx2.Response(200, json=fixture_json("openai_embeddings.json"))
        if path.endswith("/completions"):
            if body.get("stream"):
                return sse(_completion_stream(body))
            return httpx2.Response(200, json=fixture_json("openai_completions.json"))
        if path.endswith("/messages/count_tokens"):
            return httpx2.Response(200, json={"input_tokens": 42})
        if path.endswith("/messages"):
            if body.get("stream"):
                return sse(sse_events(fixture_text("anthropic_stream.sse")))
            return httpx2.Response(200, json=fixture_json("anthropic_message.json"))
        if ":streamGenerateContent" in path:
            return sse(sse_events(fixture_text("google_stream.sse")))
        if ":generateContent" in path:
            return httpx2.Response(200, json=fixture_json("google_generate_content.json"))
        return httpx2.Response(404, json={"error": {"message": f"no route for {path}"}})


def sse(events: list[str]) -> httpx2.Response:
    return httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content="".join(events).encode()
    )


def _usage_null(events: list[str]) -> list[str]:
    """What the real API does when asked for usage: every other chunk has ``"usage": null``."""
    out = []
    for event in events:
        if event.startswith("data: {") and '"usage"' not in event:
            data = json.loads(event[len("data: "):])
            event = "data: " + json.dumps({**data, "usage": None}) + "\n\n"
        out.append(event)
    return out


def _completion_stream(body: dict[str, Any]) -> list[str]:
    base = fixture_json("openai_completions.json")
    chunk = {k: base[k] for k in ("id", "object", "created", "model")}
    events = []
    for text in ("Hello", " world"):
        events.append(
            "data: " + json.dumps({**chunk, "choices": [{"index": 0, "text": text, "finish_reason": None,
                                                           "logprobs": None}]}) + "\n\n"
        )
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append("data: " + json.dumps({**chunk, "choices": [], "usage": base["usage"]}) + "\n\n")
        events = _usage_null(events)
    events.append("data: [DONE]\n\n")
    return events


def error_response(status: int, message: str = "boom") -> httpx2.Response:
    return httpx2.Response(status, json={"error": {"message": message, "type": "server_error"}})


def openai_clients(wire: Wire) -> tuple[Any, Any]:
    """A real ``openai.OpenAI`` and ``openai.AsyncOpenAI`` talking to ``wire``."""
    import openai

    transport = httpx2.MockTransport(wire)
    sync = openai.OpenAI(api_key="sk-test", base_url="https://api.openai.test/v1",
                         http_client=httpx2.Client(transport=transport), max_retries=0)
    aio = openai.AsyncOpenAI(api_key="sk-test", base_url="https://api.openai.test/v1",
                             http_client=httpx2.AsyncClient(transport=transport), max_retries=0)
    return sync, aio


def anthropic_clients(wire: Wire) -> tuple[Any, Any]:
    """A real ``anthropic.Anthropic`` and ``anthropic.AsyncAnthropic`` talking to ``wire``."""
    import anthropic

    transport = httpx2.MockTransport(wire)
    sync = anthropic.Anthropic(api_key="sk-ant-test", base_url="https://api.anthropic.test",
                               http_client=httpx2.Client(transport=transport), max_retries=0)
    aio = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url="https://api.anthropic.test",
                                   http_client=httpx2.AsyncClient(transport=transport), max_retries=0)
    return sync, aio


def google_client(wire: Wire) -> Any:
    """A real ``google.genai.Client`` (``.aio`` for async) talking to ``wire``."""
    from google import genai
    from google.genai import types

    transport = httpx2.MockTransport(wire)
    return genai.Client(
        api_key="g-test",
        http_options=types.HttpOptions(
            base_url="https://generativelanguage.test/",
            httpx_client=httpx2.Client(transport=transport),
            httpx_async_client=httpx2.AsyncClient(transport=transport),
        ),
    )
