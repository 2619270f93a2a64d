"""Request mode for LangChain runs that reach no patched SDK: the messages a chat model is given
(or an LLM's prompts) as the wire body of their provider, and the answer as text, for
``tokenspy.usage_source`` to count.

Anthropic and Google models get their own request shapes; every other model (OpenAI's, fake and
test chat models, other providers) is counted as an OpenAI chat request: exact for OpenAI models,
an approximation for the rest.
"""

from __future__ import annotations

import json
from typing import Any

from tokenspy.usage_source import Request

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "function",
          "chat": "user", "developer": "developer"}


def _attr(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text(_attr(part, "text") or "") if not isinstance(part, str) else part for part in content)
    return ""


def _tool_calls(message: Any) -> list[dict[str, Any]]:
    out = []
    for call in _attr(message, "tool_calls") or ():
        args = _attr(call, "args")
        out.append({"id": _attr(call, "id") or "", "type": "function",
                    "function": {"name": _attr(call, "name") or "",
                                 "arguments": json.dumps(args if args is not None else {}, sort_keys=True)}})
    return out


def _openai_message(message: Any) -> dict[str, Any]:
    role = _ROLES.get(_attr(message, "type") or "", "user")
    content = _attr(message, "content")
    out: dict[str, Any] = {"role": role, "content": content if isinstance(content, (str, list)) else ""}
    name = _attr(message, "name")
    if isinstance(name, str) and name:
        out["name"] = name
    calls = _tool_calls(message)
    if calls:
        out["tool_calls"] = calls
    if role == "tool":
        out["tool_call_id"] = _attr(message, "tool_call_id") or ""
    return out


def chat_request(provider: str, model: str | None, messages: list[Any], params: Any) -> Request:
    """The request of a chat model run (``messages``: the run's one list of BaseMessages)."""
    if provider == "anthropic":
        system = "".join(_text(_attr(m, "content")) for m in messages if _attr(m, "type") == "system")
        turns = [{"role": "assistant" if _attr(m, "type") == "ai" else "user", "content": _text(_attr(m, "content"))}
                 for m in messages if _attr(m, "type") != "system"]
        body: dict[str, Any] = {"model": model, "messages": turns, **({"system": system} if system else {})}
        return Request("messages", body)
    if provider == "google":
        system = "".join(_text(_attr(m, "content")) for m in messages if _attr(m, "type") == "system")
        contents = [{"role": "model" if _attr(m, "type") == "ai" else "user",
                     "parts": [{"text": _text(_attr(m, "content"))}]}
                    for m in messages if _attr(m, "type") != "system"]
        body = {"contents": contents, **({"system_instruction": {"parts": [{"text": system}]}} if system else {})}
        return Request("generate_content", body)
    body = {"model": model, "messages": [_openai_message(m) for m in messages]}
    tools = _attr(params, "tools")
    if isinstance(tools, list) and tools:
        body["tools"] = tools
    return Request("chat", body, count_as=None if provider == "openai" else "openai")


def llm_request(provider: str, model: str | None, prompts: list[str]) -> Request:
    """The request of a completion-style LLM run."""
    return Request("completions", {"model": model, "prompt": list(prompts)},
                   count_as=None if provider == "openai" else "openai")


def answer_text(response: Any) -> str:
    """What an ``LLMResult`` answered: message text, and tool calls' names and arguments."""
    pieces: list[str] = []
    for gens in _attr(response, "generations") or ():
        for gen in gens or ():
            message = _attr(gen, "message")
            if message is None:
                pieces.append(_attr(gen, "text") or "")
                continue
            pieces.append(_text(_attr(message, "content")))
            for call in _tool_calls(message):
                pieces += [call["function"]["name"], call["function"]["arguments"]]
        break  # one prompt's generations: a run is one call
    return "".join(pieces)
