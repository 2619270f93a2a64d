"""Where a call's token counts come from.

``"response"`` (the default): the usage the provider's response reports, and the model it names.
``"request"`` (request mode): the model the request asked for, its input tokens counted from the
request body with the provider's tokenizer (``tokenspy.tokens``), and its output tokens counted
from the answer's content. Under a mock that returns one canned body, request mode still sees a
prompt, model or answer change. A record's ``usage_source`` says which it got: ``"response"``,
``"request"`` (OpenAI's real tokenizer) or ``"request_approx"`` (Anthropic and Google, for which
no public tokenizer exists, or an encoding that could not be loaded). Cached-input and reasoning
tokens are 0 in request mode: a request does not say what the provider will cache or think.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from tokenspy import pyproject
from tokenspy.record import Usage

RESPONSE, REQUEST, REQUEST_APPROX = "response", "request", "request_approx"
SOURCES = (RESPONSE, REQUEST)  # what a process can be set to; records may also say REQUEST_APPROX


def check(value: object) -> str:
    """``value`` if it is a usage source a process can use, else ValueError naming the allowed ones."""
    if value not in SOURCES:
        raise ValueError(f"unknown usage source {value!r}: expected one of {', '.join(map(repr, SOURCES))}")
    return value  # type: ignore[return-value]


class Request(NamedTuple):
    """What an interceptor saw of a request, for request mode."""

    endpoint: str  # tokenspy.tokens' endpoint name: "chat", "messages", "generate_content", ...
    body: dict[str, Any]  # JSON-like, as sent on the wire
    deployment: bool = False  # an Azure OpenAI request: its model is a deployment name
    # The tokenizer's provider when it is not the call's (LangChain models of other providers are
    # counted as OpenAI chat); such counts are approximate.
    count_as: str | None = None


class Counted(NamedTuple):
    model: str | None
    usage: Usage
    source: str
    max_output_tokens: int | None
    priceable: bool  # False: an unmapped deployment, never priced by guess


def jsonable(value: Any) -> Any:
    """SDK objects (pydantic models, lists and dicts of them) as the JSON-like data they send."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


_deployments: dict[str, str] | None = None


def deployments() -> dict[str, str]:
    """``[tool.tokenspy.deployments]``: Azure OpenAI deployment name -> model (read once)."""
    global _deployments
    if _deployments is None:
        try:
            path, table = pyproject.tool_table()
        except ValueError:
            path, table = None, {}
        found = table.get("deployments", {})
        if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
            raise ValueError(f"{path}: [tool.tokenspy.deployments] maps deployment names to model names")
        _deployments = dict(found)
    return _deployments


def reload() -> None:
    """Read ``[tool.tokenspy.deployments]`` again on next use (the cwd or the file changed)."""
    global _deployments
    _deployments = None


def count(provider: str, request: Request, answer: Any, model: str | None = None) -> Counted:
    """The request-side usage of a call: input counted from the request, output from ``answer``
    (a response body or SDK response object, or the text a stream delivered). ``model``: the
    request's model where the body does not name it (Google's is in the URL)."""
    from tokenspy import tokens  # tiktoken loads on the first count, not with tokenspy

    counter = request.count_as or provider
    asked = tokens.count_request(counter, request.endpoint, request.body, model=model)
    model, priceable = asked.model, True
    if request.deployment and model is not None:
        mapped = deployments().get(model)
        model, priceable = (mapped, True) if mapped else (model, False)
    if isinstance(answer, str):
        output = tokens.count_text(counter, model, answer)
    elif answer is None:
        output = 0
    else:
        body = jsonable(answer)
        output = tokens.count_response(counter, request.endpoint, body, model) if isinstance(body, dict) else 0
    exact = asked.exact and tokens.is_exact(counter, model) and counter == provider
    return Counted(model, Usage(asked.input_tokens, output), REQUEST if exact else REQUEST_APPROX,
                   asked.max_output_tokens, priceable)


def text_of(value: Any) -> str:
    """Tool-call arguments and the like as the text a stream delivered them in."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
