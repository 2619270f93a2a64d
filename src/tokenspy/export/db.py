"""Export of a stored DB (``tokenspy export --otlp``): its calls as spans with their original
times, ids derived from each row's ``call_uid`` so that exporting again sends the same spans
(backends that deduplicate count them once). Spans only: a counter sent twice would count twice.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

try:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
except ImportError as exc:  # one line naming the extra, not a traceback into a missing package
    from tokenspy.export import missing

    raise missing(exc) from exc

from tokenspy.export.link import install_quiet_filter, quietly
from tokenspy.export.otlp import SCOPE, Target, resource, span_attributes, span_name, times
from tokenspy.record import CallRecord
from tokenspy.version import __version__

DB_BATCH = 512  # spans a request


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
    start, end = times(rec)
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
        install_quiet_filter()
        exporter = OTLPSpanExporter(endpoint=target.traces, headers=dict(target.headers) or None)
        res, scope = resource(), InstrumentationScope(SCOPE, __version__)
        sent = 0
        pending: list[ReadableSpan] = []

        def ship() -> None:
            nonlocal sent
            ok, reason = quietly(lambda: exporter.export(pending) == SpanExportResult.SUCCESS)
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
            quietly(exporter.shutdown)
        return sent
