"""Sinks: where each finished CallRecord goes besides the tracker (an OpenTelemetry exporter).

The recorder knows sinks only through this module: at ``begin`` it asks each registered sink to
``capture`` what it needs from the request-time context (the current OTel span, read on the
caller's thread and task, so a stream consumed later elsewhere still nests under the span that
made the request); at ``finish`` it hands the record, that capture and the model the request
named to ``send``. A sink must return quickly and never block: the recorder runs on the user's
call. With no sink registered (the default) the recorder pays one truthiness test per call.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tokenspy.record import CallRecord


class Sink(Protocol):
    def capture(self) -> Any:
        """What this sink needs from the context at request time (on the caller's thread)."""

    def send(self, rec: CallRecord, captured: Any, request_model: str | None) -> None:
        """Take one finished call; must not block (queue it and return)."""


# Read on every call without a lock: replaced whole (a tuple), never mutated.
active: tuple[Sink, ...] = ()
_lock = threading.Lock()


def add(sink: Sink) -> None:
    global active
    with _lock:
        if sink not in active:
            active = (*active, sink)


def remove(sink: Sink) -> None:
    global active
    with _lock:
        active = tuple(s for s in active if s is not sink)


def capture() -> tuple[tuple[Sink, Any], ...]:
    """Each active sink's request-time capture (paired with its sink: the set may change
    before the call finishes). Never raises: a failed capture is None (the span then has no
    parent), and the sink's own error handling reports it."""
    out = []
    for s in active:
        try:
            out.append((s, s.capture()))
        except Exception:
            out.append((s, None))
    return tuple(out)


def send(rec: CallRecord, captured: tuple[tuple[Sink, Any], ...] | None, request_model: str | None) -> None:
    """Hand ``rec`` to every active sink, with what it captured at ``begin`` (None for a sink
    registered while the call was in flight). The first error is raised after every sink had
    the record, so one sink's bug cannot starve another."""
    got = dict(captured) if captured else {}
    error: Exception | None = None
    for sink in active:
        try:
            sink.send(rec, got.get(sink), request_model)
        except Exception as exc:
            error = error or exc
    if error is not None:
        raise error
