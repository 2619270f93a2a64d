"""OpenAI request and response bodies counted with the model's own BPE encoding.

The framing follows OpenAI's cookbook "How to count tokens with tiktoken" (``num_tokens_from_messages``
and ``num_tokens_for_tools``), whose published examples these functions reproduce exactly. Shapes the
cookbook does not cover use the conventions named by the constants below: they are tokenized with the
real encoding, but their framing is tokenspy's rule, not a published one.
"""

from __future__ import annotations

from typing import Any

from tokenspy.tokens import _encodings, _images
from tokenspy.tokens._common import (
    DOCUMENT_DEFAULT_PAGES,
    DOCUMENT_TOKENS_PER_PAGE,
    Tally,
    compact_json,
    pdf_pages_from_base64,
)

# Cookbook, num_tokens_from_messages: every message is <|start|>{role/name}\n{content}<|end|>\n.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>

# Cookbook, num_tokens_for_tools. FUNC_INIT is 7 for the o200k models (gpt-4o, gpt-4o-mini) and 10
# for the cl100k ones (gpt-4, gpt-3.5-turbo); the rest is shared.
FUNC_INIT = {_encodings.O200K: 7, _encodings.CL100K: 10}
PROP_INIT = 3
PROP_KEY = 3
ENUM_INIT = -3
ENUM_ITEM = 3
FUNC_END = 12

# tokenspy conventions (no published figure): a tool call in the history or in an answer is its
# function name, its arguments text and this framing.
TOOL_CALL_OVERHEAD = 3

_O200K_PREFIXES = (
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "o1",
    "o3",
    "o4",
    "chatgpt-4o",
    "gpt-oss",
    "codex",
    "computer-use",
    "omni-moderation",
    "gpt-realtime",
    "gpt-audio",
)
_CL100K_PREFIXES = (
    "gpt-4",
    "gpt-3.5",
    "gpt-35",
    "text-embedding-3",
    "text-embedding-ada-002",
    "davinci-002",
    "babbage-002",
)


def base_model(model: str | None) -> str:
    """'ft:gpt-4o-mini-2024-07-18:org::id' -> 'gpt-4o-mini-2024-07-18'; 'openai/gpt-4o' -> 'gpt-4o'."""
    name = (model or "").strip().lower()
    if name.startswith("ft:"):
        name = name[3:].split(":", 1)[0]
    return name.rsplit("/", 1)[-1]


def encoding_for_model(model: str | None) -> str:
    """The encoding name for an OpenAI model; o200k_base for anything unknown (every current model)."""
    name = base_model(model)
    # o200k first: "gpt-4o" and "gpt-4.1" also start with the cl100k prefix "gpt-4".
    if name.startswith(_O200K_PREFIXES):
        return _encodings.O200K
    if name.startswith(_CL100K_PREFIXES):
        return _encodings.CL100K
    return _encodings.O200K


# --- content --------------------------------------------------------------------------------------


def _image_tokens(model: str | None, url: object, detail: object) -> int:
    size = None
    if isinstance(url, str):
        parsed = _images.parse_data_url(url)
        if parsed is not None:
            size = _images.size_from_base64(parsed[1])
    return _images.openai_image_tokens(model, size, detail if isinstance(detail, str) else None)


def _file_tokens(t: Tally, file: dict[str, Any]) -> int:
    n = t.text(file.get("filename"))
    data = file.get("file_data")
    pages = DOCUMENT_DEFAULT_PAGES
    if isinstance(data, str):
        parsed = _images.parse_data_url(data)
        pages = pdf_pages_from_base64(parsed[1] if parsed else data)
    return n + pages * DOCUMENT_TOKENS_PER_PAGE


def _part_tokens(t: Tally, model: str | None, part: object) -> int:
    if isinstance(part, str):
        return t.text(part)
    if not isinstance(part, dict):
        return 0
    kind = part.get("type")
    if kind in ("text", "input_text", "output_text"):
        return t.text(part.get("text"))
    if kind == "refusal":
        return t.text(part.get("refusal"))
    if kind == "image_url":  # chat completions: {"image_url": {"url": ..., "detail": ...}}
        spec = part.get("image_url")
        if isinstance(spec, str):
            return _image_tokens(model, spec, None)
        spec = spec if isinstance(spec, dict) else {}
        return _image_tokens(model, spec.get("url"), spec.get("detail"))
    if kind == "input_image":  # responses: {"image_url": "...", "detail": ...} or a file_id
        return _image_tokens(model, part.get("image_url"), part.get("detail"))
    if kind == "file":
        file = part.get("file")
        return _file_tokens(t, file if isinstance(file, dict) else {})
    if kind == "input_file":
        return _file_tokens(t, part)
    # Audio is billed as audio tokens at its own rate, which request mode does not count.
    if kind in ("input_audio", "audio"):
        return 0
    return t.text(part.get("text")) if "text" in part else 0


def _content_tokens(t: Tally, model: str | None, content: object) -> int:
    if isinstance(content, str):
        return t.text(content)
    if isinstance(content, list):
        return sum(_part_tokens(t, model, part) for part in content)
    return 0


def _call_tokens(t: Tally, name: object, arguments: object) -> int:
    return t.text(name) + t.json(arguments) + TOOL_CALL_OVERHEAD


def _tool_call_tokens(t: Tally, call: object) -> int:
    if not isinstance(call, dict):
        return 0
    fn = call.get("function")
    if isinstance(fn, dict):
        return _call_tokens(t, fn.get("name"), fn.get("arguments"))
    custom = call.get("custom")
    if isinstance(custom, dict):
        return _call_tokens(t, custom.get("name"), custom.get("input"))
    return 0


def _message_tokens(t: Tally, model: str | None, message: object) -> int:
    if not isinstance(message, dict):
        return 0
    n = TOKENS_PER_MESSAGE
    for key, value in message.items():
        if key == "role":
            n += t.text(value)
        elif key == "name":
            n += t.text(value) + TOKENS_PER_NAME
        elif key == "content":
            n += _content_tokens(t, model, value)
        elif key == "refusal" and isinstance(value, str):
            n += t.text(value)
        elif key == "tool_calls" and isinstance(value, list):
            n += sum(_tool_call_tokens(t, call) for call in value)
        elif key == "function_call" and isinstance(value, dict):
            n += _call_tokens(t, value.get("name"), value.get("arguments"))
        # tool_call_id and audio ids are references, not text put before the model.
    return n


# --- tool definitions -----------------------------------------------------------------------------


def _property_tokens(t: Tally, key: str, spec: object) -> int:
    if not isinstance(spec, dict):
        return PROP_KEY + t.text(f"{key}::")
    n = PROP_KEY
    p_type = spec.get("type", "")
    if not isinstance(p_type, str):
        p_type = compact_json(p_type)
    p_desc = spec.get("description") or ""
    if not isinstance(p_desc, str):
        p_desc = compact_json(p_desc)
    enum = spec.get("enum")
    if isinstance(enum, list):
        n += ENUM_INIT
        for item in enum:
            n += ENUM_ITEM + t.text(item if isinstance(item, str) else compact_json(item))
    if p_desc.endswith("."):
        p_desc = p_desc[:-1]
    n += t.text(f"{key}:{p_type}:{p_desc}")
    # The cookbook's formula covers flat properties; nested schemas (items, properties, anyOf, …)
    # are counted as their compact JSON so that a bigger schema always costs more.
    rest = {k: v for k, v in spec.items() if k not in ("type", "description", "enum")}
    if rest:
        n += t.text(compact_json(rest))
    return n


def _function_tokens(t: Tally, fn: dict[str, Any]) -> int:
    n = FUNC_INIT.get(t.encoding, FUNC_INIT[_encodings.O200K])
    name = fn.get("name") or ""
    desc = fn.get("description") or ""
    if not isinstance(desc, str):
        desc = compact_json(desc)
    if desc.endswith("."):
        desc = desc[:-1]
    n += t.text(f"{name}:{desc}")
    params = fn.get("parameters")
    props = params.get("properties") if isinstance(params, dict) else None
    if isinstance(props, dict) and props:
        n += PROP_INIT
        for key, spec in props.items():
            n += _property_tokens(t, str(key), spec)
    return n


def _definitions_tokens(t: Tally, functions: list[Any], nested: bool) -> int:
    """Cookbook num_tokens_for_tools over chat ``tools`` (nested=True), legacy ``functions`` or
    Responses ``tools`` (flat); built-in and custom tools count as their compact JSON."""
    n = 0
    for item in functions:
        if not isinstance(item, dict):
            continue
        fn = item.get("function") if nested else item
        if isinstance(fn, dict) and item.get("type", "function") == "function":
            n += _function_tokens(t, fn)
        else:
            n += t.text(compact_json(item))
    return n + FUNC_END


def _tools_tokens(t: Tally, tools: object, nested: bool) -> int:
    if not isinstance(tools, list) or not tools:
        return 0
    # A tool list is usually identical from call to call: remember its total by content hash.
    key = (f"tools:{int(nested)}:{t.encoding}", _encodings.content_key(compact_json(tools)))
    cached = _encodings.memo_get(key)
    if cached is not None:
        if _encodings.get_encoding(t.encoding) is None:
            t.exact = False
        return cached
    n = _definitions_tokens(t, tools, nested)
    _encodings.memo_put(key, n)
    return n


def _schema_format_tokens(t: Tally, fmt: object) -> int:
    # tokenspy convention: a JSON schema output format is its compact JSON (name, schema, strict).
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return 0
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):  # Responses: text.format carries the fields itself
        spec = {k: v for k, v in fmt.items() if k != "type"}
    return t.text(compact_json(spec))


# --- requests -------------------------------------------------------------------------------------


def chat_input(t: Tally, body: dict[str, Any], model: str | None) -> int:
    n = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        n += sum(_message_tokens(t, model, m) for m in messages)
    n += REPLY_PRIMING
    n += _tools_tokens(t, body.get("tools"), nested=True)
    n += _tools_tokens(t, body.get("functions"), nested=False)
    n += _schema_format_tokens(t, body.get("response_format"))
    return n


def _response_item_tokens(t: Tally, model: str | None, item: object) -> int:
    if isinstance(item, str):
        return TOKENS_PER_MESSAGE + t.text("user") + t.text(item)
    if not isinstance(item, dict):
        return 0
    kind = item.get("type", "message")
    if kind == "message":
        return TOKENS_PER_MESSAGE + t.text(item.get("role")) + _content_tokens(t, model, item.get("content"))
    if kind == "function_call":
        return TOKENS_PER_MESSAGE + _call_tokens(t, item.get("name"), item.get("arguments"))
    if kind == "custom_tool_call":
        return TOKENS_PER_MESSAGE + _call_tokens(t, item.get("name"), item.get("input"))
    if kind in ("function_call_output", "custom_tool_call_output"):
        output = item.get("output")
        return TOKENS_PER_MESSAGE + (_content_tokens(t, model, output) if isinstance(output, list) else t.json(output))
    if kind == "reasoning":
        summary = item.get("summary")
        return sum(_part_tokens(t, model, s) for s in summary) if isinstance(summary, list) else 0
    if kind == "item_reference":
        return 0
    # Built-in tool calls (web_search_call, computer_call, …): their fields as compact JSON.
    rest = {k: v for k, v in item.items() if k not in ("id", "status")}
    return TOKENS_PER_MESSAGE + t.text(compact_json(rest))


def responses_input(t: Tally, body: dict[str, Any], model: str | None) -> int:
    n = 0
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        n += TOKENS_PER_MESSAGE + t.text("system") + t.text(instructions)
    elif isinstance(instructions, list):
        n += sum(_response_item_tokens(t, model, item) for item in instructions)
    inp = body.get("input")
    if isinstance(inp, str):
        n += TOKENS_PER_MESSAGE + t.text("user") + t.text(inp)
    elif isinstance(inp, list):
        n += sum(_response_item_tokens(t, model, item) for item in inp)
    n += REPLY_PRIMING
    n += _tools_tokens(t, body.get("tools"), nested=False)
    text = body.get("text")
    if isinstance(text, dict):
        n += _schema_format_tokens(t, text.get("format"))
    return n


def _prompt_tokens(t: Tally, prompt: object) -> int:
    """A string, a list of strings, a token array or a list of token arrays."""
    if isinstance(prompt, str):
        return t.text(prompt)
    if isinstance(prompt, list):
        if prompt and all(isinstance(x, int) for x in prompt):
            return len(prompt)
        return sum(_prompt_tokens(t, x) for x in prompt)
    return 0


def embeddings_input(t: Tally, body: dict[str, Any], model: str | None) -> int:
    return _prompt_tokens(t, body.get("input"))


def completions_input(t: Tally, body: dict[str, Any], model: str | None) -> int:
    return _prompt_tokens(t, body.get("prompt")) + t.text(body.get("suffix"))


REQUEST_COUNTERS = {
    "chat": chat_input,
    "responses": responses_input,
    "embeddings": embeddings_input,
    "completions": completions_input,
}


def max_output_tokens(endpoint: str, body: dict[str, Any]) -> Any:
    if endpoint == "chat":
        value = body.get("max_completion_tokens")
        return value if value is not None else body.get("max_tokens")
    if endpoint == "responses":
        return body.get("max_output_tokens")
    if endpoint == "completions":
        return body.get("max_tokens")
    return None


# --- responses (answers) --------------------------------------------------------------------------


def chat_output(t: Tally, body: dict[str, Any], model: str | None) -> int:
    n = 0
    choices = body.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        n += _content_tokens(t, model, message.get("content"))
        if isinstance(message.get("refusal"), str):
            n += t.text(message["refusal"])
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            n += sum(_tool_call_tokens(t, call) for call in calls)
        fc = message.get("function_call")
        if isinstance(fc, dict):
            n += _call_tokens(t, fc.get("name"), fc.get("arguments"))
    return n


def responses_output(t: Tally, body: dict[str, Any], model: str | None) -> int:
    n = 0
    output = body.get("output")
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            n += _content_tokens(t, model, item.get("content"))
        elif kind == "function_call":
            n += _call_tokens(t, item.get("name"), item.get("arguments"))
        elif kind == "custom_tool_call":
            n += _call_tokens(t, item.get("name"), item.get("input"))
        # reasoning items: reasoning tokens are 0 in request mode (their text is not sent back).
    return n


def completions_output(t: Tally, body: dict[str, Any], model: str | None) -> int:
    choices = body.get("choices")
    return sum(t.text(c.get("text")) for c in choices if isinstance(c, dict)) if isinstance(choices, list) else 0


def embeddings_output(t: Tally, body: dict[str, Any], model: str | None) -> int:
    return 0


RESPONSE_COUNTERS = {
    "chat": chat_output,
    "responses": responses_output,
    "embeddings": embeddings_output,
    "completions": completions_output,
}
