"""Recorded calls are kept as rows that the garbage collector leaves alone, and read back as
CallRecords; the writer inserts those rows as they are, each with a uid unique to its process."""

from __future__ import annotations

import gc
import os
import sqlite3
import time
from pathlib import Path

import pytest

import tokenspy
from tokenspy import store
from tokenspy.record import CallRecord
from tokenspy.tracker import Tracker

MSG = [{"role": "user", "content": "hi"}]


def tracked_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


@pytest.mark.parametrize("persist", [False, True])
def test_recorded_calls_do_not_grow_what_the_garbage_collector_traverses(persist, fresh_tracker, active,
                                                                       tmp_path):
    # A long-running app keeps every record in memory; each full collection walks every tracked
    # object, so records that stay tracked make every collection of the app slower.
    if persist:
        fresh_tracker.set_persist_path(tmp_path / "usage.db")
    from wire import Wire, openai_clients

    client = openai_clients(Wire(keep=False))[0]
    client.chat.completions.create(model="gpt-4o", messages=MSG)  # caches warm
    before = tracked_objects()
    for _ in range(2000):
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert fresh_tracker.total_calls() == 2001  # books the calls still deferred (test_deferred)
    grown = tracked_objects() - before
    assert grown < 100, f"{grown} more GC-tracked objects after 2,000 recorded calls"
    fresh_tracker.flush()
    if persist:
        with sqlite3.connect(tmp_path / "usage.db") as conn:
            assert conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] == 2001


def test_records_read_back_as_call_records_with_every_field(fresh_tracker, oai, active):
    @tokenspy.profile
    def outer():
        return inner()

    @tokenspy.profile
    def inner():
        return oai[0].chat.completions.create(model="gpt-4o", messages=MSG)

    with tokenspy.session("s") as s:
        outer()
        oai[0].chat.completions.create(model="no-such-model-xyz", messages=MSG)
    first, second = fresh_tracker.records()
    assert isinstance(first, CallRecord) and isinstance(second, CallRecord)
    assert first.call_stack == [outer.__qualname__, inner.__qualname__]
    assert first.function_name == inner.__qualname__
    assert first.priced is True and second.priced is False and second.cost_usd == 0.0
    assert first.session_id == "s" and first.input_tokens > 0 and first.cost_usd > 0
    assert second.call_stack == [second.function_name] and second.function_name.endswith(
        "test_records_read_back_as_call_records_with_every_field")
    assert s.records() == [first, second]
    assert s.cost == fresh_tracker.total_cost() == first.cost_usd
    assert s.tokens == fresh_tracker.total_tokens() == sum(r.total_tokens for r in (first, second))
    # every read is a snapshot: changing one does not change what the tracker holds
    first.cost_usd = 99.0
    assert fresh_tracker.records()[0].cost_usd != 99.0
    stats = tokenspy.stats()
    assert stats["calls"][0]["call_stack"] == [outer.__qualname__, inner.__qualname__]
    assert stats["calls"][1]["priced"] is False


def test_a_record_given_to_the_tracker_is_kept_as_it_is(tmp_path):
    t = Tracker(tmp_path / "u.db")
    rec = CallRecord("f", "gpt-4o", "openai", 10, 5, 0.25, 1.0, time.time(), call_stack=["a", "f"],
                     priced=False, test_id="t::x", source_file="app.py", source_line=3)
    t.record(rec)
    assert t.records()[0] is rec and t.total_cost() == 0.25 and t.total_tokens() == 15
    assert t.load_from_db() == [rec]  # through the writer and back, every field equal
    t.close()


def uids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT call_uid FROM llm_calls ORDER BY id")]


def rec(i: int) -> CallRecord:
    return CallRecord(f"f{i}", "gpt-4o", "openai", 10, 5, 0.001, 1.0, 1.0, call_stack=[f"f{i}"])


def test_uids_are_unique_across_statements_stores_and_forks(tmp_path):
    db = tmp_path / "u.db"
    store.write_records(db, [rec(i) for i in range(1500)])  # statements of 1,024, 256, 128, ...
    s = store.Store(db)
    for i in range(300):
        s.add(rec(i))
    s.close()
    if hasattr(os, "fork"):
        pid = os.fork()
        if pid == 0:  # the child is a new process: its own prefix
            try:
                store.write_records(db, [rec(i) for i in range(10)])
            finally:
                os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
    got = uids(db)
    assert len(got) == 1800 + (10 if hasattr(os, "fork") else 0)
    assert len(set(got)) == len(got)
    prefixes = {u.rsplit("-", 1)[0] for u in got}
    assert len(prefixes) == (2 if hasattr(os, "fork") else 1)
    ours = [int(u.rsplit("-", 1)[1]) for u in got[:1800]]
    assert ours == sorted(ours)  # in the order they were written
