"""Tracker: the in-memory accumulator of CallRecords, optionally persisted to SQLite."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tokenspy import context
from tokenspy import record as _rows
from tokenspy.record import CallRecord
from tokenspy.store import Store, load_records

STATS_CALL_FIELDS = (
    "function_name", "model", "provider", "input_tokens", "output_tokens", "cost_usd",
    "duration_ms", "timestamp", "session_id", "git_commit",
)


def _sorted_desc(d: dict[str, float]) -> dict[str, float]:
    return dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))


def summarize(records: Iterable[CallRecord]) -> dict[str, Any]:
    """The ``stats()`` schema of seed 001, plus the extra CallRecord fields in each call dict."""
    recs = list(records)
    by_function: dict[str, float] = {}
    by_model: dict[str, float] = {}
    cost = 0.0
    tokens = 0
    for r in recs:
        cost += r.cost_usd
        tokens += r.input_tokens + r.output_tokens
        by_function[r.function_name] = by_function.get(r.function_name, 0.0) + r.cost_usd
        by_model[r.model] = by_model.get(r.model, 0.0) + r.cost_usd
    calls = []
    for r in recs:
        d = r.to_dict()
        ordered = {k: d[k] for k in STATS_CALL_FIELDS}
        ordered.update((k, v) for k, v in d.items() if k not in ordered)
        calls.append(ordered)
    return {
        "total_cost_usd": cost,
        "total_tokens": tokens,
        "total_calls": len(recs),
        "by_function": _sorted_desc(by_function),
        "by_model": _sorted_desc(by_model),
        "calls": calls,
    }


# A list, or where tokenspy._speedups is built its Rows: a list of rows that keeps the common row
# as its values in one array rather than as Python objects (see there why).
_new_rows: Callable[[], Any] = getattr(context.speedups, "Rows", list)


class Tracker:
    """Low-level accumulator for CallRecord objects."""

    def __init__(self, persist_path: Path | str | None = None) -> None:
        # rows (tokenspy.record) from the recorder, CallRecords given to record(): see as_records
        self._records: list[Any] = _new_rows()
        self._lock = threading.Lock()
        self.persist_path: Path | None = Path(persist_path).expanduser() if persist_path else None
        self._store: Store | None = Store(self.persist_path) if self.persist_path else None

    def record(self, rec: CallRecord) -> None:
        # recorder.finish inlines this (and Store.add) for Tracker itself: keep them in step
        self._records.append(rec)  # list.append is atomic under the GIL: no lock on the hot path
        store = self._store
        if store is not None:
            store.add(rec)

    def records(self) -> list[CallRecord]:
        """The calls recorded so far, oldest first. Calls the interceptors recorded are made into
        CallRecords anew on each read (they are kept as compact rows, see tokenspy.record);
        a CallRecord passed to ``record()`` is returned as that object."""
        _rows.settle()
        return _rows.as_records(self._records)

    def reset(self) -> None:
        """Forget the in-memory records (the SQLite file keeps its rows)."""
        self.flush()
        with self._lock:
            self._records = _new_rows()
            _rows.targets_changed()

    def flush(self) -> None:
        _rows.settle()
        if self._store is not None:
            self._store.flush()

    def close(self) -> None:
        if self._store is not None:  # Store.close books deferred calls first
            self._store.close()

    def set_persist_path(self, path: Path | str | None) -> None:
        """Send later records to another DB (or none); earlier ones stay where they went."""
        _rows.settle()
        with self._lock:
            old = self._store
            self.persist_path = Path(path).expanduser() if path else None
            self._store = Store(self.persist_path) if self.persist_path else None
            _rows.targets_changed()
        if old is not None:
            old.close()

    def total_cost(self) -> float:
        _rows.settle()
        return _rows.total_cost(self._records)

    def total_tokens(self) -> int:
        _rows.settle()
        return _rows.total_tokens(self._records)

    def total_calls(self) -> int:
        _rows.settle()
        return len(self._records)

    def cost_by_function(self) -> dict[str, float]:
        return summarize(self.records())["by_function"]

    def cost_by_model(self) -> dict[str, float]:
        return summarize(self.records())["by_model"]

    def summary(self) -> dict[str, Any]:
        self.flush()
        return summarize(self.records())

    def load_from_db(self) -> list[CallRecord]:
        """Every record stored in this tracker's DB (read-only; [] when there is no DB yet)."""
        if self.persist_path is None:
            return []
        self.flush()
        if not self.persist_path.exists():
            return []
        return load_records(self.persist_path)


_global_lock = threading.Lock()
_global: Tracker | None = None
# Called before the global tracker changes (the recorder books what it deferred to the old one).
on_change: list[Callable[[], None]] = []


def get_global_tracker() -> Tracker:
    global _global
    tracker = _global
    if tracker is None:
        with _global_lock:
            if _global is None:
                _global = Tracker()
            tracker = _global
    return tracker


def set_global_tracker(tracker: Tracker) -> None:
    global _global
    for hook in on_change:
        hook()
    with _global_lock:
        _global = tracker
