"""The writer's two statements: a batch of one call site (every row kept as its values, sharing
its strings and line) binds those once a statement (store._insert_uniform); any other batch binds
every field. Both put the same rows in the DB, in order; a batch put back for a retry is the
rows it took."""

from __future__ import annotations

import sqlite3
import struct
from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenspy import context, store
from tokenspy.store import Store

Rows = getattr(context.speedups, "Rows", None)
pytestmark = pytest.mark.skipif(Rows is None, reason="tokenspy._speedups not built")

SITES = [
    ("app.main", "gpt-4o", "openai", '["app.main"]', "/srv/app.py", 12, "run-1"),
    ("app.other", "gpt-4o", "openai", '["app.other"]', None, None, "run-1"),
    ("wé|ird\n", "gpt-4o-mini", "openai", '["wé|ird\\n"]', "/srv/x.py", 3, "run-1"),
]
COLUMNS = ("function_name, model, provider, input_tokens, output_tokens, cost_usd, duration_ms, timestamp, "
           "session_id, git_commit, call_stack, cached_input_tokens, cache_write_tokens, reasoning_tokens, priced, "
           "test_id, source_file, source_line, run_id, project")


def row(site, tin, tout, cost, dur, ts, cached, write, reasoning):
    name, model, provider, stack, source, line, run_id = site
    return (name, model, provider, tin, tout, cost, dur, ts, 0, 0, stack, cached, write, reasoning, 1, 0,
            source, line, run_id, 0)


counts = st.integers(0, 2**62)
floats = st.floats(allow_nan=False)
numbers = st.tuples(counts, counts, floats, floats, floats, counts, counts, counts)


def db_rows(path):
    with sqlite3.connect(path) as conn:
        got = conn.execute(f"SELECT {COLUMNS}, typeof(source_line), typeof(priced) FROM llm_calls ORDER BY id")
        return [tuple(struct.pack("<d", v) if type(v) is float else v for v in r) for r in got]


def write(path, rows, queue):
    s = Store(path)
    s._queue = queue
    for r in rows:
        s.add(r)
    s.flush()
    s.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(range(len(SITES))), numbers), min_size=1, max_size=70), st.booleans())
def test_both_statements_write_the_same_rows(tmp_path_factory, calls, one_site):
    rows = [row(SITES[0 if one_site else site], *nums) for site, nums in calls]
    tmp = tmp_path_factory.mktemp("w")
    write(tmp / "rows.db", rows, Rows())  # one site: the uniform statement
    write(tmp / "deque.db", rows, deque())  # rows as they are: the general one
    got, expected = db_rows(tmp / "rows.db"), db_rows(tmp / "deque.db")
    assert got == expected and len(got) == len(rows)
    assert got[0][:3] == rows[0][:3] and got[0][8:10] == (None, None)  # session, git: NULL


def test_a_batch_of_one_site_is_taken_uniform_and_another_is_not():
    q = Rows()
    for i in range(5):
        q.append(row(SITES[0], 100 + i, 7, 0.5, 1.0, 2.0, 0, 0, 0))
    batch = store._take(q, 4)
    assert batch.shared == SITES[0] and batch.rows == 4
    assert batch.as_rows() == [row(SITES[0], 100 + i, 7, 0.5, 1.0, 2.0, 0, 0, 0) for i in range(4)]
    q.append(row(SITES[1], 1, 1, 0.5, 1.0, 2.0, 0, 0, 0))
    mixed = store._take(q, 2)
    assert mixed.shared is None and mixed.rows == 2
    assert mixed.as_rows() == [row(SITES[0], 104, 7, 0.5, 1.0, 2.0, 0, 0, 0),
                               row(SITES[1], 1, 1, 0.5, 1.0, 2.0, 0, 0, 0)]
    assert len(q) == 0


def test_a_uniform_batch_put_back_is_written_whole_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "WRITE_TIMEOUT", 0.1)
    path = tmp_path / "u.db"
    s = Store(path)
    s.add(row(SITES[0], 1, 1, 0.5, 1.0, 2.0, 0, 0, 0))
    s.flush()  # the DB exists
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    rows = [row(SITES[0], 10 + i, 1, 0.5, 1.0, 2.0, 0, 0, 0) for i in range(8)]
    for r in rows:
        s.add(r)
    with pytest.warns(Warning, match="locked"):
        s.flush()
    assert len(s._queue) == 8  # put back
    blocker.execute("ROLLBACK")
    blocker.close()
    s.flush()
    s.close()
    with sqlite3.connect(path) as conn:
        got = [r[0] for r in conn.execute("SELECT input_tokens FROM llm_calls ORDER BY id")]
    assert got == [1] + [10 + i for i in range(8)]
