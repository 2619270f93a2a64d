"""OpenAI request/response token counts, checked against OpenAI's published figures and, for shapes
OpenAI publishes none for, against sums of tiktoken-encoded pieces written out in the test."""

from __future__ import annotations

import base64
import inspect
import json
import struct
import zlib

import pytest

from openai_cookbook import COOKBOOK_MESSAGES, COOKBOOK_TOOL_MESSAGES, COOKBOOK_TOOLS
from tokenspy.tokens import (
    RequestCount,
    _encodings,
    _openai,
    count_request,
    count_response,
    count_text,
    encoding_for_model,
    is_exact,
)


def tok(text: str, encoding: str = "o200k_base") -> int:
    enc = _encodings.get_encoding(encoding)
    assert enc is not None
    return len(enc.encode_ordinary(text))


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_cookbook_messages_with_names(model: str, expected: int) -> None:
    count = count_request("openai", "chat", {"model": model, "messages": COOKBOOK_MESSAGES})
    assert count == RequestCount(model, expected, None, True, encoding_for_model(model))


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)],
)
def test_cookbook_tools_request(model: str, expected: int) -> None:
    body = {"model": model, "messages": COOKBOOK_TOOL_MESSAGES, "tools": COOKBOOK_TOOLS, "temperature": 0}
    assert count_request("openai", "chat", body).input_tokens == expected


def test_cookbook_token_ids_for_cl100k() -> None:
    # Same notebook, section 3: "tiktoken is great!" -> [83, 1609, 5963, 374, 2294, 0] in cl100k_base.
    enc = _encodings.get_encoding("cl100k_base")
    assert enc.encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_patterns_and_special_tokens_are_tiktokens_own(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    import tiktoken_ext.openai_public as public

    # Build tiktoken's own constructor dict without its download: only the ranks are swapped out.
    monkeypatch.setattr(public, "load_tiktoken_bpe", lambda *a, **k: {})
    spec = public.ENCODING_CONSTRUCTORS[name]()
    assert _encodings._PATTERNS[name] == spec["pat_str"]
    assert _encodings._SPECIALS[name] == spec["special_tokens"]
    assert _encodings.EXPECTED_SHA256[name] in inspect.getsource(public)


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1-mini", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o1-mini", "o200k_base"),
        ("o3", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("my-azure-deployment", "o200k_base"),
        (None, "o200k_base"),
    ],
)
def test_encoding_for_model(model: str | None, encoding: str) -> None:
    assert encoding_for_model(model) == encoding


def test_content_parts_and_image_url() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                    {"type": "text", "text": " Answer in one word."},
                ],
            }
        ],
    }
    # 3 per message + role + both texts + low-detail image (85) + 3 reply priming
    expected = 3 + tok("user") + tok("What is in this picture?") + tok(" Answer in one word.") + 85 + 3
    assert count_request("openai", "chat", body).input_tokens == expected


def _png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_base64_image_size_drives_the_tile_count() -> None:
    data_url = "data:image/png;base64," + base64.b64encode(_png(2048, 4096)).decode()

    def body(detail: str) -> dict[str, object]:
        part = {"type": "image_url", "image_url": {"url": data_url, "detail": detail}}
        return {"model": "gpt-4o", "messages": [{"role": "user", "content": [part]}]}

    frame = 3 + tok("user") + 3
    # Vision guide: a 2048x4096 image in high detail is 1105 tokens, any image in low detail 85.
    assert count_request("openai", "chat", body("high")).input_tokens == frame + 1105
    assert count_request("openai", "chat", body("auto")).input_tokens == frame + 1105
    assert count_request("openai", "chat", body("low")).input_tokens == frame + 85


def test_tool_calls_and_tool_results_in_history() -> None:
    args = json.dumps({"location": "Paris, FR"})
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": args}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 18}'},
        ],
    }
    o = _openai.TOOL_CALL_OVERHEAD
    expected = (
        (3 + tok("user") + tok("Weather in Paris?"))
        + (3 + tok("assistant") + tok("get_weather") + tok(args) + o)
        + (3 + tok("tool") + tok('{"temp_c": 18}'))
        + 3
    )
    assert count_request("openai", "chat", body).input_tokens == expected
    longer = json.loads(json.dumps(body))
    longer["messages"][2]["content"] = '{"temp_c": 18, "sky": "overcast with light rain"}'
    assert count_request("openai", "chat", longer).input_tokens > expected


def test_response_format_json_schema() -> None:
    schema = {
        "name": "answer",
        "strict": True,
        "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    base = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Capital of France?"}]}
    plain = count_request("openai", "chat", base).input_tokens
    with_schema = count_request(
        "openai", "chat", {**base, "response_format": {"type": "json_schema", "json_schema": schema}}
    ).input_tokens
    compact = json.dumps(schema, separators=(",", ":"))
    assert with_schema - plain == tok(compact)
    json_object = count_request("openai", "chat", {**base, "response_format": {"type": "json_object"}})
    assert json_object.input_tokens == plain


def test_tools_formula_pieces_for_cl100k() -> None:
    # num_tokens_for_tools written out for the cookbook tool with the cl100k constants.
    e = "cl100k_base"
    expected_tools = (
        10  # func_init
        + tok("get_current_weather:Get the current weather in a given location", e)
        + 3  # prop_init
        + 3
        + tok("location:string:The city and state, e.g. San Francisco, CA", e)
        + 3
        + -3
        + 3
        + tok("celsius", e)
        + 3
        + tok("fahrenheit", e)
        + tok("unit:string:The unit of temperature to return", e)
        + 12  # func_end
    )
    messages_only = count_request("openai", "chat", {"model": "gpt-4", "messages": COOKBOOK_TOOL_MESSAGES})
    with_tools = count_request(
        "openai", "chat", {"model": "gpt-4", "messages": COOKBOOK_TOOL_MESSAGES, "tools": COOKBOOK_TOOLS}
    )
    assert with_tools.input_tokens - messages_only.input_tokens == expected_tools


def test_added_tool_and_nested_schema_cost_more() -> None:
    base = {"model": "gpt-4o", "messages": COOKBOOK_TOOL_MESSAGES, "tools": COOKBOOK_TOOLS}
    one = count_request("openai", "chat", base).input_tokens
    extra = {
        "type": "function",
        "function": {
            "name": "book_flight",
            "description": "Book a flight.",
            "parameters": {
                "type": "object",
                "properties": {"legs": {"type": "array", "items": {"type": "object", "properties": {}}}},
            },
        },
    }
    two = count_request("openai", "chat", {**base, "tools": [*COOKBOOK_TOOLS, extra]}).input_tokens
    expected_extra = (
        7
        + tok("book_flight:Book a flight")
        + 3
        + 3
        + tok("legs:array:")
        + tok(json.dumps({"items": {"type": "object", "properties": {}}}, separators=(",", ":")))
    )
    assert two - one == expected_extra


def test_legacy_functions_param_counts_like_tools() -> None:
    functions = [t["function"] for t in COOKBOOK_TOOLS]
    body = {"model": "gpt-4o", "messages": COOKBOOK_TOOL_MESSAGES, "functions": functions}
    assert count_request("openai", "chat", body).input_tokens == 101


def test_responses_api_shapes() -> None:
    flat_tools = [{"type": "function", **COOKBOOK_TOOLS[0]["function"]}]
    body = {
        "model": "gpt-4.1",
        "instructions": "You are terse.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "get_current_weather",
                "arguments": '{"location":"Paris"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": "18C"},
        ],
        "tools": flat_tools,
        "max_output_tokens": 300,
    }
    o = _openai.TOOL_CALL_OVERHEAD
    tools_block = (
        count_request("openai", "chat", {"model": "gpt-4o", "messages": [], "tools": COOKBOOK_TOOLS}).input_tokens - 3
    )
    expected = (
        (3 + tok("system") + tok("You are terse."))
        + (3 + tok("user") + tok("Weather in Paris?"))
        + (3 + tok("get_current_weather") + tok('{"location":"Paris"}') + o)
        + (3 + tok("18C"))
        + 3
        + tools_block
    )
    count = count_request("openai", "responses", body)
    assert count == RequestCount("gpt-4.1", expected, 300, True, "o200k_base")
    simple = count_request("openai", "responses", {"model": "gpt-4.1", "input": "Hello there"})
    assert simple.input_tokens == 3 + tok("user") + tok("Hello there") + 3


def test_embeddings_inputs() -> None:
    e = "cl100k_base"
    model = "text-embedding-3-small"
    assert count_request("openai", "embeddings", {"model": model, "input": "hello world"}).input_tokens == tok(
        "hello world", e
    )
    assert count_request("openai", "embeddings", {"model": model, "input": ["a cat", "two dogs"]}).input_tokens == (
        tok("a cat", e) + tok("two dogs", e)
    )
    assert count_request("openai", "embeddings", {"model": model, "input": [1, 2, 3, 4]}).input_tokens == 4
    assert count_request("openai", "embeddings", {"model": model, "input": [[1, 2], [3, 4, 5]]}).input_tokens == 5


def test_legacy_completions() -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test", "max_tokens": 7}
    count = count_request("openai", "completions", body)
    assert count == RequestCount(
        "gpt-3.5-turbo-instruct", tok("Say this is a test", "cl100k_base"), 7, True, "cl100k_base"
    )


def test_max_output_tokens_fields() -> None:
    def ceiling(body: dict[str, object]) -> int | None:
        return count_request("openai", "chat", {"model": "gpt-4o", "messages": [], **body}).max_output_tokens

    assert ceiling({"max_tokens": 50}) == 50
    assert ceiling({"max_completion_tokens": 70, "max_tokens": 50}) == 70
    assert ceiling({}) is None
    assert ceiling({"max_tokens": True}) is None


def test_special_token_text_is_counted_as_text() -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "<|endoftext|>"}]}
    assert count_request("openai", "chat", body).input_tokens == 3 + tok("user") + tok("<|endoftext|>") + 3
    assert tok("<|endoftext|>") > 1


def test_chat_output_counts_text_refusal_and_tool_calls() -> None:
    answer = {
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Paris is the capital of France."}},
            {
                "index": 1,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": "I can't help with that.",
                    "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"Paris"}'}}
                    ],
                },
            },
        ],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 300},
    }
    expected = (
        tok("Paris is the capital of France.")
        + tok("I can't help with that.")
        + tok("lookup")
        + tok('{"q":"Paris"}')
        + _openai.TOOL_CALL_OVERHEAD
    )
    assert count_response("openai", "chat", answer, "gpt-4o") == expected


def test_output_uses_the_request_models_encoding() -> None:
    text = "Sehr geehrte Damen und Herren, die Sitzung beginnt um neun Uhr."
    answer = {"choices": [{"message": {"role": "assistant", "content": text}}]}
    assert count_response("openai", "chat", answer, "gpt-4") == tok(text, "cl100k_base")
    assert count_response("openai", "chat", answer, "gpt-4o") == tok(text, "o200k_base")
    assert tok(text, "cl100k_base") != tok(text, "o200k_base")


def test_responses_output_items() -> None:
    answer = {
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thinking hard"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It is 18C."}]},
            {"type": "function_call", "name": "get_weather", "arguments": '{"city":"Paris"}', "call_id": "c"},
        ]
    }
    expected = tok("It is 18C.") + tok("get_weather") + tok('{"city":"Paris"}') + _openai.TOOL_CALL_OVERHEAD
    assert count_response("openai", "responses", answer, "gpt-5") == expected


def test_completions_and_embeddings_output() -> None:
    answer = {"choices": [{"text": "This is a test."}, {"text": "Indeed."}]}
    e = "cl100k_base"
    assert count_response("openai", "completions", answer, "gpt-3.5-turbo-instruct") == tok("This is a test.", e) + tok(
        "Indeed.", e
    )
    assert count_response("openai", "embeddings", {"data": [{"embedding": [0.1]}]}, "text-embedding-3-small") == 0


def test_count_text_and_is_exact() -> None:
    text = "streamed " * 100
    assert count_text("openai", "gpt-4o", text) == tok(text)
    assert count_text("openai", "gpt-4", text) == tok(text, "cl100k_base")
    assert count_text("openai", "gpt-4o", "") == 0
    assert is_exact("openai", "gpt-4o") is True
    assert is_exact("anthropic", "claude-sonnet-4-5") is False
    assert is_exact("google", "gemini-2.5-flash") is False


def test_unknown_provider_or_endpoint_is_an_error() -> None:
    with pytest.raises(ValueError, match="openai, anthropic, google"):
        count_request("mistral", "chat", {})
    with pytest.raises(ValueError, match="chat, responses, embeddings, completions"):
        count_request("openai", "messages", {})
    with pytest.raises(ValueError, match="unknown provider"):
        count_text("cohere", None, "x")


def test_odd_shapes_are_skipped_not_raised() -> None:
    body = {"model": "gpt-4o", "messages": [None, "hi", {"role": "user", "content": {"weird": 1}}], "tools": "x"}
    assert count_request("openai", "chat", body).input_tokens == 3 + tok("user") + 3
    assert count_request("openai", "chat", None).input_tokens == 3  # type: ignore[arg-type]


def test_identical_system_prompt_is_tokenized_once() -> None:
    real = _encodings.get_encoding("o200k_base")
    calls: list[int] = []

    class Counting:
        # Delegates to the real encoding; only records how often long texts reach it.
        def encode_ordinary(self, text: str) -> list[int]:
            if len(text) > 1000:
                calls.append(len(text))
            return real.encode_ordinary(text)

    system = "You are a meticulous assistant. " * 200
    body = {"model": "gpt-4o", "messages": [{"role": "system", "content": system}, {"role": "user", "content": "hi"}]}
    saved = dict(_encodings._loaded)
    _encodings._reset_for_tests()
    _encodings._loaded.update(saved)
    _encodings._loaded["o200k_base"] = Counting()
    try:
        counts = {count_request("openai", "chat", body).input_tokens for _ in range(1000)}
    finally:
        _encodings._loaded["o200k_base"] = real
    assert calls == [len(system)]
    assert counts == {3 + tok("system") + tok(system) + 3 + tok("user") + tok("hi") + 3}


def test_lone_surrogates_from_json_do_not_break_counting() -> None:
    # json.loads('"\\ud800"') yields a lone surrogate; tiktoken counts it as U+FFFD.
    text = json.loads('"' + "a" * 80 + '\\ud800 tail"')
    assert count_text("openai", "gpt-4o", text) == tok(text.replace("\ud800", "\ufffd"))
