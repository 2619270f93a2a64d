"""The module-level functions of the seed API: init, stats, reset, report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from tokenspy import usage_source
from tokenspy.config import config
from tokenspy.tracker import DEFAULT_WINDOW, get_global_tracker

DEFAULT_DIR = "~/.tokenspy"


def init(persist: bool = False, persist_dir: str | os.PathLike[str] | None = None,
         track_git: bool = False, window: int = DEFAULT_WINDOW, usage: str = "response",
         otlp: bool | str = False) -> None:
    """Configure tokenspy. May be called again: later calls go to the newly configured store.

    ``window``: with ``persist``, how many recent calls stay in memory (``stats()["calls"]``);
    totals always count every call, and older calls are read back from the DB on demand.
    ``usage``: ``"response"`` prices the usage each response reports; ``"request"`` prices what
    each request asks for, counted with the provider's tokenizer (for test suites that mock the
    LLM: see tokenspy.usage_source).
    ``otlp``: send every call to an OpenTelemetry collector as a span (GenAI semantic
    conventions) and metrics, over OTLP/HTTP from a background thread: True takes the endpoint
    and headers from the ``OTEL_EXPORTER_OTLP_*`` variables (default http://localhost:4318), a
    string is the collector's URL (``"http://host:4318"``). Needs ``pip install 'tokenspy[otel]'``
    (ImportError otherwise); False stops an export started before."""
    usage_source.check(usage)  # checked first: a bad value changes nothing
    from tokenspy.export import live

    target = live.resolve(otlp)  # a bad value or missing packages raise before anything changes
    tracker = get_global_tracker()
    tracker.set_window(window)
    if usage == usage_source.REQUEST:
        usage_source.reload()
        usage_source.deployments()  # a malformed [tool.tokenspy.deployments] is an error now
    config.usage = usage
    config.track_git = bool(track_git)
    if persist:
        path = Path(persist_dir or DEFAULT_DIR).expanduser() / "usage.db"
        if tracker.persist_path != path:
            tracker.set_persist_path(path)
    elif tracker.persist_path is not None:
        tracker.set_persist_path(None)
    live.configure(target)
    from tokenspy.interceptor import ensure_active

    ensure_active()  # init() means "record": the SDKs are patched from now on


def stats() -> dict[str, Any]:
    """The full cost breakdown of the global tracker (schema of the docs' Programmatic Access).

    The totals count every call since the last ``reset()``. ``calls`` lists them all unless
    persistence is on and there were more than the window (``init(window=...)``, default
    10,000): then it lists the most recent ``window`` calls and ``calls_complete`` is False;
    ``get_global_tracker().records()`` reads every call back from the DB."""
    return get_global_tracker().summary()


def flush() -> None:
    """Write every call recorded so far to the DB now (with persistence; otherwise a no-op).

    Calls are written by a background thread about once a second and at normal interpreter exit.
    Call this before an exit that skips both: ``os._exit`` (a forked child's usual end), a
    process killed by a signal, or a daemon thread still making calls at exit."""
    from tokenspy.store import flush_all

    get_global_tracker().flush()
    flush_all()


def reset() -> None:
    """Clear the in-memory records of the global tracker (the SQLite DB keeps its rows)."""
    get_global_tracker().reset()


def report(format: Literal["text", "html"] = "text", output: str | os.PathLike[str] | None = None) -> str:
    """Render the report of the global tracker.

    ``text`` is printed and returned; ``html`` is written to ``output`` (default
    ``tokenspy_report.html``) and its path returned.
    """
    tracker = get_global_tracker()
    tracker.flush()
    records = tracker.records()
    if format == "text":
        from tokenspy.reporting.text import render_text

        text = render_text(records)
        print(text)
        return text
    if format == "html":
        from tokenspy.reporting.html import render_html

        path = Path(output or "tokenspy_report.html")
        path.write_text(render_html(records), encoding="utf-8")
        return str(path)
    raise ValueError(f"format must be 'text' or 'html', not {format!r}")
