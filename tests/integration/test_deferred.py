"""Plain calls are booked later, in batches (tokenspy.recorder.settle): every read still sees
every finished call, in call order, with the fields and costs an immediate booking gives.

These tests make their calls in a fresh ``contextvars.Context``, as an application's threads and
tasks do, so that nothing of the test's own context (e.g. the collector the pytest plugin adds
when it records a test run, which makes every call booked at once) decides the path taken."""

from __future__ import annotations

import contextvars
import gc
import os
import sqlite3
import threading
from collections import deque

import pytest

import tokenspy
from tokenspy import interceptor, pricing, record, recorder
from tokenspy.tracker import Tracker, set_global_tracker

MSG = [{"role": "user", "content": "hi"}]


def outside_tests(fn, *args):
    """Run ``fn`` in a fresh context: no pytest collector, no session, no profiled function."""
    return contextvars.Context().run(fn, *args)


def app_calls(client, n: int, model: str = "gpt-4o") -> None:
    for _ in range(n):
        client.chat.completions.create(model=model, messages=MSG)


@pytest.fixture
def client(active):
    from wire import Wire, openai_clients

    return openai_clients(Wire(keep=False))[0]


class CountingDeque(deque):
    appended = 0

    def append(self, item):
        self.appended += 1
        super().append(item)


@pytest.fixture
def counted(monkeypatch, active):
    """record.pending, counting the calls deferred (a writer thread may book them at any time)."""
    pending = CountingDeque()
    monkeypatch.setattr(record, "pending", pending)
    monkeypatch.setattr(recorder, "_pending", pending)
    # the deferral is what these tests are about: the C request never books at once here (else a
    # batch booked by any writer thread's tick would make it, test_book_at_once.py)
    monkeypatch.setattr(recorder, "_publish", lambda *args: None)
    monkeypatch.setattr(recorder, "_c_book", None)
    # the patches take the deque when they are made (interceptor.openai_plain): made again
    interceptor.deactivate()
    interceptor.activate()
    yield pending
    interceptor.deactivate()
    monkeypatch.undo()
    interceptor.activate()


def test_plain_calls_are_deferred_and_every_read_sees_them(fresh_tracker, client, counted):
    outside_tests(app_calls, client, 3)
    fresh_tracker.reset()
    outside_tests(app_calls, client, 10)
    assert counted.appended >= 10, "the deferred path was not taken"
    records = fresh_tracker.records()
    assert not record.pending
    assert len(records) == 10
    r = records[0]
    expected = pricing.calculate(r.model, r.input_tokens, r.output_tokens, cached_input_tokens=r.cached_input_tokens,
                                 cache_write_tokens=r.cache_write_tokens, reasoning_tokens=r.reasoning_tokens)
    assert expected > 0
    assert all(r.cost_usd == expected and r.priced for r in records)  # the same float as calculate()
    assert [r.timestamp for r in records] == sorted(r.timestamp for r in records)
    assert all(r.function_name == "test_deferred.app_calls" for r in records)
    assert all(r.session_id is None and r.test_id is None and r.git_commit is None for r in records)
    assert all(r.duration_ms > 0 for r in records)
    # the same through every other read
    outside_tests(app_calls, client, 3)
    assert fresh_tracker.total_calls() == 13
    outside_tests(app_calls, client, 3)
    assert fresh_tracker.total_cost() == pytest.approx(16 * expected)
    outside_tests(app_calls, client, 3)
    assert tokenspy.stats()["total_calls"] == 19


def test_eager_calls_keep_the_call_order_of_deferred_ones(fresh_tracker, client):
    def mixed():
        app_calls(client, 5)
        app_calls(client, 1, model="gpt-4o-mini")  # another model: booked at once
        app_calls(client, 5)

    outside_tests(mixed)
    models = [r.model for r in fresh_tracker.records()]
    assert models == ["gpt-4o"] * 5 + ["gpt-4o-mini"] + ["gpt-4o"] * 5


def test_a_session_sees_its_deferred_calls(fresh_tracker, client):
    def in_session():
        app_calls(client, 1)
        with tokenspy.session("batch") as s:
            app_calls(client, 7)
        return s

    s = outside_tests(in_session)
    assert s.calls == 7
    assert s.cost == pytest.approx(sum(r.cost_usd for r in fresh_tracker.records()[1:]))
    assert {r.session_id for r in s.records()} == {"batch"}


def test_deferred_calls_stay_with_the_tracker_they_were_made_under(fresh_tracker, client):
    outside_tests(app_calls, client, 4)
    other = Tracker()
    set_global_tracker(other)
    outside_tests(app_calls, client, 2)
    assert fresh_tracker.total_calls() == 4
    assert other.total_calls() == 2


def test_deferred_calls_reach_the_db(fresh_tracker, client, tmp_path):
    db = tmp_path / "usage.db"
    fresh_tracker.set_persist_path(db)
    outside_tests(app_calls, client, 300)  # past one batch
    outside_tests(app_calls, client, 5)
    fresh_tracker.flush()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT session_id, git_commit, test_id, project, priced, cost_usd "
                            "FROM llm_calls").fetchall()
    assert len(rows) == 305
    # the int 0 a row holds for a missing text value is stored as NULL
    assert {r[:5] for r in rows} == {(None, None, None, None, 1)}
    assert sum(r[5] for r in rows) == pytest.approx(fresh_tracker.total_cost())


def test_calls_from_many_threads_are_all_booked_once(fresh_tracker, client, tmp_path):
    db = tmp_path / "usage.db"
    fresh_tracker.set_persist_path(db)
    threads = [threading.Thread(target=app_calls, args=(client, 150)) for _ in range(8)]
    for t in threads:
        t.start()  # a thread starts with an empty context, as in an app
    for t in threads:
        t.join()
    assert fresh_tracker.total_calls() == 1200
    fresh_tracker.flush()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(DISTINCT call_uid) FROM llm_calls").fetchone()[0] == 1200


def test_a_budget_is_charged_at_once(fresh_tracker, client):
    @tokenspy.profile(budget_usd=1e-9, on_exceeded="raise")
    def spend():
        app_calls(client, 1)

    def run():
        app_calls(client, 3)  # deferred
        spend()

    with pytest.raises(tokenspy.BudgetExceededError):
        outside_tests(run)
    assert fresh_tracker.total_calls() == 4


def test_pending_calls_hold_no_more_objects_than_one_batch(fresh_tracker, client):
    outside_tests(app_calls, client, 5)
    fresh_tracker.total_calls()
    gc.collect()
    before = len(gc.get_objects())
    outside_tests(app_calls, client, 2000)
    gc.collect()
    pending = len(record.pending)  # a writer thread of another test's Store may book them
    assert pending < recorder.SETTLE_AT
    # a pending call is its Pending and its Usage; once booked, a row the collector ignores
    assert len(gc.get_objects()) - before < 2 * pending + 100
    assert fresh_tracker.total_calls() == 2005
    gc.collect()
    assert len(gc.get_objects()) - before < 100


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_calls_deferred_before_a_fork_are_booked_by_the_parent_only(fresh_tracker, client, counted):
    outside_tests(app_calls, client, 6)
    assert counted.appended >= 5
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what it inherited is booked already
        try:
            os.write(write, str(len(record.pending)).encode() + b" " + str(fresh_tracker.total_calls()).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    got = os.read(read, 100).decode().split()
    os.close(read)
    assert got == ["0", "6"]
    assert fresh_tracker.total_calls() == 6
