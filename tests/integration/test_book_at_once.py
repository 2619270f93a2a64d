"""Where tokenspy._speedups is built (CPython 3.11), the C request books a plain call at once
once a batch has been booked (tokenspy.recorder._publish), instead of deferring it: the same
rows as deferred calls get, in call order, in the tracker and in the DB, and never into a list
or store the tracker has since replaced or closed.

Calls run in a fresh ``contextvars.Context``, as an application's do (see test_deferred.py)."""

from __future__ import annotations

import contextvars
import dataclasses
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_deferred import CountingDeque

from tokenspy import context, interceptor, record, recorder
from tokenspy.tracker import Tracker, get_global_tracker, set_global_tracker

pytestmark = pytest.mark.skipif(not hasattr(context.speedups, "PlainRequest"),
                                reason="the C request is built for CPython 3.11 only")

MSG = [{"role": "user", "content": "hi"}]
TESTS = Path(__file__).resolve().parents[1]
VARYING = ("timestamp", "duration_ms")  # the rest of a call's record is the same for every call here


@pytest.fixture
def pending(monkeypatch, active):
    """record.pending, counting the calls deferred; the patches take it when they are made."""
    q = CountingDeque()
    monkeypatch.setattr(record, "pending", q)
    monkeypatch.setattr(recorder, "_pending", q)
    # only this test's thread books what is pending: the timer of a writer thread another test
    # left running would book a batch (and so publish) at a moment these tests do not choose
    settler = record.settler

    def settle_here() -> None:
        if threading.current_thread() is threading.main_thread() and settler is not None:
            settler()

    monkeypatch.setattr(record, "settler", settle_here)
    interceptor.deactivate()
    interceptor.activate()
    yield q
    interceptor.deactivate()
    interceptor.activate()


@pytest.fixture
def client(active):
    from wire import Wire, openai_clients

    return openai_clients(Wire(keep=False))[0]


@contextmanager
def global_tracker(path: Path | None = None):
    """A new global Tracker (persisting to ``path``) for the block; the previous one after it."""
    before = get_global_tracker()
    tracker = Tracker(persist_path=path)
    set_global_tracker(tracker)
    try:
        yield tracker
    finally:
        tracker.close()
        set_global_tracker(before)


def calls(client, n: int, model: str = "gpt-4o") -> None:
    def run():
        for _ in range(n):
            client.chat.completions.create(model=model, messages=MSG)

    contextvars.Context().run(run)


def same_call(a, b) -> bool:
    return {k: v for k, v in dataclasses.asdict(a).items() if k not in VARYING} == \
        {k: v for k, v in dataclasses.asdict(b).items() if k not in VARYING}


def db_rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT model, input_tokens, cost_usd, timestamp FROM llm_calls ORDER BY rowid").fetchall()


def test_calls_after_a_batch_are_booked_at_once_as_deferred_ones_are(client, pending, tmp_path):
    with global_tracker(tmp_path / "u.db") as tracker:
        start = time.time()
        calls(client, recorder.SETTLE_AT + 1)  # the first at once (a new tracker), a batch deferred
        assert pending.appended == recorder.SETTLE_AT and not pending
        assert recorder._c_book is not None and recorder._c_book[0] is tracker._records
        calls(client, 40)
        end = time.time()
        assert pending.appended == recorder.SETTLE_AT and not pending  # none of the 40 waited
        records = tracker.records()
        assert len(records) == recorder.SETTLE_AT + 41
        first, deferred, at_once = records[0], records[1], records[-1]
        assert same_call(deferred, first) and same_call(at_once, first)
        assert at_once.cost_usd == first.cost_usd > 0 and at_once.priced and at_once.session_id is None
        stamps = [r.timestamp for r in records]
        assert stamps == sorted(stamps) and start - 0.01 <= stamps[0] and stamps[-1] <= end + 0.01
        assert all(0 <= r.duration_ms < 1000 for r in records)
        tracker.flush()
        assert db_rows(tmp_path / "u.db") == [(r.model, r.input_tokens, r.cost_usd, r.timestamp) for r in records]


def test_reset_and_another_db_get_the_calls_made_after_them(client, pending, tmp_path):
    with global_tracker(tmp_path / "a.db") as tracker:
        calls(client, recorder.SETTLE_AT + 5)
        assert recorder._c_book is not None
        tracker.reset()
        calls(client, 7)
        assert tracker.total_calls() == 7
        calls(client, recorder.SETTLE_AT)  # the read above published the new list: booked at once
        tracker.set_persist_path(tmp_path / "b.db")
        calls(client, 9)
        tracker.flush()
        assert len(db_rows(tmp_path / "a.db")) == recorder.SETTLE_AT + 5 + 7 + recorder.SETTLE_AT
        assert len(db_rows(tmp_path / "b.db")) == 9
        assert tracker.total_calls() == 7 + recorder.SETTLE_AT + 9


def test_calls_after_the_store_closed_start_its_writer_again(client, pending, tmp_path):
    with global_tracker(tmp_path / "u.db") as tracker:
        calls(client, recorder.SETTLE_AT + 3)
        tracker.close()
        assert recorder._c_book is None and tracker._store._thread is None
        calls(client, 5)
        tracker.flush()
        assert len(db_rows(tmp_path / "u.db")) == recorder.SETTLE_AT + 3 + 5
        assert tracker._store._thread is not None  # and later calls go on reaching it


def test_a_long_queue_wakes_the_writer(client, pending, tmp_path):
    with global_tracker(tmp_path / "u.db") as tracker:
        store = tracker._store
        store.interval = 3600.0  # only a wake-up writes
        calls(client, recorder.SETTLE_AT + 1)
        tracker.flush()
        assert recorder._c_book is not None
        written = len(db_rows(tmp_path / "u.db"))
        store.wake_at = 10
        recorder._publish(tracker, store, *recorder._c_book[5:8], recorder._last_price[4]._flat)
        calls(client, 12)  # the tenth queued row wakes it
        deadline = time.monotonic() + 10
        while len(db_rows(tmp_path / "u.db")) == written and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(db_rows(tmp_path / "u.db")) > written  # without a flush or the timer


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_books_into_its_own_queue(client, pending, tmp_path):
    db = tmp_path / "u.db"
    with global_tracker(db) as tracker:
        calls(client, recorder.SETTLE_AT + 2)
        assert recorder._c_book is not None
        pid = os.fork()
        if pid == 0:  # the child: its calls must reach the DB through its own writer
            code = 1
            try:
                assert recorder._c_book is None
                calls(client, 6)
                tracker.close()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        tracker.flush()
        assert len(db_rows(db)) == recorder.SETTLE_AT + 2 + 6


def test_a_fresh_process_books_its_first_batch_the_fast_way(tmp_path):
    # the first price lookup of a process loads [tool.tokenspy.prices] (a new generation): the
    # price it returns must be the one the batch then reuses, or no batch is ever booked fast
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import tokenspy
        from tokenspy import pricing, recorder
        from tokenspy.tracker import get_global_tracker
        from wire import Wire, openai_clients
        tokenspy.init(persist=True, persist_dir={str(tmp_path)!r})
        client = openai_clients(Wire(keep=False))[0]
        for _ in range(recorder.SETTLE_AT + 20):
            client.chat.completions.create(model="gpt-4o", messages=[{{"role": "user", "content": "hi"}}])
        print(recorder._last_price[0] == pricing.generation, recorder._c_book is not None,
              len(recorder._pending), get_global_tracker().total_calls())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "TOKENSPY_PURE_PYTHON": ""}).stdout.split()
    assert out == ["True", "True", "0", str(recorder.SETTLE_AT + 20)]


@pytest.mark.parametrize("state", [("not", "a", "state"), tuple(range(10)), None])
def test_a_state_it_cannot_use_defers_the_call_and_loses_nothing(client, pending, state, recwarn):
    with global_tracker() as tracker:
        calls(client, recorder.SETTLE_AT + 1)
        assert recorder._c_book is not None
        recorder._c_book = state
        before = pending.appended
        calls(client, 5)
        assert pending.appended == before + 5  # deferred, as without the C booking
        assert tracker.total_calls() == recorder.SETTLE_AT + 6
        assert not [w for w in recwarn if "tokenspy" in str(w.message)]


def test_a_list_for_rows_gets_the_same_rows_as_tuples(client, pending):
    with global_tracker() as tracker:
        calls(client, recorder.SETTLE_AT + 1)
        tracker._records = rows = list(tracker._records)  # as where the Rows type is not built
        recorder._c_book = (rows, *recorder._c_book[1:])
        calls(client, 3)
        assert len(rows) == recorder.SETTLE_AT + 4 and type(rows[-1]) is tuple
        assert same_call(record.from_row(rows[-1]), record.from_row(rows[0]))
