"""The sample suite's fixtures: a real ``openai.OpenAI`` client over ``httpx2.MockTransport``.

The transport answers like the Chat Completions API, with usage that grows with the prompt as
it does for real, so a prompt change shows up as a cost change in the PR's tokenspy report.
Runs offline, with no API key.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx2
import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))


def _chat_completions(request: httpx2.Request) -> httpx2.Response:
    if not request.url.path.endswith("/chat/completions"):
        return httpx2.Response(404, json={"error": {"message": f"no route for {request.url.path}"}})
    body = json.loads(request.content)
    words = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
    prompt_tokens = 20 + 4 * words
    completion_tokens = min(body.get("max_tokens") or 60, 60)
    return httpx2.Response(200, json={
        "id": "chatcmpl-sample", "object": "chat.completion", "created": 1700000000, "model": body["model"],
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "bug" if body.get("max_tokens") else "Short."}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens,
                  "prompt_tokens_details": {"cached_tokens": 0}},
    })


@pytest.fixture
def client() -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-sample-not-a-secret",
        base_url="https://api.openai.invalid/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(_chat_completions)),
        max_retries=0,
    )
