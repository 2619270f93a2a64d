"""The writer's timer writes whole statements and keeps the rest for the next tick; explicit
flushes (stats, reset, exit) and a quiet queue write everything."""

from __future__ import annotations

import sqlite3
import time

from tokenspy import store
from tokenspy.record import CallRecord


def rec(i: int) -> CallRecord:
    return CallRecord(f"f{i}", "gpt-4o", "openai", 10, 5, 0.001, 1.0, time.time(), call_stack=[f"f{i}"])


def rows(db) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT function_name FROM llm_calls ORDER BY id")]


def quiet_store(path, queued: int) -> store.Store:
    """A Store with ``queued`` records waiting, whose writer thread never ticks on its own: the
    ticks are driven by the test."""
    s = store.Store(path)
    s.interval = 1e9
    s.wake_at = 10**9
    for i in range(queued):
        s.add(rec(i))
    return s


def tick(s: store.Store) -> None:
    s._flush(final=False, periodic=True)  # what the writer thread's timer runs


def test_timer_writes_whole_statements_in_order_and_the_rest_next_tick(tmp_path):
    s = quiet_store(tmp_path / "u.db", 1500)
    tick(s)
    assert len(rows(s.path)) == 1024 + 256  # 1500 = 1024 + 476: one full statement, one of 256
    assert len(s._queue) == 220
    for i in range(1500, 1600):
        s.add(rec(i))
    tick(s)  # 320 queued: the largest power of two of them
    assert len(rows(s.path)) == 1024 + 256 + 256
    tick(s)  # nothing new since: the app went quiet, all of it goes
    assert rows(s.path) == [f"f{i}" for i in range(1600)]
    assert not s._queue
    s.close()


def test_explicit_flush_writes_everything(tmp_path):
    s = quiet_store(tmp_path / "u.db", 1000)
    s.flush()
    assert rows(s.path) == [f"f{i}" for i in range(1000)]
    s.close()


def test_a_batch_of_one_statement_is_committed(tmp_path):
    s = quiet_store(tmp_path / "u.db", 512)
    tick(s)
    assert not s._conn.in_transaction  # type: ignore[union-attr]
    other = sqlite3.connect(s.path)  # another connection sees the rows: committed
    assert other.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] == 512
    other.close()
    s.close()


def test_close_ends_the_writer_thread_and_a_store_used_again_starts_one(tmp_path):
    """Each init() closes the last Store: its thread must not go on waking every tick forever."""
    s = store.Store(tmp_path / "u.db")
    s.add(rec(0))
    first = s._thread
    assert first is not None and first.is_alive()
    s.close()
    assert not first.is_alive()
    assert rows(tmp_path / "u.db") == ["f0"]
    s.add(rec(1))  # used again: a new writer, and nothing lost
    second = s._thread
    assert second is not None and second is not first and second.is_alive()
    s.close()
    assert not second.is_alive()
    assert rows(tmp_path / "u.db") == ["f0", "f1"]
