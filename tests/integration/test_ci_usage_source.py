"""The diff never compares unlike usage sources silently (issue 17), on real SQLite DBs."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tokenspy import rollup
from tokenspy.ci.api import annotate_cost_diff
from tokenspy.ci.markdown import render_markdown
from tokenspy.ci.query import Source, fetch_all
from tokenspy.record import CallRecord
from tokenspy.store import write_records


def rec(fn: str, inp: int, source: str, *, model: str = "gpt-4o", run: str = "r1") -> CallRecord:
    return CallRecord(function_name=fn, model=model, provider="openai", input_tokens=inp, output_tokens=10,
                      cost_usd=0.0, duration_ms=1.0, timestamp=time.time(), git_commit="a" * 40,
                      test_id=f"tests/t.py::test_{fn}", run_id=run, usage_source=source)


def db(path: Path, *records: CallRecord) -> str:
    write_records(path, records)
    return str(path)


def test_like_sources_no_note(tmp_path):
    base = db(tmp_path / "b.db", rec("app.a", 100, "request"), rec("app.b", 100, "request_approx"))
    cur = db(tmp_path / "c.db", rec("app.a", 200, "request"), rec("app.b", 100, "request_approx"))
    d = annotate_cost_diff(cur, base, format=None, github=False, pyproject=False)
    assert d.usage_note == ""
    assert d.compared_sources == ("request", "request_approx")
    assert [r.key for r in d.functions if r.changed] == ["app.a"]


def test_response_baseline_request_run_is_not_compared(tmp_path):
    # An old baseline priced from a canned mock response, a run in request mode: no regression.
    base = db(tmp_path / "b.db", rec("app.a", 1200, "response"))
    cur = db(tmp_path / "c.db", rec("app.a", 9000, "request"))
    d = annotate_cost_diff(cur, base, format=None, github=False, pyproject=False, fail_on_regression=True)
    assert d.verdict == "pass" and not d.has_baseline
    assert d.usage_note.startswith("Usage sources differ: baseline response (1 call), this run request (1 call)")
    assert "not compared" in d.usage_note
    text = render_markdown(d)
    # one line at the top: right under the headline and the counts
    assert text.splitlines()[5].startswith("> ⚠️ Usage sources differ"), text[:400]


def test_mixed_sources_compare_matching_rows_only(tmp_path):
    base = db(tmp_path / "b.db", rec("app.a", 100, "request"), rec("app.b", 100, "response"))
    cur = db(tmp_path / "c.db", rec("app.a", 100, "request"), rec("app.b", 5000, "request"))
    d = annotate_cost_diff(cur, base, format=None, github=False, pyproject=False, fail_on_regression=True)
    # app.b's baseline row is a response row: only the request rows are compared, app.b is new.
    assert d.compared_sources == ("request",)
    assert "compares the request rows only (1 baseline call, 2 current)" in d.usage_note
    rows = {r.key: r for r in d.functions}
    assert rows["app.b"].change == "new" and rows["app.a"].change == "unchanged"


def test_usage_setting_picks_the_source(tmp_path):
    base = db(tmp_path / "b.db", rec("app.a", 100, "request"), rec("app.a", 100, "response"))
    cur = db(tmp_path / "c.db", rec("app.a", 100, "request"), rec("app.a", 900, "response"))
    req = annotate_cost_diff(cur, base, format=None, github=False, pyproject=False, usage="request")
    assert req.compared_sources == ("request", "request_approx")
    assert not req.total.changed and "request and request_approx rows only" in req.usage_note
    resp = annotate_cost_diff(cur, base, format=None, github=False, pyproject=False, usage="response")
    assert resp.total.changed and resp.total.current.calls == 1
    with pytest.raises(ValueError, match="unknown usage source 'bogus'"):
        annotate_cost_diff(cur, base, format=None, github=False, pyproject=False, usage="bogus")


def test_rollup_keeps_sources_apart_and_old_rollup_reads_raw(tmp_path):
    path = db(tmp_path / "u.db", rec("app.a", 100, "request"), rec("app.a", 100, "response"))
    groups = fetch_all([Source(path)])[0]
    assert sorted(g.usage_source for g in groups) == ["request", "response"]
    with sqlite3.connect(path) as conn:
        assert rollup.mark(conn) is not None  # read from the v3 roll-up
        # A v2 roll-up (no usage_source column): the reader ignores it and reads the raw rows.
        conn.execute(f"UPDATE {rollup.META} SET value = '2:x' WHERE name = 'rollup_splits'")
    raw = fetch_all([Source(path)])[0]
    assert sorted((g.usage_source, g.calls) for g in raw) == [("request", 1), ("response", 1)]
    write_records(Path(path), [rec("app.a", 100, "request")])  # the next writer rebuilds it
    with sqlite3.connect(path) as conn:
        assert rollup.mark(conn) is not None
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({rollup.TABLE})")]
        assert "usage_source" in cols
    again = fetch_all([Source(path)])[0]
    assert sorted((g.usage_source, g.calls) for g in again) == [("request", 2), ("response", 1)]
