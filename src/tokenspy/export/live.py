"""The one live OTLP exporter of the process: started by ``tokenspy.init(otlp=...)`` or the
pytest plugin, registered as a sink of the recorder, stopped (flushed, losses reported) by them
or at exit."""

from __future__ import annotations

import threading
from typing import Any

from tokenspy import sinks
from tokenspy.export import require_otel

_lock = threading.Lock()
_live: Any = None  # the tokenspy.export.otlp.LiveExporter registered as a sink, if any


def resolve(otlp: bool | str | None, what: str = "tokenspy.init(otlp=...)") -> Any:
    """The collector ``otlp`` names (a ``tokenspy.export.otlp.Target``), or None for no export.
    True: endpoint and headers from the ``OTEL_EXPORTER_OTLP_*`` variables; a string: the
    collector's base URL (``http://host:4318``). Raises TypeError/ValueError for a bad value and
    MissingExtra without the packages; changes nothing."""
    if otlp is None or otlp is False:
        return None
    if not (otlp is True or isinstance(otlp, str)):
        raise TypeError(f"otlp must be True, False or an endpoint URL, not {otlp!r}")
    require_otel(what)
    from tokenspy.export import otlp as otel

    return otel.Target.resolve(otlp)


def configure(target: Any) -> Any:
    """Send every recorded call to ``target`` from now on (None: stop exporting). The same
    target again keeps the running exporter. Returns the exporter."""
    global _live
    if target is None:
        stop()
        return None
    from tokenspy.export.sink import LiveExporter

    with _lock:
        if _live is not None and _live.target == target:
            return _live
        old, _live = _live, LiveExporter(target)
        sinks.add(_live)
        new = _live
    if old is not None:
        sinks.remove(old)
        old.close()
    return new


def stop() -> None:
    """Stop live export: flush what is queued (bounded in time) and say what was lost."""
    global _live
    with _lock:
        old, _live = _live, None
    if old is not None:
        sinks.remove(old)
        old.close()


def current() -> Any:
    """The running live exporter, or None."""
    return _live
