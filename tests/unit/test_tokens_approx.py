"""Anthropic and Google approximations: their documented formula, and the same count everywhere."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap

from image_headers import jpeg, png

from tokenspy.tokens import RequestCount, _approx, _encodings, count_request, count_response, count_text
from tokenspy.tokens._common import DOCUMENT_TOKENS_PER_PAGE


def tok(text: str) -> int:
    enc = _encodings.get_encoding("o200k_base")
    assert enc is not None
    return len(enc.encode_ordinary(text))


def scale_up(raw: int, scale: tuple[int, int]) -> int:
    num, den = scale
    return -(-raw * num // den)


A = _approx.ANTHROPIC_TEXT_SCALE
PER_MSG = _approx.ANTHROPIC_TOKENS_PER_MESSAGE
PRIMING = _approx.ANTHROPIC_REPLY_PRIMING


def test_anthropic_text_formula() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "You are a careful reviewer.",
        "messages": [
            {"role": "user", "content": "Review this function for bugs."},
            {"role": "assistant", "content": [{"type": "text", "text": "Which language?"}]},
            {"role": "user", "content": "Python."},
        ],
    }
    raw = sum(
        tok(s) for s in ("You are a careful reviewer.", "Review this function for bugs.", "Which language?", "Python.")
    )
    expected = scale_up(raw, A) + 4 * PER_MSG + PRIMING
    assert count_request("anthropic", "messages", body) == RequestCount(
        "claude-sonnet-4-5", expected, 1024, False, "approx:anthropic"
    )


def test_anthropic_system_string_and_blocks_agree() -> None:
    msgs = [{"role": "user", "content": "hello"}]
    as_text = count_request("anthropic", "messages", {"system": "Be brief and exact.", "messages": msgs})
    as_blocks = count_request(
        "anthropic",
        "messages",
        {
            "system": [{"type": "text", "text": "Be brief and exact.", "cache_control": {"type": "ephemeral"}}],
            "messages": msgs,
        },
    )
    assert as_text.input_tokens == as_blocks.input_tokens


def test_anthropic_tools_add_the_documented_tool_prompt() -> None:
    tool = {
        "name": "get_weather",
        "description": "Get the weather for a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    msgs = [{"role": "user", "content": "Weather in Oslo?"}]
    bare = count_request("anthropic", "messages", {"messages": msgs}).input_tokens
    auto = count_request("anthropic", "messages", {"messages": msgs, "tools": [tool]}).input_tokens
    forced = count_request(
        "anthropic", "messages", {"messages": msgs, "tools": [tool], "tool_choice": {"type": "any"}}
    ).input_tokens
    raw_text = tok("Weather in Oslo?")
    raw_tool = tok(json.dumps(tool, separators=(",", ":")))
    assert auto - bare == 346 + scale_up(raw_text + raw_tool, A) - scale_up(raw_text, A)
    assert auto - forced == 346 - 313


def test_anthropic_images_documents_and_tool_history() -> None:
    image = base64.b64encode(png(1000, 1000)).decode()
    pdf = base64.b64encode(
        b"%PDF-1.4\n1 0 obj<</Type /Pages>>\n2 0 obj<</Type /Page>>\n3 0 obj<</Type/Page>>\n"
    ).decode()
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/x.jpg"}},
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Plain doc."}},
                    {"type": "text", "text": "Compare them."},
                ],
            },
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "ocr", "input": {"page": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "Page one text."}]},
        ]
    }
    raw = tok("Plain doc.") + tok("Compare them.") + tok("ocr") + tok('{"page":1}') + tok("Page one text.")
    # 1000x1000 PNG: 1334 (w*h/750); a URL image: the 1024x1024 default, 1399; the PDF has 2 pages.
    fixed = 1334 + 1399 + 2 * DOCUMENT_TOKENS_PER_PAGE + 3 * PER_MSG + PRIMING
    assert count_request("anthropic", "messages", body).input_tokens == scale_up(raw, A) + fixed


def test_anthropic_output_counts_text_tool_use_and_thinking() -> None:
    answer = {
        "model": "claude-opus-4-1",
        "content": [
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "The answer is 42."},
            {"type": "tool_use", "id": "t", "name": "calc", "input": {"expr": "6*7"}},
        ],
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    raw = tok("Let me think.") + tok("The answer is 42.") + tok("calc") + tok('{"expr":"6*7"}')
    assert count_response("anthropic", "messages", answer) == scale_up(raw, A)
    assert count_text("anthropic", "claude-opus-4-1", "The answer is 42.") == scale_up(tok("The answer is 42."), A)


G = _approx.GOOGLE_TEXT_SCALE
G_PER = _approx.GOOGLE_TOKENS_PER_CONTENT
G_PRIMING = _approx.GOOGLE_REPLY_PRIMING


def test_google_camel_and_snake_case_agree() -> None:
    decl = {"name": "lookup", "description": "Look a word up.", "parameters": {"type": "OBJECT"}}
    camel = {
        "contents": [{"role": "user", "parts": [{"text": "Define entropy."}]}],
        "systemInstruction": {"parts": [{"text": "Answer in one line."}]},
        "tools": [{"functionDeclarations": [decl]}],
        "generationConfig": {"maxOutputTokens": 64},
    }
    snake = {
        "contents": [{"role": "user", "parts": [{"text": "Define entropy."}]}],
        "system_instruction": {"parts": [{"text": "Answer in one line."}]},
        "tools": [{"function_declarations": [decl]}],
        "generation_config": {"max_output_tokens": 64},
    }
    raw = tok("Define entropy.") + tok("Answer in one line.") + tok(json.dumps(decl, separators=(",", ":")))
    expected = RequestCount("gemini-2.5-flash", scale_up(raw, G) + 2 * G_PER + G_PRIMING, 64, False, "approx:google")
    assert count_request("google", "generate_content", camel, model="models/gemini-2.5-flash") == expected
    assert count_request("google", "generate_content", snake, model="gemini-2.5-flash") == expected
    vertex = "projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash"
    assert count_request("google", "generate_content", {**snake, "model": vertex}) == expected
    # The SDK's own request dicts keep system instruction, tools and limits inside "config".
    sdk = {
        "contents": snake["contents"],
        "config": {
            "system_instruction": "Answer in one line.",
            "tools": snake["tools"],
            "max_output_tokens": 64,
        },
    }
    assert count_request("google", "generate_content", sdk, model="gemini-2.5-flash") == expected


def test_google_media_and_function_turns() -> None:
    small = base64.b64encode(jpeg(300, 200)).decode()
    big = base64.b64encode(png(1600, 800)).decode()
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"inlineData": {"mimeType": "image/jpeg", "data": small}},
                    {"inline_data": {"mime_type": "image/png", "data": big}},
                    {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://b/v.mp4"}},
                    {"text": "Describe."},
                ],
            },
            {"role": "model", "parts": [{"functionCall": {"name": "zoom", "args": {"x": 1}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "zoom", "response": {"ok": True}}}]},
        ]
    }
    raw = tok("Describe.") + tok("zoom") + tok('{"x":1}') + tok("zoom") + tok('{"ok":true}')
    # 300x200: one 258 tile; 1600x800: 3x2 tiles of 768; a video of unknown length: 258.
    fixed = 258 + 6 * 258 + 258 + 3 * G_PER + G_PRIMING
    assert count_request("google", "generate_content", body).input_tokens == scale_up(raw, G) + fixed


def test_google_output_skips_thoughts() -> None:
    answer = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "pondering", "thought": True},
                        {"text": "Entropy measures disorder."},
                        {"functionCall": {"name": "cite", "args": {"n": 2}}},
                    ],
                }
            }
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 5},
    }
    raw = tok("Entropy measures disorder.") + tok("cite") + tok('{"n":2}')
    assert count_response("google", "generate_content", answer) == scale_up(raw, G)


def test_bigger_requests_cost_more() -> None:
    short = {"messages": [{"role": "user", "content": "short"}]}
    long = {"messages": [{"role": "user", "content": "short " + "and much longer " * 50}]}
    assert (
        count_request("anthropic", "messages", long).input_tokens
        > count_request("anthropic", "messages", short).input_tokens
    )
    g_short = {"contents": [{"parts": [{"text": "short"}]}]}
    g_long = {"contents": [{"parts": [{"text": "short " + "and much longer " * 50}]}]}
    assert (
        count_request("google", "generate_content", g_long).input_tokens
        > count_request("google", "generate_content", g_short).input_tokens
    )


_DETERMINISM_SCRIPT = textwrap.dedent(
    """
    import json
    from tokenspy.tokens import count_request, count_response
    tool = {"name": "f", "description": "d", "input_schema": {"type": "object",
            "properties": {"b": {"type": "string"}, "a": {"type": "integer", "enum": [3, 1, 2]}}}}
    text = "Les naïfs ꙮ 東京 🚀 " * 40
    out = [
        count_request("anthropic", "messages", {"system": text, "tools": [tool],
                      "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}),
        count_request("google", "generate_content", {"contents": [{"parts": [{"text": text}]}],
                      "tools": [{"functionDeclarations": [tool]}]}, model="gemini-2.5-pro"),
        count_request("openai", "chat", {"model": "gpt-4o", "messages": [{"role": "user", "content": text}],
                      "tools": [{"type": "function", "function": {**tool, "parameters": tool["input_schema"]}}]}),
        count_response("anthropic", "messages", {"content": [{"type": "text", "text": text}]}),
        count_response("google", "generate_content", {"candidates": [{"content": {"parts": [{"text": text}]}}]}),
    ]
    print(json.dumps(out))
    """
)


def test_counts_identical_across_processes_with_different_hash_seeds() -> None:
    outputs = []
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _DETERMINISM_SCRIPT], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]
    text = "Les naïfs ꙮ 東京 🚀 " * 40
    assert outputs[0][3] == count_response("anthropic", "messages", {"content": [{"type": "text", "text": text}]})
