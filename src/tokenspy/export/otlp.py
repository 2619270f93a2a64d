"""CallRecords as OpenTelemetry spans and metrics (GenAI semantic conventions), over OTLP/HTTP.

One span per call, named ``{operation} {model}``, kind CLIENT, with the call's real start and
end times; the GenAI attributes plus tokenspy's own (cost, priced, usage source, function,
file, line, test, commit, run). Live, a call's span is a child of the OTel span that was current
when the request was made; from a DB, its trace and span ids derive from the row's ``call_uid``,
so exporting a DB twice sends the same spans again (backends that deduplicate count them once).

Live export stays off the user's call: the recorder's sink only appends the record to a bounded
queue; a tokenspy thread makes the spans and metric points, and the SDK's BatchSpanProcessor
and PeriodicExportingMetricReader send them from their own threads. A collector that cannot be
reached costs one warning: exports then fail at once for a back-off period instead of retrying
for the OTLP timeout each, what could not be sent is counted, and the count is printed at exit.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

try:
    from opentelemetry import context as otel_context
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
except ImportError as exc:  # one line naming the extra, not a traceback into a missing package
    from tokenspy.export import INSTALL_HINT, MissingExtra

    raise MissingExtra(f"OpenTelemetry export needs the OpenTelemetry packages ({exc}): {INSTALL_HINT}") from exc

from tokenspy.errors import TokenspyWarning
from tokenspy.record import CallRecord
from tokenspy.version import __version__

DEFAULT_BASE = "http://localhost:4318"
SCOPE = "tokenspy"
QUEUE_SIZE = 2048  # calls waiting for the tokenspy thread; past it a call's span is dropped (counted)
BACKOFF_MIN, BACKOFF_MAX = 5.0, 60.0  # seconds exports fail at once after a failed one
EXIT_FLUSH_S = 3.0  # how long exit waits for the collector to take what is queued (a dead one: not at all)
DB_BATCH = 512

# The GenAI conventions' names where tokenspy's provider names differ (tokenspy's "google" is the
# Gemini API of google-genai and google-generativeai).
_PROVIDERS = {"google": "gcp.gemini"}
_COMPLETION_MODELS = ("davinci-002", "babbage-002")
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)


# --------------------------------------------------------------------------- where to send


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


# --------------------------------------------------------------------------- what is sent


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


def _times(rec: CallRecord) -> tuple[int, int]:
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


# --------------------------------------------------------------------------- the collector link

_quiet = threading.local()


class _QuietOnOurThreads(logging.Filter):
    """The OTLP exporters log every failed batch and retry; tokenspy says it once instead. Only
    records logged on a thread that is exporting tokenspy's data are dropped: an app's own OTel
    pipeline, on its own threads, keeps its logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(_quiet, "on", False):
            return True
        if record.levelno >= logging.WARNING and not getattr(_quiet, "last", None):
            try:  # the exporter's first word on a failure (the cause; later ones say it gave up)
                _quiet.last = record.getMessage()[:300]
            except Exception:
                pass
        return False


_filter_installed = False


def _install_quiet_filter() -> None:
    global _filter_installed
    if _filter_installed:
        return
    _filter_installed = True
    quiet = _QuietOnOurThreads()
    # a logger's filters see only its own records: every OTel logger there is once they are imported
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("opentelemetry") and isinstance(logger, logging.Logger):
            logger.addFilter(quiet)


class _Once:
    """The one warning of an exporter, whichever of its signals fails first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.given = False

    def take(self) -> bool:
        with self.lock:
            first, self.given = not self.given, True
            return first


class _Link:
    """What one signal's exporter learned about the collector: spans sent and lost, whether it
    failed lately (then batches fail at once, without a network attempt, for a back-off that
    doubles to a minute). Traces and metrics have one each: a backend that takes only traces
    (Phoenix, Tempo) must not hold the spans back."""

    def __init__(self, where: str, once: _Once) -> None:
        self.where = where
        self.once = once
        self.lock = threading.Lock()
        self.sent = 0  # spans the collector accepted
        self.failed = 0  # spans in batches that failed or were skipped
        self.down_until = 0.0
        self.backoff = BACKOFF_MIN
        self.closing = False  # at exit: never wait for a collector that is down
        self.error: str | None = None

    def skip(self) -> bool:
        return (self.closing and self.down_until > 0) or time.monotonic() < self.down_until

    def skipped(self, spans: int) -> None:
        """A batch failed at once, the collector being down: counted, the back-off unchanged."""
        with self.lock:
            self.failed += spans

    def done(self, spans: int, ok: bool, reason: str = "") -> None:
        with self.lock:
            if ok:
                self.sent += spans
                self.down_until, self.backoff = 0.0, BACKOFF_MIN
                return
            self.failed += spans
            self.error = reason or "the collector did not accept the data"
            self.down_until = time.monotonic() + self.backoff
            self.backoff = min(self.backoff * 2, BACKOFF_MAX)
        if self.once.take():
            from tokenspy.recorder import warn as safe_warn  # never raises, even under -W error

            safe_warn(f"tokenspy: cannot export to the OpenTelemetry collector at {self.where} ({self.error}); "
                      "your LLM calls are unaffected, and what could not be sent is counted and reported at exit",
                      TokenspyWarning, stacklevel=1)


def _quietly(call: Callable[[], Any]) -> tuple[Any, str]:
    """(what ``call`` returned, or False if it raised; the reason the exporter logged, if any),
    its logs kept back (see _QuietOnOurThreads)."""
    was = getattr(_quiet, "on", False)
    _quiet.on, _quiet.last = True, None
    try:
        result = call()
    except Exception as exc:
        result, _quiet.last = False, f"{type(exc).__name__}: {exc}"
    finally:
        _quiet.on = was
    return result, _quiet.last or ""


class _GuardedSpans(SpanExporter):
    def __init__(self, inner: SpanExporter, link: _Link) -> None:
        self.inner = inner
        self.link = link

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.link.skip():
            self.link.skipped(len(spans))
            return SpanExportResult.FAILURE
        ok, reason = _quietly(lambda: self.inner.export(spans) == SpanExportResult.SUCCESS)
        self.link.done(len(spans), ok, reason)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        _quietly(self.inner.shutdown)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _GuardedMetrics(MetricExporter):
    def __init__(self, inner: MetricExporter, link: _Link) -> None:
        super().__init__(preferred_temporality=inner._preferred_temporality,
                         preferred_aggregation=inner._preferred_aggregation)
        self.inner = inner
        self.link = link

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        if self.link.skip():
            return MetricExportResult.FAILURE
        ok, reason = _quietly(lambda: self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
                              == MetricExportResult.SUCCESS)
        self.link.done(0, ok, reason)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        _quietly(lambda: self.inner.shutdown(timeout_millis=timeout_millis, **kwargs))


# --------------------------------------------------------------------------- live export


class LiveExporter:
    """A sink of the recorder (``tokenspy.sinks``): every recorded call becomes one span, two
    points of ``gen_ai.client.token.usage`` and one add to the ``tokenspy.cost`` counter."""

    def __init__(self, target: Target, export_interval_ms: int | None = None) -> None:
        self.target = target
        once = _Once()
        self.link = _Link(target.traces, once)
        self.metrics_link = _Link(target.metrics, once)
        headers = dict(target.headers) or None
        res = resource()
        _install_quiet_filter()
        self._tracer_provider = TracerProvider(resource=res, shutdown_on_exit=False)
        self._spans_out = _GuardedSpans(OTLPSpanExporter(endpoint=target.traces, headers=headers), self.link)
        self._tracer_provider.add_span_processor(BatchSpanProcessor(self._spans_out))
        self._tracer = self._tracer_provider.get_tracer(SCOPE, __version__)
        # OTEL_METRICS_EXPORTER=none (the SDK's switch) sends spans only
        self._metrics_out = _GuardedMetrics(OTLPMetricExporter(endpoint=target.metrics, headers=headers),
                                            self.metrics_link)
        readers = [] if os.environ.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "none" else [
            PeriodicExportingMetricReader(self._metrics_out, export_interval_millis=export_interval_ms)]
        # no exemplars: the points are recorded on tokenspy's thread, where no span is current, so the
        # default trace-based filter would only cost its check on every point
        self._meter_provider = MeterProvider(resource=res, metric_readers=readers, shutdown_on_exit=False,
                                             exemplar_filter=AlwaysOffExemplarFilter())
        meter = self._meter_provider.get_meter(SCOPE, __version__)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS))
        self._cost = meter.create_counter("tokenspy.cost", unit="USD", description="What the LLM calls cost")
        self._queue: deque[tuple[CallRecord, Any, str | None]] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = False
        self.calls = 0  # calls handed to the exporter
        self.spans = 0  # spans made (a span the parent's sampler dropped is not one)
        self.dropped = 0  # calls dropped because the queue was full
        self.handled = 0  # calls the tokenspy thread is done with
        self.closed = False
        me = weakref.ref(self)
        atexit.register(_close_at_exit, me)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: _after_fork(me))

    # ---- on the caller's thread: keep it to a deque append

    def capture(self) -> Any:
        return otel_context.get_current()

    def send(self, rec: CallRecord, captured: Any, request_model: str | None) -> None:
        q = self._queue
        self.calls += 1
        if len(q) >= QUEUE_SIZE or self.closed:
            self.dropped += 1
            return
        was_empty = not q
        q.append((rec, captured, request_model))
        if self._thread is None:
            self._start()
        if was_empty:  # the thread is waiting only when the queue was empty
            self._wake.set()

    # ---- on tokenspy's thread

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stopping:
                t = threading.Thread(target=self._run, name="tokenspy-otlp", daemon=True)
                t.start()
                self._thread = t

    def _run(self) -> None:
        _quiet.on = True  # the SDK's "queue is full" log: tokenspy counts and reports those
        while True:
            # the timeout bounds how long a call appended while the queue was being emptied waits
            self._wake.wait(1.0)
            self._wake.clear()
            self._drain()
            if self._stopping:
                self._drain()
                return

    def _drain(self) -> None:
        q = self._queue
        while q:
            rec, ctx, request_model = q.popleft()
            try:
                self._emit(rec, ctx, request_model)
            except Exception as exc:  # tokenspy's bug: say it once, keep exporting the rest
                from tokenspy.recorder import internal_error

                internal_error(exc)
            finally:
                self.handled += 1

    def _emit(self, rec: CallRecord, ctx: Any, request_model: str | None) -> None:
        attrs = span_attributes(rec, request_model)
        start, end = _times(rec)
        span = self._tracer.start_span(span_name(rec, request_model), context=ctx, kind=SpanKind.CLIENT,
                                       attributes=attrs, start_time=start)
        if span.get_span_context().trace_flags.sampled:
            self.spans += 1
        span.end(end_time=end)
        point = {k: attrs[k] for k in ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
                                       "gen_ai.response.model")}
        self._tokens.record(rec.input_tokens, {**point, "gen_ai.token.type": "input"})
        self._tokens.record(rec.output_tokens, {**point, "gen_ai.token.type": "output"})
        self._cost.add(rec.cost_usd, {**point, "code.function.name": rec.function_name,
                                      "tokenspy.priced": rec.priced})

    # ---- flushing and closing

    def flush(self, timeout: float = 10.0) -> bool:
        """Make the spans of every call sent so far and export them (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        sent = self.calls
        while self.handled + self.dropped < sent and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.005)
        left = max(deadline - time.monotonic(), 0.0)
        ok = self._tracer_provider.force_flush(int(left * 1000))
        return self._meter_provider.force_flush(int(max(deadline - time.monotonic(), 0.0) * 1000)) and ok

    def lost(self) -> int:
        """Calls whose span did not reach the collector (so far)."""
        return self.dropped + max(self.spans - self.link.sent, 0)

    def close(self, report: bool = True) -> None:
        """Stop: make the queued calls' spans, give a reachable collector up to EXIT_FLUSH_S to
        take them, and print one line if any call's span was lost."""
        if self.closed:
            return
        self._stopping = True
        thread = self._thread
        if thread is not None:
            self._wake.set()
            thread.join(EXIT_FLUSH_S)
        self.closed = True
        self.link.closing = self.metrics_link.closing = True  # a collector that failed last time is not waited for

        def finish() -> None:
            _quiet.on = True
            try:
                self._tracer_provider.shutdown()  # exports what is queued, then stops
                self._meter_provider.shutdown()  # a last collection and export
            except Exception:
                pass

        # The SDK's flush and shutdown wait for an export in progress whatever timeout they are
        # given (an OTLP retry loop runs up to its own timeout): they run on a thread of their
        # own, and past EXIT_FLUSH_S the exporters are shut, which ends their retries at once.
        done = threading.Thread(target=finish, name="tokenspy-otlp-close", daemon=True)
        done.start()
        done.join(EXIT_FLUSH_S)
        if done.is_alive():
            for link in (self.link, self.metrics_link):
                link.down_until = max(link.down_until, 1.0)  # whatever is left fails at once
            for out in (self._spans_out, self._metrics_out):
                try:
                    out.shutdown()
                except Exception:
                    pass
            done.join(1.0)
        lost = self.lost()
        if report and lost:
            try:
                sys.stderr.write(f"tokenspy: {lost} of {self.calls} LLM call(s) were not exported to "
                                 f"{self.target.traces} ({self.link.error or 'queue full'})\n")
            except Exception:
                pass


def _close_at_exit(ref: weakref.ref[LiveExporter]) -> None:
    exporter = ref()
    if exporter is not None:
        exporter.close()


def _after_fork(ref: weakref.ref[LiveExporter]) -> None:
    exporter = ref()
    if exporter is not None:  # the parent's thread does not exist here: start one on first use
        exporter._thread = None
        exporter._start_lock = threading.Lock()
        exporter._queue.clear()  # the parent's calls: the parent exports them


# --------------------------------------------------------------------------- export of a DB


class ExportError(Exception):
    """The export failed; the message is one line."""


def stable_ids(uid: str) -> tuple[int, int]:
    """(trace id, span id) of a stored call: the same for the same row, every time."""
    h = hashlib.sha256(b"tokenspy-call:" + uid.encode("utf-8")).digest()
    trace_id = int.from_bytes(h[:16], "big") or 1
    span_id = int.from_bytes(h[16:24], "big") or 1
    return trace_id, span_id


def db_span(rec: CallRecord, uid: str, res: Resource, scope: InstrumentationScope) -> ReadableSpan:
    trace_id, span_id = stable_ids(uid)
    attrs = span_attributes(rec)
    attrs["tokenspy.call_uid"] = uid
    start, end = _times(rec)
    ctx = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return ReadableSpan(name=span_name(rec), context=ctx, parent=None, resource=res, attributes=attrs,
                        kind=SpanKind.CLIENT, start_time=start, end_time=end, instrumentation_scope=scope)


def check_collector(target: Target, timeout: float = 10.0) -> None:
    """POST an empty OTLP trace request (valid protobuf: zero bytes) to learn, before sending
    anything, whether the collector is there and takes our requests. Raises ExportError."""
    req = urllib.request.Request(target.traces, data=b"", method="POST",
                                 headers={"Content-Type": "application/x-protobuf", **dict(target.headers)})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        raise ExportError(f"{target.traces}: the collector answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ExportError(f"cannot reach the OpenTelemetry collector at {target.traces} ({reason})") from None


def stored_calls(conn: Any, run: str | None = None, commit: str | None = None
                 ) -> tuple[int, Iterator[tuple[str, CallRecord]]]:
    """(how many, the (uid, record) of each) stored calls of ``run`` or ``commit``, oldest first.
    A row without ``call_uid`` (written by the original tool) gets a uid from its row id and
    content, stable for that file."""
    import sqlite3

    from tokenspy.store import columns_of, record_from_row

    where, params = [], []
    if run is not None:
        where.append("run_id = ?")
        params.append(run)
    if commit is not None:
        where.append("git_commit = ?")
        params.append(commit)
    if run is not None and "run_id" not in columns_of(conn):
        return 0, iter(())
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    total = conn.execute(f"SELECT COUNT(*) FROM llm_calls{clause}", params).fetchone()[0]
    conn.row_factory = sqlite3.Row
    has_uid = "call_uid" in columns_of(conn)

    def rows() -> Iterator[tuple[str, CallRecord]]:
        for row in conn.execute(f"SELECT * FROM llm_calls{clause} ORDER BY id", params):
            uid = row["call_uid"] if has_uid else None
            rec = record_from_row(row)
            if not uid:
                uid = f"row-{row['id']}-{rec.timestamp!r}-{rec.function_name}-{rec.model}"
            yield uid, rec

    return total, rows()


def export_db(path: str, target: Target, *, run: str | None = None, commit: str | None = None,
              progress: Callable[[int, int], None] | None = None, batch: int = DB_BATCH) -> int:
    """Send the stored calls of ``path`` (of ``run`` or ``commit`` when given) as spans with
    their original times; returns how many. Raises ExportError (one line) when the collector
    cannot be reached or stops taking batches, DBError for a bad DB."""
    from tokenspy.store import open_readonly

    with closing(open_readonly(path)) as conn:
        total, calls = stored_calls(conn, run, commit)
        if total == 0:
            return 0
        check_collector(target)
        _install_quiet_filter()
        exporter = OTLPSpanExporter(endpoint=target.traces, headers=dict(target.headers) or None)
        res, scope = resource(), InstrumentationScope(SCOPE, __version__)
        sent = 0
        pending: list[ReadableSpan] = []

        def ship() -> None:
            nonlocal sent
            ok, reason = _quietly(lambda: exporter.export(pending) == SpanExportResult.SUCCESS)
            if not ok:
                raise ExportError(f"the collector at {target.traces} stopped taking spans after {sent} of {total} "
                                  f"calls ({reason or 'export failed'}); export again to send the rest "
                                  "(spans already sent keep their ids)")
            sent += len(pending)
            pending.clear()
            if progress is not None:
                progress(sent, total)

        try:
            for uid, rec in calls:
                pending.append(db_span(rec, uid, res, scope))
                if len(pending) >= batch:
                    ship()
            if pending:
                ship()
        finally:
            _quietly(exporter.shutdown)
        return sent
