"""Tracker: the running totals and recent CallRecords of a process, optionally persisted.

Without persistence a Tracker keeps every record (nothing else holds them). With persistence it
keeps running totals of every call and a window of the most recent ``window`` records, so that
a long-running server's memory stays flat; ``records()`` reads the older ones back from the DB.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenspy.record import CallRecord
from tokenspy.store import Store, next_uid

STATS_CALL_FIELDS = (
    "function_name", "model", "provider", "input_tokens", "output_tokens", "cost_usd",
    "duration_ms", "timestamp", "session_id", "git_commit",
)
DEFAULT_WINDOW = 10_000


def _sorted_desc(d: dict[str, float]) -> dict[str, float]:
    return dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))


class Totals:
    """Cost, tokens and calls of every record added, in all and by function, model, session
    and test."""

    def __init__(self) -> None:
        self.cost = 0.0
        self.tokens = 0
        self.calls = 0
        self.by_function: defaultdict[str, float] = defaultdict(float)
        self.by_model: defaultdict[str, float] = defaultdict(float)
        self.by_session: defaultdict[str, float] = defaultdict(float)
        self.by_test: defaultdict[str, float] = defaultdict(float)

    def add(self, r: CallRecord) -> None:
        cost = r.cost_usd
        self.cost += cost
        self.tokens += r.input_tokens + r.output_tokens
        self.calls += 1
        self.by_function[r.function_name] += cost
        self.by_model[r.model] += cost
        if r.session_id is not None:
            self.by_session[r.session_id] += cost
        if r.test_id is not None:
            self.by_test[r.test_id] += cost


def _call_dict(r: CallRecord) -> dict[str, Any]:
    d = r.to_dict()
    ordered = {k: d[k] for k in STATS_CALL_FIELDS}
    ordered.update((k, v) for k, v in d.items() if k not in ordered)
    return ordered


def _summary(totals: Totals, calls: Iterable[CallRecord]) -> dict[str, Any]:
    return {
        "total_cost_usd": totals.cost,
        "total_tokens": totals.tokens,
        "total_calls": totals.calls,
        "by_function": _sorted_desc(totals.by_function),
        "by_model": _sorted_desc(totals.by_model),
        "calls": [_call_dict(r) for r in calls],
    }


def summarize(records: Iterable[CallRecord]) -> dict[str, Any]:
    """The ``stats()`` schema of seed 001, plus the extra CallRecord fields in each call dict."""
    recs = list(records)
    totals = Totals()
    for r in recs:
        totals.add(r)
    return _summary(totals, recs)


def _check_window(window: object) -> int:
    if type(window) is not int or window < 1:
        raise ValueError(f"window must be a positive number of records, not {window!r}")
    return window


class Tracker:
    """Low-level accumulator for CallRecord objects.

    ``window``: how many recent records a persisted Tracker keeps in memory (the rest are in
    its DB); a Tracker without persistence keeps them all.
    """

    def __init__(self, persist_path: Path | str | None = None, window: int = DEFAULT_WINDOW) -> None:
        self.window = _check_window(window)
        self._lock = threading.Lock()
        self.persist_path: Path | None = Path(persist_path).expanduser() if persist_path else None
        self._store: Store | None = Store(self.persist_path) if self.persist_path else None
        self._clear()

    def _clear(self) -> None:
        self._records: deque[CallRecord] | list[CallRecord] = (
            deque(maxlen=self.window) if self._store is not None else []
        )
        self._totals = Totals()
        self._first_uid: str | None = None  # the DB row of the first record since reset

    def record(self, rec: CallRecord) -> None:
        with self._lock:
            store = self._store
            if store is not None:
                if self._first_uid is None:
                    self._first_uid = next_uid()
                store.add(rec)
            self._records.append(rec)
            self._totals.add(rec)

    def _evicted(self) -> bool:
        return self._totals.calls > len(self._records)

    def records(self) -> list[CallRecord]:
        """The calls recorded since the last reset, oldest first. Past the window, the older
        ones are read back from the DB (as new CallRecord objects)."""
        with self._lock:
            recent = list(self._records)
            evicted = self._evicted()
            first = self._first_uid
        if not evicted or self._store is None or first is None:
            return recent
        try:
            return self._store.records_since(first)
        except Exception:  # the DB went away: what is still in memory is what there is
            return recent

    def recent(self) -> list[CallRecord]:
        """The records in memory: every one since the last reset, or with persistence the most
        recent ``window`` of them."""
        with self._lock:
            return list(self._records)

    def reset(self) -> None:
        """Forget the in-memory records and totals (the SQLite file keeps its rows)."""
        self.flush()
        with self._lock:
            self._clear()

    def flush(self) -> None:
        if self._store is not None:
            self._store.flush()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def set_persist_path(self, path: Path | str | None) -> None:
        """Send later records to another DB (or none); earlier ones stay where they went."""
        with self._lock:
            old = self._store
            self.persist_path = Path(path).expanduser() if path else None
            self._store = Store(self.persist_path) if self.persist_path else None
            records = self._records
            self._records = deque(records, maxlen=self.window) if self._store is not None else list(records)
            self._first_uid = None
        if old is not None:
            old.close()

    def set_window(self, window: int) -> None:
        """Keep the most recent ``window`` records in memory (with persistence)."""
        window = _check_window(window)
        with self._lock:
            self.window = window
            if self._store is not None:
                self._records = deque(self._records, maxlen=window)

    def total_cost(self) -> float:
        return self._totals.cost

    def total_tokens(self) -> int:
        return self._totals.tokens

    def total_calls(self) -> int:
        return self._totals.calls

    def cost_by_function(self) -> dict[str, float]:
        with self._lock:
            return _sorted_desc(self._totals.by_function)

    def cost_by_model(self) -> dict[str, float]:
        with self._lock:
            return _sorted_desc(self._totals.by_model)

    def cost_by_session(self) -> dict[str, float]:
        with self._lock:
            return _sorted_desc(self._totals.by_session)

    def cost_by_test(self) -> dict[str, float]:
        with self._lock:
            return _sorted_desc(self._totals.by_test)

    def summary(self) -> dict[str, Any]:
        """``stats()``: totals of every call since the last reset; ``calls`` lists the records
        in memory (with persistence, the most recent ``window`` of them)."""
        self.flush()
        with self._lock:
            totals = self._totals
            recent = list(self._records)
            out = _summary(totals, recent)
        out["calls_complete"] = len(recent) == out["total_calls"]
        return out

    def load_from_db(self) -> list[CallRecord]:
        """Every record stored in this tracker's DB ([] when there is no DB yet)."""
        if self.persist_path is None or self._store is None:
            return []
        self.flush()
        if not self.persist_path.exists():
            return []
        return self._store.records_since(None)


_global_lock = threading.Lock()
_global: Tracker | None = None


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
    with _global_lock:
        _global = tracker
