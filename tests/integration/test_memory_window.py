"""Bounded memory: with persistence on, the global tracker keeps running totals of every call and
only a window of recent records; older ones are read back from its DB when asked for. Without
persistence it keeps every record (nothing else has them)."""

from __future__ import annotations

import gc
import sqlite3
import threading

import pytest

import tokenspy
from tokenspy.tracker import get_global_tracker

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def persisted(tmp_path):
    yield tmp_path / "usage.db"
    tokenspy.init(persist=False)


def _calls(client, n: int, model: str = "gpt-4o") -> None:
    for _ in range(n):
        client.chat.completions.create(model=model, messages=MSG)


def test_past_the_window_totals_count_every_call_and_records_come_back_from_the_db(persisted, oai):
    tokenspy.init(persist=True, persist_dir=persisted.parent, window=25)
    _calls(oai[0], 60)
    with tokenspy.session("late"):
        _calls(oai[0], 10, model="gpt-4o-mini")
    tracker = get_global_tracker()

    assert len(tracker.recent()) == 25  # the memory bound
    s = tokenspy.stats()
    assert s["total_calls"] == 70
    assert s["calls_complete"] is False
    assert len(s["calls"]) == 25
    # the listed calls are the most recent ones: the session's ten are the last
    assert [c["session_id"] for c in s["calls"][-10:]] == ["late"] * 10
    everything = tracker.records()
    assert len(everything) == 70
    assert s["total_cost_usd"] == pytest.approx(sum(r.cost_usd for r in everything))
    assert s["total_tokens"] == sum(r.total_tokens for r in everything)
    assert s["by_model"].keys() == {r.model for r in everything}
    assert tracker.cost_by_session() == {"late": pytest.approx(sum(r.cost_usd for r in everything[-10:]))}
    # the ones read back are the calls in call order, the recent ones equal to what memory holds
    assert [(r.model, r.session_id) for r in everything[-25:]] == [(r.model, r.session_id) for r in tracker.recent()]


def test_reset_starts_the_records_again_and_the_db_keeps_every_row(persisted, oai):
    tokenspy.init(persist=True, persist_dir=persisted.parent, window=5)
    _calls(oai[0], 12)
    tokenspy.reset()
    _calls(oai[0], 8)
    tracker = get_global_tracker()
    assert tracker.total_calls() == 8
    assert len(tracker.records()) == 8  # not the 12 from before the reset, though the DB has them
    tracker.flush()
    with sqlite3.connect(persisted) as conn:
        assert conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] == 20


def test_within_the_window_stats_lists_every_call(persisted, oai):
    tokenspy.init(persist=True, persist_dir=persisted.parent, window=50)
    _calls(oai[0], 7)
    s = tokenspy.stats()
    assert s["calls_complete"] is True
    assert len(s["calls"]) == s["total_calls"] == 7


def test_without_persistence_every_record_is_kept(oai):
    tokenspy.init(persist=False, window=3)
    _calls(oai[0], 10)
    tracker = get_global_tracker()
    assert len(tracker.recent()) == len(tracker.records()) == 10
    assert len(tokenspy.stats()["calls"]) == 10


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10", None])
def test_a_bad_window_is_refused_and_changes_nothing(bad, persisted):
    with pytest.raises(ValueError, match="window"):
        tokenspy.init(persist=True, persist_dir=persisted.parent, window=bad)
    assert get_global_tracker().persist_path is None


def test_stats_racing_calls_in_six_threads(persisted, oai):
    """Reads of the totals and records while six threads make calls, with the collector
    running at every allocation: no crash, no lost call, totals consistent at the end."""
    tokenspy.init(persist=True, persist_dir=persisted.parent, window=50)
    old = gc.get_threshold()
    gc.set_threshold(1)
    errors: list[BaseException] = []
    done = threading.Event()

    def caller() -> None:
        try:
            _calls(oai[0], 40)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        while not done.is_set():
            try:
                s = tokenspy.stats()
                assert len(s["calls"]) <= 50
                assert s["total_calls"] >= len(s["calls"])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    try:
        threads = [threading.Thread(target=caller) for _ in range(6)]
        watcher = threading.Thread(target=reader)
        watcher.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        watcher.join()
    finally:
        gc.set_threshold(*old)
    assert errors == []
    s = tokenspy.stats()
    assert s["total_calls"] == 240
    assert len(get_global_tracker().records()) == 240
