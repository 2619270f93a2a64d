"""Live export: a sink of the recorder (``tokenspy.sinks``) that turns every recorded call into
one span, two points of ``gen_ai.client.token.usage`` and one add to the ``tokenspy.cost``
counter, sent over OTLP/HTTP.

It stays off the user's call: ``send`` only appends the record (with the OTel context captured
when the request started) to a bounded queue; a tokenspy thread makes the spans and metric
points, and the SDK's BatchSpanProcessor and PeriodicExportingMetricReader send them from their
own threads. Closing (``tokenspy.init()`` again, the pytest plugin's end, or exit) is bounded in
time and prints one line when calls could not be exported.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
from collections import deque
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind
except ImportError as exc:  # one line naming the extra, not a traceback into a missing package
    from tokenspy.export import missing

    raise missing(exc) from exc

from tokenspy.export.link import GuardedMetrics, GuardedSpans, Link, Once, install_quiet_filter, quiet
from tokenspy.export.otlp import SCOPE, Target, resource, span_attributes, span_name, times
from tokenspy.record import CallRecord
from tokenspy.version import __version__

QUEUE_SIZE = 2048  # calls waiting for the tokenspy thread; past it a call's span is dropped (counted)
EXIT_FLUSH_S = 3.0  # how long closing waits for the collector to take what is queued (a dead one: not at all)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)


class LiveExporter:
    """A sink of the recorder (``tokenspy.sinks``): every recorded call becomes one span, two
    points of ``gen_ai.client.token.usage`` and one add to the ``tokenspy.cost`` counter."""

    def __init__(self, target: Target, export_interval_ms: int | None = None) -> None:
        self.target = target
        once = Once()
        self.link = Link(target.traces, once)
        self.metrics_link = Link(target.metrics, once)
        headers = dict(target.headers) or None
        res = resource()
        install_quiet_filter()
        self._tracer_provider = TracerProvider(resource=res, shutdown_on_exit=False)
        self._spans_out = GuardedSpans(OTLPSpanExporter(endpoint=target.traces, headers=headers), self.link)
        self._tracer_provider.add_span_processor(BatchSpanProcessor(self._spans_out))
        self._tracer = self._tracer_provider.get_tracer(SCOPE, __version__)
        # OTEL_METRICS_EXPORTER=none (the SDK's switch) sends spans only
        self._metrics_out = GuardedMetrics(OTLPMetricExporter(endpoint=target.metrics, headers=headers),
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
        quiet.on = True  # the SDK's "queue is full" log: tokenspy counts and reports those
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
        start, end = times(rec)
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
            quiet.on = True
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
