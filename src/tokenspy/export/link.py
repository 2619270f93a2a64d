"""tokenspy's exporters and the collector: whether it is there, what it took and lost, one
warning when it is not, and none of the OTLP exporter's retry logs.

A collector that cannot be reached costs one warning: exports then fail at once for a back-off
(5 s doubling to a minute) instead of retrying for the OTLP timeout each, and what could not be
sent is counted (the live exporter prints the count when it closes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

try:
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
except ImportError as exc:  # one line naming the extra, not a traceback into a missing package
    from tokenspy.export import missing

    raise missing(exc) from exc

from tokenspy.errors import TokenspyWarning

BACKOFF_MIN, BACKOFF_MAX = 5.0, 60.0  # seconds exports fail at once after a failed one

quiet = threading.local()


class QuietOnOurThreads(logging.Filter):
    """The OTLP exporters log every failed batch and retry; tokenspy says it once instead. Only
    records logged on a thread that is exporting tokenspy's data are dropped: an app's own OTel
    pipeline, on its own threads, keeps its logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(quiet, "on", False):
            return True
        if record.levelno >= logging.WARNING and not getattr(quiet, "last", None):
            try:  # the exporter's first word on a failure (the cause; later ones say it gave up)
                quiet.last = record.getMessage()[:300]
            except Exception:
                pass
        return False


_filter_installed = False


def install_quiet_filter() -> None:
    global _filter_installed
    if _filter_installed:
        return
    _filter_installed = True
    keep_back = QuietOnOurThreads()
    # a logger's filters see only its own records: every OTel logger there is once they are imported
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("opentelemetry") and isinstance(logger, logging.Logger):
            logger.addFilter(keep_back)


class Once:
    """The one warning of an exporter, whichever of its signals fails first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.given = False

    def take(self) -> bool:
        with self.lock:
            first, self.given = not self.given, True
            return first


class Link:
    """What one signal's exporter learned about the collector: spans sent and lost, whether it
    failed lately (then batches fail at once, without a network attempt, for a back-off that
    doubles to a minute). Traces and metrics have one each: a backend that takes only traces
    (Phoenix, Tempo) must not hold the spans back."""

    def __init__(self, where: str, once: Once) -> None:
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


def quietly(call: Callable[[], Any]) -> tuple[Any, str]:
    """(what ``call`` returned, or False if it raised; the reason the exporter logged, if any),
    its logs kept back (see QuietOnOurThreads)."""
    was = getattr(quiet, "on", False)
    quiet.on, quiet.last = True, None
    try:
        result = call()
    except Exception as exc:
        result, quiet.last = False, f"{type(exc).__name__}: {exc}"
    finally:
        quiet.on = was
    return result, quiet.last or ""


class GuardedSpans(SpanExporter):
    def __init__(self, inner: SpanExporter, link: Link) -> None:
        self.inner = inner
        self.link = link

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.link.skip():
            self.link.skipped(len(spans))
            return SpanExportResult.FAILURE
        ok, reason = quietly(lambda: self.inner.export(spans) == SpanExportResult.SUCCESS)
        self.link.done(len(spans), ok, reason)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        quietly(self.inner.shutdown)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class GuardedMetrics(MetricExporter):
    def __init__(self, inner: MetricExporter, link: Link) -> None:
        super().__init__(preferred_temporality=inner._preferred_temporality,
                         preferred_aggregation=inner._preferred_aggregation)
        self.inner = inner
        self.link = link

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        if self.link.skip():
            return MetricExportResult.FAILURE
        ok, reason = quietly(lambda: self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
                              == MetricExportResult.SUCCESS)
        self.link.done(0, ok, reason)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        quietly(lambda: self.inner.shutdown(timeout_millis=timeout_millis, **kwargs))
