"""CallRecords in the terms of OpenTelemetry: where they go (the OTLP/HTTP endpoints of the
standard variables) and what they become (the span's name and attributes under the GenAI
semantic conventions, the resource). The live exporter is ``tokenspy.export.sink``, the export
of a DB ``tokenspy.export.db``; both send over ``tokenspy.export.link``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

try:
    from opentelemetry.sdk.resources import Resource
except ImportError as exc:  # one line naming the extra, not a traceback into a missing package
    from tokenspy.export import missing

    raise missing(exc) from exc

from tokenspy.record import CallRecord

DEFAULT_BASE = "http://localhost:4318"
SCOPE = "tokenspy"  # the instrumentation scope of every span and metric

@dataclass(frozen=True)
class Target:
    """The OTLP/HTTP URLs of the two signals and the headers sent with them."""

    traces: str
    metrics: str
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def resolve(cls, otlp: bool | str, env: Mapping[str, str] | None = None) -> Target:
        """A base URL (``http://host:4318``: ``/v1/traces`` and ``/v1/metrics`` are added), or
        True: the standard variables (``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT``, whose
        per-signal forms are full URLs, ``…_HEADERS``), defaulting to localhost:4318. Raises
        ValueError with one line for a URL that is not http(s)://host[:port] or a gRPC setting."""
        env = os.environ if env is None else env
        if isinstance(otlp, str):
            base = _check_url(otlp.strip(), "otlp endpoint")
            traces, metrics = _signal_url(base, "traces"), _signal_url(base, "metrics")
        else:
            for var in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
                proto = env.get(var, "").strip()
                if proto and proto != "http/protobuf":
                    raise ValueError(f"{var}={proto}: tokenspy exports over OTLP/HTTP (http/protobuf) only; "
                                     "give the collector's HTTP endpoint (e.g. http://host:4318)")
            base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or DEFAULT_BASE
            _check_url(base, "OTEL_EXPORTER_OTLP_ENDPOINT")
            traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip() or _signal_url(base, "traces")
            metrics = env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "").strip() or _signal_url(base, "metrics")
            _check_url(traces, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            _check_url(metrics, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        return cls(traces, metrics, tuple(sorted(_env_headers(env).items())))


def _check_url(url: str, where: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{where}: {url!r} is not an OTLP/HTTP endpoint (expected http(s)://host[:port])")
    return url


def _signal_url(base: str, signal: str) -> str:
    b = base.rstrip("/")
    for known in ("/v1/traces", "/v1/metrics"):  # a signal's URL given where the base was meant
        if b.endswith(known):
            b = b[: -len(known)]
    return f"{b}/v1/{signal}"


def _env_headers(env: Mapping[str, str]) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS`` (``k=v,k2=v2``, URL-encoded), the traces' own variable winning."""
    out: dict[str, str] = {}
    for var in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        for item in env.get(var, "").split(","):
            key, sep, value = item.partition("=")
            if sep and key.strip():
                out[unquote(key.strip()).lower()] = unquote(value.strip())
    return out


# The GenAI conventions' names where tokenspy's provider names differ (tokenspy's "google" is the
# Gemini API of google-genai and google-generativeai).
_PROVIDERS = {"google": "gcp.gemini"}
_COMPLETION_MODELS = ("davinci-002", "babbage-002")


def operation(rec: CallRecord) -> str:
    """``gen_ai.operation.name``: a CallRecord does not keep the endpoint, so it is read from
    the provider and model (embedding models embed, legacy completion models complete)."""
    model = rec.model.lower()
    if "embed" in model:
        return "embeddings"
    if rec.provider == "google":
        return "generate_content"
    if model.endswith("-instruct") or model in _COMPLETION_MODELS:
        return "text_completion"
    return "chat"


def span_name(rec: CallRecord, request_model: str | None = None) -> str:
    return f"{operation(rec)} {request_model or rec.model}"


def span_attributes(rec: CallRecord, request_model: str | None = None) -> dict[str, Any]:
    """The span's attributes: GenAI conventions first, then tokenspy's. None is never a value
    (OTel drops it with a warning); zero cached/reasoning counts are left out."""
    a: dict[str, Any] = {
        "gen_ai.operation.name": operation(rec),
        "gen_ai.provider.name": _PROVIDERS.get(rec.provider, rec.provider),
        "gen_ai.request.model": request_model or rec.model,
        "gen_ai.response.model": rec.model,
        "gen_ai.usage.input_tokens": rec.input_tokens,
        "gen_ai.usage.output_tokens": rec.output_tokens,
    }
    if rec.cached_input_tokens:
        a["gen_ai.usage.cache_read.input_tokens"] = rec.cached_input_tokens
    if rec.cache_write_tokens:
        a["gen_ai.usage.cache_creation.input_tokens"] = rec.cache_write_tokens
    if rec.reasoning_tokens:
        a["gen_ai.usage.reasoning.output_tokens"] = rec.reasoning_tokens
    if rec.max_output_tokens is not None:
        a["gen_ai.request.max_tokens"] = rec.max_output_tokens
    a["tokenspy.cost_usd"] = rec.cost_usd
    a["tokenspy.priced"] = rec.priced
    a["tokenspy.usage_source"] = rec.usage_source
    a["code.function.name"] = rec.function_name
    optional = (
        ("code.file.path", rec.source_file), ("code.line.number", rec.source_line),
        ("test.case.name", rec.test_id), ("vcs.ref.head.revision", rec.git_commit),
        ("tokenspy.run.id", rec.run_id), ("tokenspy.session.id", rec.session_id),
        ("tokenspy.project", rec.project), ("tokenspy.max_cost_usd", rec.max_cost_usd),
    )
    a.update((k, v) for k, v in optional if v is not None)
    if rec.call_stack:
        a["tokenspy.call_stack"] = tuple(str(f) for f in rec.call_stack)
    return a


def times(rec: CallRecord) -> tuple[int, int]:
    """(start, end) in ns since the epoch: the record's timestamp is when the request started."""
    start = int(rec.timestamp * 1e9)
    return start, start + max(int(rec.duration_ms * 1e6), 0)


def resource(env: Mapping[str, str] | None = None) -> Resource:
    """The SDK's resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``), named
    ``tokenspy`` when neither names the service."""
    res = Resource.create()
    name = str(res.attributes.get("service.name", ""))
    if not name or name.startswith("unknown_service"):
        res = res.merge(Resource({"service.name": "tokenspy"}))
    return res
