"""Anthropic and Google bodies: a documented, deterministic approximation (no public tokenizer).

Text is tokenized with OpenAI's o200k_base (the same BPE on every machine) and scaled by a fixed
per-provider ratio; framing, tool prompts, images and documents add the fixed amounts below, which
are not scaled. All arithmetic is on integers, so a body gives the same count on every machine,
process and Python version. These counts are always ``exact=False``.
"""

from __future__ import annotations

from typing import Any

from tokenspy.tokens import _encodings, _images
from tokenspy.tokens._common import (
    DOCUMENT_DEFAULT_PAGES,
    DOCUMENT_TOKENS_PER_PAGE,
    Tally,
    get,
    pdf_pages_from_base64,
)

TEXT_ENCODING = _encodings.O200K

# Claude's tokenizer splits English prose and code into about a fifth more tokens than o200k_base;
# Gemini's 256k-entry SentencePiece vocabulary is close to o200k_base's.
ANTHROPIC_TEXT_SCALE = (6, 5)
GOOGLE_TEXT_SCALE = (1, 1)

# Framing, as tokenspy's convention: per turn (role marker and separators) and the reply priming.
ANTHROPIC_TOKENS_PER_MESSAGE = 4
ANTHROPIC_REPLY_PRIMING = 3
GOOGLE_TOKENS_PER_CONTENT = 4
GOOGLE_REPLY_PRIMING = 3

# Anthropic's pricing docs: the system prompt that enables tool use costs 346 tokens with
# tool_choice auto/none and 313 with any/tool (Claude 4 and 3.7 models), on top of the tools' JSON.
ANTHROPIC_TOOL_SYSTEM_PROMPT = {"auto": 346, "none": 346, "any": 313, "tool": 313}

# Gemini counts a PDF page as one image (258 tokens); audio and video whose length is unknown from
# the request count as one tile too (the docs' rates are 32 tokens/s of audio, 263/s of video).
GOOGLE_TOKENS_PER_PAGE = _images.GOOGLE_TOKENS_PER_TILE
GOOGLE_DEFAULT_MEDIA_TOKENS = _images.GOOGLE_TOKENS_PER_TILE

_IGNORED_KEYS = ("cache_control", "citations")


class ApproxTally(Tally):
    """Raw o200k counts of text; fixed extras kept apart so that only text is scaled."""

    __slots__ = ("fixed",)

    def __init__(self) -> None:
        super().__init__(TEXT_ENCODING)
        self.fixed = 0

    def scaled(self, text_tokens: int, scale: tuple[int, int]) -> int:
        num, den = scale
        return -(-text_tokens * num // den) + self.fixed


def _strip(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k not in _IGNORED_KEYS}


# --- Anthropic ------------------------------------------------------------------------------------


def _anthropic_source_document(t: ApproxTally, source: object) -> int:
    if not isinstance(source, dict):
        t.fixed += DOCUMENT_DEFAULT_PAGES * DOCUMENT_TOKENS_PER_PAGE
        return 0
    kind = source.get("type")
    if kind == "text":
        return t.text(source.get("data"))
    if kind == "content":
        return _anthropic_content(t, source.get("content"))
    if kind == "base64" and isinstance(source.get("data"), str):
        t.fixed += pdf_pages_from_base64(source["data"]) * DOCUMENT_TOKENS_PER_PAGE
        return 0
    t.fixed += DOCUMENT_DEFAULT_PAGES * DOCUMENT_TOKENS_PER_PAGE
    return 0


def _anthropic_block(t: ApproxTally, block: object) -> int:
    if isinstance(block, str):
        return t.text(block)
    if not isinstance(block, dict):
        return 0
    kind = block.get("type")
    if kind == "text":
        return t.text(block.get("text"))
    if kind == "image":
        source = block.get("source")
        size = None
        if isinstance(source, dict) and source.get("type") == "base64" and isinstance(source.get("data"), str):
            size = _images.size_from_base64(source["data"])
        t.fixed += _images.anthropic_image_tokens(size)
        return 0
    if kind == "document":
        n = t.text(block.get("title")) + t.text(block.get("context"))
        return n + _anthropic_source_document(t, block.get("source"))
    if kind in ("tool_use", "server_tool_use"):
        return t.text(block.get("name")) + t.json(block.get("input"))
    if kind == "tool_result":
        return _anthropic_content(t, block.get("content"))
    if kind == "thinking":
        return t.text(block.get("thinking"))
    if kind == "redacted_thinking":
        return 0
    if kind == "search_result":
        n = t.text(block.get("title")) + t.text(block.get("source"))
        return n + _anthropic_content(t, block.get("content"))
    return t.json(_strip(block))


def _anthropic_content(t: ApproxTally, content: object) -> int:
    if isinstance(content, str):
        return t.text(content)
    if isinstance(content, list):
        return sum(_anthropic_block(t, b) for b in content)
    return 0


def anthropic_input(body: dict[str, Any]) -> tuple[int, bool]:
    t = ApproxTally()
    n = 0
    system = body.get("system")
    if system:
        t.fixed += ANTHROPIC_TOKENS_PER_MESSAGE
        n += _anthropic_content(t, system)
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, dict):
            t.fixed += ANTHROPIC_TOKENS_PER_MESSAGE
            n += _anthropic_content(t, message.get("content"))
    t.fixed += ANTHROPIC_REPLY_PRIMING
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        choice = body.get("tool_choice")
        choice_type = choice.get("type") if isinstance(choice, dict) else "auto"
        t.fixed += ANTHROPIC_TOOL_SYSTEM_PROMPT.get(str(choice_type), ANTHROPIC_TOOL_SYSTEM_PROMPT["auto"])
        n += sum(t.json(_strip(tool)) for tool in tools if isinstance(tool, dict))
    return t.scaled(n, ANTHROPIC_TEXT_SCALE), False


def anthropic_output(body: dict[str, Any]) -> int:
    t = ApproxTally()
    n = 0
    content = body.get("content")
    for block in content if isinstance(content, list) else ():
        if isinstance(block, dict) and block.get("type") in ("text", "tool_use", "server_tool_use", "thinking"):
            n += _anthropic_block(t, block)
    return t.scaled(n, ANTHROPIC_TEXT_SCALE)


# --- Google ---------------------------------------------------------------------------------------


def _google_blob(t: ApproxTally, blob: object, inline: bool) -> None:
    blob = blob if isinstance(blob, dict) else {}
    mime = get(blob, "mimeType", "mime_type")
    mime = mime if isinstance(mime, str) else ""
    data = blob.get("data")
    if mime.startswith("image/"):
        size = _images.size_from_base64(data) if inline and isinstance(data, str) else None
        t.fixed += _images.google_image_tokens(size)
    elif mime == "application/pdf":
        pages = pdf_pages_from_base64(data) if inline and isinstance(data, str) else DOCUMENT_DEFAULT_PAGES
        t.fixed += pages * GOOGLE_TOKENS_PER_PAGE
    else:
        t.fixed += GOOGLE_DEFAULT_MEDIA_TOKENS


def _google_part(t: ApproxTally, part: object, *, output: bool = False) -> int:
    if isinstance(part, str):
        return t.text(part)
    if not isinstance(part, dict):
        return 0
    if "text" in part:
        # Thought summaries are reasoning, which request mode counts as 0.
        return 0 if output and part.get("thought") else t.text(part.get("text"))
    call = get(part, "functionCall", "function_call")
    if isinstance(call, dict):
        return t.text(call.get("name")) + t.json(call.get("args"))
    if output:
        code = get(part, "executableCode", "executable_code")
        return t.text(code.get("code")) if isinstance(code, dict) else 0
    response = get(part, "functionResponse", "function_response")
    if isinstance(response, dict):
        return t.text(response.get("name")) + t.json(response.get("response"))
    inline = get(part, "inlineData", "inline_data")
    if inline is not None:
        _google_blob(t, inline, inline=True)
        return 0
    file_data = get(part, "fileData", "file_data")
    if file_data is not None:
        _google_blob(t, file_data, inline=False)
        return 0
    code = get(part, "executableCode", "executable_code")
    if isinstance(code, dict):
        return t.text(code.get("code"))
    result = get(part, "codeExecutionResult", "code_execution_result")
    if isinstance(result, dict):
        return t.text(result.get("output"))
    return 0


def _google_content(t: ApproxTally, content: object) -> int:
    """A Content ({role, parts}), a bare part, a string, or a list of them (the SDK's shorthands)."""
    if isinstance(content, str):
        t.fixed += GOOGLE_TOKENS_PER_CONTENT
        return t.text(content)
    if isinstance(content, list):
        return sum(_google_content(t, c) for c in content)
    if not isinstance(content, dict):
        return 0
    t.fixed += GOOGLE_TOKENS_PER_CONTENT
    parts = content.get("parts")
    if parts is None:
        return _google_part(t, content)
    return sum(_google_part(t, p) for p in parts) if isinstance(parts, list) else 0


def _google_config(body: dict[str, Any]) -> dict[str, Any]:
    for key in ("generationConfig", "generation_config", "config"):
        cfg = body.get(key)
        if isinstance(cfg, dict):
            return cfg
    return {}


def _google_field(body: dict[str, Any], *names: str) -> Any:
    # The wire body has system instruction and tools at top level; the SDK's snake_case request
    # dicts keep them inside "config".
    value = get(body, *names)
    if value is None:
        value = get(_google_config(body), *names)
    return value


def google_input(body: dict[str, Any]) -> tuple[int, bool]:
    t = ApproxTally()
    n = 0
    system = _google_field(body, "systemInstruction", "system_instruction")
    if system:
        n += _google_content(t, system)
    n += _google_content(t, body.get("contents"))
    t.fixed += GOOGLE_REPLY_PRIMING
    tools = _google_field(body, "tools")
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict):
            continue
        for key, value in tool.items():
            if key in ("functionDeclarations", "function_declarations") and isinstance(value, list):
                n += sum(t.json(decl) for decl in value)
            else:  # built-in tools: googleSearch, codeExecution, …
                n += t.json({key: value})
    cfg = _google_config(body)
    schema = get(cfg, "responseSchema", "response_schema", "responseJsonSchema", "response_json_schema")
    if schema is not None:
        n += t.json(schema)
    return t.scaled(n, GOOGLE_TEXT_SCALE), False


def google_max_output_tokens(body: dict[str, Any]) -> Any:
    return get(_google_config(body), "maxOutputTokens", "max_output_tokens")


def google_output(body: dict[str, Any]) -> int:
    t = ApproxTally()
    n = 0
    candidates = body.get("candidates")
    for cand in candidates if isinstance(candidates, list) else ():
        content = cand.get("content") if isinstance(cand, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            n += _google_part(t, part, output=True)
    return t.scaled(n, GOOGLE_TEXT_SCALE)


def scaled_text(provider: str, text: str) -> int:
    t = ApproxTally()
    scale = ANTHROPIC_TEXT_SCALE if provider == "anthropic" else GOOGLE_TEXT_SCALE
    return t.scaled(t.text(text), scale)
