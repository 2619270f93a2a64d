"""``SQLiteStore``: where track_costs keeps spend, in the core's DB and schema.

Two tables of the same file serve two purposes:

- ``llm_calls``: every call made under ``track_costs``, written by the core's batched background
  writer (``tokenspy.store.Store``), so that reports, history and the CI diff see them. When the
  global tracker already persists to this very file (``tokenspy.init(persist=True)`` with the
  same path) the tracker writes them and this store does not, so no call is stored twice.
- ``budget_spend``: one running total per ``(project, period, window_start)`` for the periods
  ``all``, ``daily``, ``weekly`` and ``monthly``. A budget check reads one row by primary key; a
  call adds its cost to four rows in one ``BEGIN IMMEDIATE`` transaction, which also reads the
  new total back. ``llm_calls`` (which has no index on project or time, for write throughput) is
  never scanned. ``budget_windows`` holds the resets (``tokenspy budget reset``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from tokenspy.record import CallRecord
from tokenspy.store import Store, open_writable, transaction
from tokenspy.toll.windows import ALL, PERIODS, window_start

DEFAULT_DB = "~/.tokenspy/usage.db"  # the core's default (tokenspy.init(persist=True))

_now = time.time  # the wall clock of window computations (replaceable in tests)

_LATEST_RESET = "SELECT MAX(started_at) FROM budget_windows WHERE project = ? AND started_at <= ?"
_GET = (
    "SELECT spent_usd, calls, tokens FROM budget_spend "
    "WHERE project = ? AND period = ? AND window_start = ?"
)
# the current window of each of the 4 periods, in one statement
_GET_ALL = (
    "SELECT period, spent_usd, calls, tokens FROM budget_spend WHERE project = ? AND ("
    + " OR ".join(["(period = ? AND window_start = ?)"] * len(PERIODS)) + ")"
)
_ADD = (
    "INSERT INTO budget_spend (project, period, window_start, spent_usd, calls, tokens, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (project, period, window_start) DO UPDATE SET "
    "spent_usd = spent_usd + excluded.spent_usd, calls = calls + excluded.calls, "
    "tokens = tokens + excluded.tokens, updated_at = excluded.updated_at"
)


class Spend(NamedTuple):
    """What a project spent in one window."""

    project: str
    period: str  # "all", "daily", "weekly" or "monthly"
    window_start: float  # unix seconds
    spent_usd: float = 0.0
    calls: int = 0
    tokens: int = 0


class SQLiteStore:
    """A tokenspy SQLite DB used for track_costs budgets and call logging.

    ``db_path`` defaults to ``~/.tokenspy/usage.db`` (the core's persisted DB). The file is
    created on first write (0600, WAL) and migrated to the current schema; several processes may
    share it. Thread-safe; safe to keep across ``os.fork`` (the child opens its own connection).
    """

    def __init__(self, db_path: str | os.PathLike[str] | None = None, *, timeout: float = 10.0) -> None:
        self.db_path = Path(db_path if db_path is not None else DEFAULT_DB).expanduser()
        self.timeout = float(timeout)
        self._real = os.path.realpath(self.db_path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._writer: Store | None = None
        self._same_cache: tuple[Path | None, bool] = (None, False)
        _live.add(self)

    def __repr__(self) -> str:
        return f"SQLiteStore(db_path={str(self.db_path)!r})"

    # ------------------------------------------------------------------ connection
    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None or self._pid != os.getpid():
                # a connection inherited through fork is never used (nor closed) in the child
                self._conn = self._open()
                self._pid = os.getpid()
            yield self._conn

    def is_open(self) -> bool:
        """Whether this process already has its connection (so that a read will not wait)."""
        return self._conn is not None and self._pid == os.getpid()

    def _open(self) -> sqlite3.Connection:
        # Several processes opening a new DB at once: switching it to WAL can fail with "database
        # is locked" without waiting on the busy timeout. Retry for up to the timeout.
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        while True:
            try:
                return open_writable(self.db_path, self.timeout)
            except sqlite3.OperationalError as exc:
                text = str(exc)
                if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    # ------------------------------------------------------------------ budgets
    def window(self, project: str, reset: str | None = None, at: float | None = None) -> Spend:
        """The spend of ``project`` in the window of period ``reset`` (None: all time) holding
        ``at`` (default now)."""
        period = reset or ALL
        at = _now() if at is None else at
        with self._connection() as conn:
            reset_at = conn.execute(_LATEST_RESET, (project, at)).fetchone()[0]
            start = window_start(period, at, reset_at)
            row = conn.execute(_GET, (project, period, start)).fetchone()
        if row is None:
            return Spend(project, period, start)
        return Spend(project, period, start, row[0], row[1], row[2])

    def add_spend(
        self, project: str, cost_usd: float, tokens: int = 0, *, calls: int = 1,
        at: float | None = None, now: float | None = None,
    ) -> dict[str, Spend]:
        """Add one call's cost to the windows holding ``at`` (the call's time, default now) and
        return the totals of the windows holding ``now`` (default: the clock), per period.

        One ``BEGIN IMMEDIATE`` transaction: concurrent processes queue on the write lock, so
        each sees the others' committed spend and no addition is lost.
        """
        now = _now() if now is None else now
        at = now if at is None else at
        cost = float(cost_usd)
        with self._connection() as conn, transaction(conn):
            reset_now = conn.execute(_LATEST_RESET, (project, now)).fetchone()[0]
            if reset_now is not None and reset_now > at:  # the call began before a reset
                reset_at = conn.execute(_LATEST_RESET, (project, at)).fetchone()[0]
            else:
                reset_at = reset_now
            conn.executemany(_ADD, [
                (project, period, window_start(period, at, reset_at), cost, calls, tokens, now)
                for period in PERIODS
            ])
            starts = {period: window_start(period, now, reset_now) for period in PERIODS}
            found = {
                row[0]: row[1:]
                for row in conn.execute(_GET_ALL, (project, *(x for kv in starts.items() for x in kv)))
            }
        return {
            period: Spend(project, period, start, *found[period]) if period in found
            else Spend(project, period, start)
            for period, start in starts.items()
        }

    def reset_window(self, project: str, at: float | None = None) -> float:
        """Start a new budget window for ``project`` now (or at ``at``); spend history is kept."""
        at = _now() if at is None else float(at)
        with self._connection() as conn, transaction(conn):
            conn.execute("INSERT INTO budget_windows (project, started_at) VALUES (?, ?)", (project, at))
        return at

    # ------------------------------------------------------------------ llm_calls
    def log(self, rec: CallRecord) -> None:
        """Queue one call for ``llm_calls`` (background batched writer)."""
        if self._tracker_writes_here():
            return
        writer = self._writer
        if writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = Store(self.db_path)
                writer = self._writer
        writer.add(rec)

    def _tracker_writes_here(self) -> bool:
        from tokenspy.tracker import get_global_tracker

        path = get_global_tracker().persist_path
        if path is None:
            return False
        cached_path, same = self._same_cache
        if cached_path is not path:
            same = os.path.realpath(path) == self._real
            self._same_cache = (path, same)
        return same

    def flush(self) -> None:
        """Write the queued ``llm_calls`` rows now."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close (the store reopens on next use)."""
        if self._writer is not None:
            self._writer.close()
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                try:
                    self._conn.close()
                except sqlite3.Error:
                    pass
            self._conn = None


_live: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # another thread may have held a store's lock at the fork: the child gets fresh ones (its
    # connection is reopened on first use; tokenspy.store resets the llm_calls writers)
    for store in list(_live):
        store._lock = threading.Lock()
        store._conn = None
        store._pid = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
