"""Token counts from LLM request and response bodies as sent on the wire: the basis of request mode.

Pure functions over JSON-like dicts; nothing here records, patches or prices.

* OpenAI (``chat``, ``responses``, ``embeddings``, ``completions``): exact, with the model's real
  BPE encoding (``o200k_base`` for gpt-4o/4.1/4.5/5, the o-series and unknown models,
  ``cl100k_base`` for gpt-4/gpt-3.5/text-embedding-3/ada-002) and the message framing of OpenAI's
  cookbook "How to count tokens with tiktoken". See :mod:`tokenspy.tokens._openai` for the
  constants and the conventions used where OpenAI publishes none.
* Anthropic (``messages``) and Google (``generate_content``): no public tokenizer exists for current
  models, so counts are a documented deterministic approximation (:mod:`tokenspy.tokens._approx`),
  always ``exact=False``.

Encodings load lazily on the first count, from local files only unless all of them are missing
(see :mod:`tokenspy.tokens._encodings`); if none can be loaded a
:class:`~tokenspy.errors.TokenizerUnavailableWarning` is issued once and counts are approximate.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from tokenspy.tokens import _approx, _encodings, _openai
from tokenspy.tokens._common import Tally, as_int

__all__ = [
    "ENDPOINTS",
    "PROVIDERS",
    "RequestCount",
    "count_request",
    "count_response",
    "count_text",
    "encoding_for_model",
    "is_exact",
    "tokenizer_for",
]

PROVIDERS = ("openai", "anthropic", "google")
ENDPOINTS: dict[str, tuple[str, ...]] = {
    "openai": ("chat", "responses", "embeddings", "completions"),
    "anthropic": ("messages",),
    "google": ("generate_content",),
}


class RequestCount(NamedTuple):
    """What a request will cost in input tokens, and its output ceiling."""

    model: str | None
    input_tokens: int
    max_output_tokens: int | None
    exact: bool  # True only when the model's real BPE encoding counted every text in the request
    tokenizer: str  # "o200k_base", "cl100k_base", "approx:anthropic", "approx:google"


def _check(provider: str, endpoint: str) -> None:
    endpoints = ENDPOINTS.get(provider)
    if endpoints is None:
        raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    if endpoint not in endpoints:
        raise ValueError(f"unknown {provider} endpoint {endpoint!r}; expected one of {', '.join(endpoints)}")


def encoding_for_model(model: str | None) -> str:
    """The tiktoken encoding name used for an OpenAI model (``o200k_base`` when unknown)."""
    return _openai.encoding_for_model(model)


def tokenizer_for(provider: str, model: str | None) -> str:
    """The ``tokenizer`` label that counts for this provider and model carry."""
    if provider == "openai":
        return _openai.encoding_for_model(model)
    return f"approx:{provider}"


def is_exact(provider: str, model: str | None = None) -> bool:
    """Whether counts for this provider/model come from the real tokenizer (loads it if needed).

    True for OpenAI when its encoding loaded; always False for Anthropic and Google.
    """
    if provider != "openai":
        return False
    return _encodings.get_encoding(_openai.encoding_for_model(model)) is not None


def _google_model(body: dict[str, Any], model: str | None) -> str | None:
    name = model if model is not None else body.get("model")
    if not isinstance(name, str):
        return None
    # "models/gemini-2.5-flash" (Gemini API) or ".../publishers/google/models/gemini-2.5-flash" (Vertex)
    return name.rsplit("/", 1)[-1]


def count_request(provider: str, endpoint: str, body: dict[str, Any], *, model: str | None = None) -> RequestCount:
    """Input tokens of a request body as sent on the wire.

    ``model`` is used when the body does not name one (Google puts it in the URL).
    Raises ValueError for an unknown provider or endpoint; odd shapes inside the body are skipped.
    """
    _check(provider, endpoint)
    if not isinstance(body, dict):
        body = {}
    if provider == "openai":
        name = body.get("model") if isinstance(body.get("model"), str) else model
        t = Tally(_openai.encoding_for_model(name))
        n = _openai.REQUEST_COUNTERS[endpoint](t, body, name)
        ceiling = as_int(_openai.max_output_tokens(endpoint, body))
        return RequestCount(name, n, ceiling, t.exact, t.encoding)
    if provider == "anthropic":
        name = body.get("model") if isinstance(body.get("model"), str) else model
        n, exact = _approx.anthropic_input(body)
        return RequestCount(name, n, as_int(body.get("max_tokens")), exact, "approx:anthropic")
    name = _google_model(body, model)
    n, exact = _approx.google_input(body)
    return RequestCount(name, n, as_int(_approx.google_max_output_tokens(body)), exact, "approx:google")


def count_response(provider: str, endpoint: str, body: dict[str, Any], model: str | None = None) -> int:
    """Output tokens counted from a (non-streamed) response body's content.

    Counts message text, refusals, tool-call names and arguments (and Anthropic thinking blocks);
    OpenAI reasoning items and Google thought parts count 0 (reasoning tokens are 0 in request mode).
    """
    _check(provider, endpoint)
    if not isinstance(body, dict):
        return 0
    if provider == "openai":
        name = model if model is not None else body.get("model")
        t = Tally(_openai.encoding_for_model(name if isinstance(name, str) else None))
        return _openai.RESPONSE_COUNTERS[endpoint](t, body, name if isinstance(name, str) else None)
    if provider == "anthropic":
        return _approx.anthropic_output(body)
    return _approx.google_output(body)


def count_text(provider: str, model: str | None, text: str) -> int:
    """Tokens of text accumulated by the caller (e.g. a stream's deltas), with the provider's counter."""
    if provider not in ENDPOINTS:
        raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    if not text:
        return 0
    if provider == "openai":
        return Tally(_openai.encoding_for_model(model)).text(text)
    return _approx.scaled_text(provider, text)
