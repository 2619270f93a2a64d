"""The batch booking in C (tokenspy._speedups.book_plain) books a deferred call exactly as the
Python loop of tokenspy.recorder._settle does: the same rows (same values, types and float bits),
in call order, whatever the mix of entries it can and cannot take."""

from __future__ import annotations

import contextvars
import gc
import sqlite3
import struct
from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenspy import context, interceptor, record, recorder
from tokenspy.store import Store

pytestmark = pytest.mark.skipif(recorder._c_book_plain is None, reason="tokenspy._speedups not built")

MSG = [{"role": "user", "content": "hi"}]
USERS = [
    None,
    ("app.main", "/srv/app.py", 12, '["app.main"]'),
    ("app.other", None, None, '["app.other"]'),
    ("weird|name\n", "/srv/x.py", 1, '["weird|name\\n"]'),
]


class Model(str):
    pass


def bits(value):
    """A value as compared: floats by their bits, everything else by type and value."""
    if type(value) is float:
        return ("f", struct.pack("<d", value))
    return (type(value).__name__, value)


def as_bits(rows):
    return [tuple(bits(v) for v in r) for r in rows]


counts = st.one_of(st.integers(0, 5_000), st.integers(-3, 2**60), st.just(2**53 + 1), st.booleans())
usage = st.tuples(counts, counts, counts, counts, counts, st.sampled_from([0, 0, 0, 7]))
entry = st.tuples(
    usage,
    st.sampled_from(["none", "none", "none", "default"]),
    st.sampled_from(range(len(USERS))),
    st.floats(0, 1e6, allow_nan=False),
    st.floats(0, 10, allow_nan=False),
    st.sampled_from(["gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini", "gpt-4o", "sub"]),
    st.sampled_from(["openai", "openai", "openai", "anthropic"]),
)


def make(spec):
    (u, scope, user, t0, dt, model, provider) = spec
    m = Model("gpt-4o-mini") if model == "sub" else model
    return (u, None if scope == "none" else context._DEFAULT, USERS[user], t0, t0 + dt, m, provider, model)


def prime(tracker, client, model):
    """The recorder's state after an app's first calls: ``model`` priced last, calls deferred."""
    for _ in range(3):
        contextvars.Context().run(client.chat.completions.create, model=model, messages=MSG)
    recorder.settle()
    assert recorder._last_price[2] == model
    tracker._records.clear()
    tracker.last_price = recorder._last_price  # booking another model replaces it
    return tracker


@pytest.fixture
def primed(fresh_tracker, oai, active):
    return prime(fresh_tracker, oai[0], "gpt-4o-mini")


def settle(tracker, entries, monkeypatch, use_c):
    booked = []
    real = recorder._c_book_plain

    def counting(*args):
        n = real(*args)
        booked.append(n)
        return n

    with monkeypatch.context() as m:
        m.setattr(recorder, "_c_book_plain", counting if use_c else None)
        m.setattr(recorder, "_last_price", tracker.last_price)
        m.setattr(recorder, "_now", lambda: 1_700_000_000.0)  # the same offset for both
        m.setattr(recorder, "_perf", lambda: 0.0)
        record.pending.extend(entries)
        recorder.settle()
    return sum(booked)


EDGES = [
    (1200, 300, 1024, 0, 128, 0),  # plain
    (1200, 300, 1024, 0, -1, 0),  # negative reasoning
    (1200, 300, -1, 0, 0, 0),  # negative cached
    (1200, 300, 0, -5, 0, 0),  # negative cache write
    (1200, 300, 1000, 300, 0, 0),  # cached + written > input
    (1200, 300, 0, 0, 301, 0),  # reasoning > output
    (1200, 300, 0, 100, 0, 3),  # 1-hour cache writes
    (2**53, 2**53, 2**52, 2**52, 2**52, 0),  # the largest counts C takes
    (2**53 + 1, 300, 0, 0, 0, 0),  # past them
    (True, 300, 0, 0, 0, 0),  # a bool
    (781_740, 7_544, 75_501, 293_465, 4_678, 0),  # a cost that another grouping of its terms rounds otherwise
]


@pytest.mark.filterwarnings("ignore:tokenspy. internal error")  # the inconsistent entries, in Python
@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini"])  # prices 2.5/1.25/10; 0.15/0.075/0.6
def test_edge_entries_are_booked_as_the_python_loop_books_them(fresh_tracker, oai, active, monkeypatch, model):
    primed = prime(fresh_tracker, oai[0], model)
    entries = [make((u, "none", 1, 1234.5678, 0.25, model, "openai")) for u in EDGES] * 2
    booked = settle(primed, entries, monkeypatch, use_c=True)
    in_c = list(primed._records)
    primed._records.clear()
    settle(primed, entries, monkeypatch, use_c=False)
    assert as_bits(in_c) == as_bits(list(primed._records))
    assert booked == 2 * 3  # the plain one, the largest counts and the rounding one


@pytest.mark.filterwarnings("ignore:tokenspy. internal error")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(entry, min_size=1, max_size=40))
def test_c_booking_makes_the_rows_the_python_loop_makes(primed, monkeypatch, specs):
    entries = [make(s) for s in specs]
    primed._records.clear()
    booked = settle(primed, entries, monkeypatch, use_c=True)
    in_c = list(primed._records)
    primed._records.clear()
    assert settle(primed, entries, monkeypatch, use_c=False) == 0
    in_python = list(primed._records)
    primed._records.clear()
    assert as_bits(in_c) == as_bits(in_python)
    assert not record.pending
    # the C loop took the entries it is for (it is not merely declining everything)
    plain = sum(
        1 for e in entries
        if e[1] is None and e[5] == "gpt-4o-mini" and e[6] == "openai" and e[0][5] == 0
        and all(type(x) is int and abs(x) <= 2**53 for x in e[0])
        and e[0][2] + e[0][3] <= e[0][0] and e[0][4] <= e[0][1] and min(e[0][2:5]) >= 0
    )
    assert booked == plain


def test_a_batch_of_plain_calls_is_booked_in_c_and_reaches_the_db(primed, monkeypatch, tmp_path):
    store = primed._store = Store(tmp_path / "usage.db")
    entries = [make(((1200 + i, 300, 1024, 0, 128, 0), "none", i % 2, 100.0 + i, 0.5, "gpt-4o-mini", "openai"))
               for i in range(300)]
    entries.insert(150, make(((10, 5, 0, 0, 0, 0), "none", 1, 99.0, 0.1, "gpt-4o", "openai")))
    assert settle(primed, entries, monkeypatch, use_c=True) == 300
    store.flush()
    rows = sqlite3.connect(tmp_path / "usage.db").execute(
        "SELECT model, input_tokens, cost_usd, session_id, project, source_line FROM llm_calls ORDER BY id"
    ).fetchall()
    store.close()
    assert [r[1] for r in rows] == [e[0][0] for e in entries]  # call order, the Python-booked one in place
    assert rows[150][0] == "gpt-4o"
    assert {r[3:5] for r in rows} == {(None, None)}
    assert [r[5] for r in rows[:3]] == [None, 12, None]
    assert [r[2] for r in rows] == [r[record.ROW_COST] for r in primed._records]
    # rows of strings and numbers are left to themselves by the garbage collector from the start
    assert not any(gc.is_tracked(r) for r in primed._records if r[1] == "gpt-4o-mini")


class KeptDeque(deque):
    """record.pending that keeps what was appended (a writer thread may book calls any time)."""

    def __init__(self):
        super().__init__()
        self.appended = []

    def append(self, item):
        self.appended.append(item)
        super().append(item)


def test_the_plain_path_defers_calls_the_collector_does_not_walk(fresh_tracker, oai, active, monkeypatch):
    pending = KeptDeque()
    monkeypatch.setattr(record, "pending", pending)
    monkeypatch.setattr(recorder, "_pending", pending)
    monkeypatch.setattr(recorder, "_publish", lambda *args: None)  # deferred, never booked at once
    monkeypatch.setattr(recorder, "_c_book", None)
    interceptor.deactivate()  # the patch takes the deque when it is made
    interceptor.activate()

    def calls(n):
        for _ in range(n):
            oai[0].chat.completions.create(model="gpt-4o", messages=MSG)

    try:
        contextvars.Context().run(calls, 3)  # the call site's caller entry is made
        gc.collect()  # ... and its tuple untracked, as the collector does with such tuples
        del pending.appended[:]
        contextvars.Context().run(calls, 5)
        entries = list(pending.appended)
        recorder.settle()
    finally:
        interceptor.deactivate()
        monkeypatch.undo()
        interceptor.activate()
    assert len(entries) == 5
    assert not any(gc.is_tracked(e) or gc.is_tracked(e[0]) for e in entries)


@pytest.mark.parametrize("bad", [None, ("<unknown>", None, None), ["<unknown>", None, None, "[]"]])
def test_book_plain_refuses_arguments_it_cannot_read(bad):
    pending = deque([((10, 5, 0, 0, 0, 0), None, None, 1.0, 2.0, "gpt-4o", "openai", "gpt-4o")])
    with pytest.raises(TypeError):
        recorder._c_book_plain(pending, pending.popleft, [], None, "gpt-4o", "openai", None,
                               (2.5, 1.25, 2.5, 0.0, 10.0, 10.0, 0.0), 0.0, bad)
    assert len(pending) == 1  # nothing taken
