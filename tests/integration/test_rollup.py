"""The write-time roll-up (tokenspy.rollup) on real SQLite files written through the store: the diff
reads the same groups through it as through the raw rows, whatever wrote the rows and when."""

from __future__ import annotations

import hashlib
import io
import math
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenspy import pricing, rollup, store
from tokenspy.ci import annotate_cost_diff, compare_commits
from tokenspy.ci import query as query_mod
from tokenspy.ci.api import emit
from tokenspy.ci.combine import combine
from tokenspy.ci.diff import compute
from tokenspy.ci.load import load_sides
from tokenspy.ci.model import CostDiff
from tokenspy.ci.query import Source, fetch_all
from tokenspy.ci.thresholds import resolve
from tokenspy.record import CallRecord
from tokenspy.tracker import Tracker

TS = 1_750_000_000.0
SRC = Path(__file__).resolve().parents[2] / "src"
C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40


def rec(fn: str | None = "f", inp: int = 1000, out: int = 100, *, model: str = "gpt-4o", provider: str = "openai",
        test: str | None = "tests/t.py::t", run: str | None = "r1", commit: str | None = None, cached: int = 0,
        cache_write: int = 0, reasoning: int = 0, src: str | None = "src/app.py", line: int | None = 10,
        ) -> CallRecord:
    return CallRecord(fn, model, provider, inp, out, 0.0, 1.0, TS, git_commit=commit,  # type: ignore[arg-type]
                      cached_input_tokens=cached, cache_write_tokens=cache_write, reasoning_tokens=reasoning,
                      test_id=test, source_file=src, source_line=line, run_id=run)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(directory: Path) -> dict[str, str]:
    return {p.name: sha(p) for p in sorted(directory.iterdir())}


def legacy_insert(db: Path, records: Sequence[CallRecord]) -> None:
    """Rows as a writer that does not roll up (an older tokenspy) appends them."""
    cols = [c for c in store.COLUMNS if c not in ("call_stack", "call_uid")]
    conn = sqlite3.connect(db)
    conn.executemany(f"INSERT INTO llm_calls ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                     [tuple(getattr(r, c) for c in cols) for r in records])
    conn.commit()
    conn.close()


def without_rollup(db: Path, out: Path) -> Path:
    """A copy of ``db`` as an older tokenspy left it: no roll-up tables, schema v3."""
    shutil.copyfile(db, out)
    conn = sqlite3.connect(out, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    rollup.drop(conn)
    conn.execute("PRAGMA user_version = 3")
    conn.execute("COMMIT")
    conn.close()
    return out


def state(db: Path) -> tuple[int | None, int | None, int]:
    """(rollup_to or None, MAX(id), rows)."""
    with closing(store.open_readonly(db)) as conn:
        hi, n = conn.execute("SELECT MAX(id), COUNT(*) FROM llm_calls").fetchone()
        return rollup.mark(conn), hi, n


def rollup_table(db: Path) -> list[tuple]:
    with closing(store.open_readonly(db)) as conn:
        return conn.execute(f"SELECT * FROM {rollup.TABLE} ORDER BY key").fetchall()


def raw_by_commit(db: Path, upto: int | None = None) -> list[tuple]:
    """The raw GROUP BY the roll-up must equal, per commit (rows up to ``upto``)."""
    sums = ", ".join(f"COALESCE({e}, 0)" for e in rollup.sum_exprs())
    with closing(store.open_readonly(db)) as conn:
        return sorted(conn.execute(
            f"SELECT git_commit, function_name, test_id, model, provider, run_id, usage_source, {rollup.BUCKET}, "
            f"COUNT(*), {sums}, MIN(source_file), MIN(source_line) FROM llm_calls WHERE id <= ? "
            "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8",
            (upto if upto is not None else 2**62,)).fetchall(), key=repr)


def rolled(db: Path) -> list[tuple]:
    with closing(store.open_readonly(db)) as conn:
        return sorted(conn.execute(
            f"SELECT {', '.join(rollup.KEYS)}, calls, {', '.join(rollup.SUMS)}, {', '.join(rollup.MINS)} "
            f"FROM {rollup.TABLE}").fetchall(), key=repr)


def merged(groups: Sequence[query_mod.Group]) -> dict[tuple, tuple]:
    """Groups summed per key: what every consumer sees, whatever pieces they came in. The MINs of
    the pieces give the MIN of the whole, so this is exact."""
    out: dict[tuple, list] = {}
    for g in groups:
        key = (g.function, g.test, g.model, g.provider, g.run, g.bucket)
        vals = [g.calls, g.input_tokens, g.cached_input_tokens, g.cache_write_tokens, g.output_tokens,
                g.reasoning_tokens, g.source_file, g.source_line]
        if key not in out:
            out[key] = vals
            continue
        acc = out[key]
        for i in range(6):
            acc[i] += vals[i]
        for i in (6, 7):
            acc[i] = min((v for v in (acc[i], vals[i]) if v is not None), default=None)
    return {k: tuple(v) for k, v in out.items()}


def diff(cur: Source, base: Source | None) -> CostDiff:
    th = resolve(pyproject=False, max_increase_pct=7.3)  # no limit a sum of random calls lands on
    sides = load_sides([cur] if base is None else [cur, base], now=TS)
    return compute(sides[0], sides[1] if base is not None else None, th, pricing.table_version())


def assert_same_diff(a: CostDiff, b: CostDiff) -> None:
    """Equal up to the order floats were added in (pieces come in another order)."""
    def close(x: float | None, y: float | None) -> bool:
        if x is None or y is None:
            return x is y
        return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) or (math.isinf(x) and x == y)

    def usage(u, v) -> None:
        assert (u is None) == (v is None)
        if u is not None:
            for name, x in vars(u).items():
                assert close(x, getattr(v, name)), (name, u, v)

    for x, y in ((a.current, b.current), (a.baseline, b.baseline)):
        assert (x is None) == (y is None)
        if x is not None:
            assert (x.runs, x.samples, x.sharded, x.calls, x.commit) == (y.runs, y.samples, y.sharded, y.calls,
                                                                         y.commit)
    assert (a.mode, a.verdict) == (b.mode, b.verdict)
    assert {(r.kind, r.key) for r in a.regressions} == {(r.kind, r.key) for r in b.regressions}
    for kind in ("total", "function", "test", "model"):
        ra, rb = {r.key: r for r in a.rows(kind)}, {r.key: r for r in b.rows(kind)}  # type: ignore[arg-type]
        assert ra.keys() == rb.keys()
        for key, x in ra.items():
            y = rb[key]
            assert (x.change, x.regression, x.beyond_noise, x.location) == (y.change, y.regression, y.beyond_noise,
                                                                            y.location), key
            usage(x.baseline, y.baseline)
            usage(x.current, y.current)
            assert close(x.delta_usd, y.delta_usd) and close(x.delta_tokens, y.delta_tokens)
            assert close(x.delta_pct, y.delta_pct)
            assert (x.sigma is None) == (y.sigma is None)
            if x.sigma is not None:
                assert math.isclose(x.sigma, y.sigma, rel_tol=1e-6, abs_tol=1e-9)


def check_rollup(db: Path) -> None:
    """The roll-up holds exactly the rows up to its mark, grouped as the raw GROUP BY does."""
    mark, _, _ = state(db)
    assert mark is not None
    assert rolled(db) == raw_by_commit(db, mark)


# --------------------------------------------------------------------- same groups, either way

NAMES = st.sampled_from(["app.summarize", "app.classify", "a", "", "x|y", "it's", "a\x00b", "a\x00c", "é∂\u2603",
                         "NULL", "0", "t61"])
SIZES = st.one_of(
    st.sampled_from([0, 1, *rollup.SPLITS, *(s + 1 for s in rollup.SPLITS), *(s - 1 for s in rollup.SPLITS)]),
    st.integers(0, 700_000),
)
MODELS = st.sampled_from([("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("gemini-2.5-pro", "google"),
                          ("claude-sonnet-4-20250514", "anthropic"), ("acme-internal", "custom")])


@st.composite
def records(draw) -> CallRecord:
    fn = draw(NAMES)
    model, provider = draw(MODELS)
    inp = draw(SIZES)
    # one source file per function (so the per-function location does not depend on how the
    # groups were cut), lines vary; sometimes none at all
    has_src = draw(st.booleans()) or fn.startswith("app")
    return rec(fn, inp, draw(st.integers(0, 5000)), model=model, provider=provider,
               test=draw(st.one_of(st.none(), NAMES)), run=draw(st.sampled_from([None, "r1", "r2", "r3"])),
               commit=draw(st.sampled_from([None, C1, C2, C3])), cached=draw(st.integers(0, inp)),
               cache_write=draw(st.sampled_from([0, 0, 7])), reasoning=draw(st.sampled_from([0, 3, 300])),
               src=f"src/{fn.encode('unicode_escape').decode()}.py" if has_src else None,
               line=draw(st.integers(1, 99)) if has_src else None)


@st.composite
def histories(draw) -> list[tuple[str, list[CallRecord]]]:
    """Writes to one DB in order: ("store", records) through write_records, ("legacy", records)
    appended without a roll-up."""
    steps = draw(st.lists(st.tuples(st.sampled_from(["store", "store", "legacy"]),
                                    st.lists(records(), min_size=1, max_size=12)), min_size=1, max_size=4))
    return steps


def play(db: Path, steps: Sequence[tuple[str, list[CallRecord]]]) -> None:
    for how, batch in steps:
        if how == "store" or not db.exists():
            store.write_records(db, batch)
        else:
            legacy_insert(db, batch)


@given(histories(), histories(), st.sampled_from([None, 2, 65_536]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_rollup_and_raw_rows_give_the_same_groups_and_diff(cur_steps, base_steps, chunk_rows):
    saved = query_mod.CHUNK_ROWS
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cur, base = d / "cur.db", d / "base.db"
        play(cur, cur_steps)
        play(base, base_steps)
        check_rollup(cur)
        check_rollup(base)
        (d / "raw").mkdir()
        raw_cur, raw_base = without_rollup(cur, d / "raw" / "cur.db"), without_rollup(base, d / "raw" / "base.db")
        assert state(raw_cur)[0] is None
        try:
            if chunk_rows is not None:  # a long tail is read in parallel rowid chunks
                query_mod.CHUNK_ROWS = chunk_rows
            sources = [Source(str(cur)), Source(str(base))] + [Source(str(cur), c) for c in (C1, C2, C3)]
            raw_sources = [Source(str(raw_cur)), Source(str(raw_base))] + [Source(str(raw_cur), c)
                                                                           for c in (C1, C2, C3)]
            for got, want in zip(fetch_all(sources), fetch_all(raw_sources), strict=True):
                assert merged(got) == merged(want)
            assert_same_diff(diff(Source(str(cur)), Source(str(base))),
                             diff(Source(str(raw_cur)), Source(str(raw_base))))
            assert_same_diff(diff(Source(str(cur), C2), Source(str(cur), C1)),
                             diff(Source(str(raw_cur), C2), Source(str(raw_cur), C1)))
        finally:
            query_mod.CHUNK_ROWS = saved


def test_keys_keep_apart_what_group_by_keeps_apart(tmp_path):
    # NUL inside a name (quote() would cut it there), '' vs NULL, the separator inside a name
    db = tmp_path / "k.db"
    names = ["a\x00b", "a\x00c", "", None, "x|y", "x", "NULL", "'x'"]
    store.write_records(db, [rec(n, test=n, run=n, commit=n) for n in names])
    store.write_records(db, [rec(n, test=n, run=n, commit=n) for n in names])
    assert len(rolled(db)) == len(names)
    assert all(row[8] == 2 for row in rolled(db))  # calls, after the 8 key columns
    check_rollup(db)


# --------------------------------------------------------------------------- who writes when


def test_tail_of_an_older_writer_is_counted_once_and_reads_write_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    db = tmp_path / "usage.db"
    store.write_records(db, [rec("f", 1000), rec("g", 50_000)])
    legacy_insert(db, [rec("f", 1000), rec("h", 300_000, model="gemini-2.5-pro", provider="google")])
    assert state(db) == (2, 4, 4)  # two rows above the mark
    before = snapshot(tmp_path)
    side = load_sides([Source(str(db))], now=TS)[0]
    assert side.total.usage.calls == 4 and side.keys["function"]["f"].usage.calls == 2
    annotate_cost_diff(db, db, output=io.StringIO(), pyproject=False)
    assert snapshot(tmp_path) == before
    store.write_records(db, [rec("g", 1)])  # the next roll-up takes the tail too
    assert state(db) == (5, 5, 5)
    check_rollup(db)
    side = load_sides([Source(str(db))], now=TS)[0]
    assert side.total.usage.calls == 5 and side.keys["function"]["f"].usage.calls == 2


def test_reads_during_a_live_writer_see_a_consistent_snapshot(tmp_path):
    db = tmp_path / "usage.db"
    store.write_records(db, [rec("f", 10)] * 3)
    writer = store.open_writable(db)
    try:
        with store.transaction(writer):  # committed rows above the mark, read while the writer is live
            store._insert(writer, [rec("f", 10)] * 2)
        names = {p.name for p in tmp_path.iterdir()}
        before = snapshot(tmp_path)
        assert merged(fetch_all([Source(str(db))])[0])[("f", "tests/t.py::t", "gpt-4o", "openai", "r1", 0)][0] == 5
        assert {p.name for p in tmp_path.iterdir()} == names
        # the DB and its WAL are untouched (the -shm is shared memory: with frames in the WAL, any
        # reader, of the roll-up or the raw rows alike, takes a read mark there)
        after = snapshot(tmp_path)
        del before["usage.db-shm"], after["usage.db-shm"]
        assert after == before
    finally:
        writer.close()


def test_store_rolls_up_every_n_rows_and_at_close(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "ROLLUP_EVERY", 10)
    db = tmp_path / "usage.db"
    s = store.Store(db)
    s.interval = 3600  # only the explicit flushes below write
    for _ in range(6):
        s.add(rec("f"))
    s.flush()
    assert state(db) == (0, 6, 6)  # below ROLLUP_EVERY: no roll-up on the writer's path
    for _ in range(5):
        s.add(rec("f"))
    s.flush()
    assert state(db) == (11, 11, 11)
    for _ in range(3):
        s.add(rec("g"))
    s.flush()
    assert state(db)[0] == 11
    s.close()  # rolls up what is left even with nothing queued
    assert state(db) == (14, 14, 14)
    check_rollup(db)
    s.close()
    assert state(db) == (14, 14, 14)


def test_tracker_store_rolls_up_at_close(tmp_path):
    tracker = Tracker(tmp_path / "u.db")
    for i in range(7):
        tracker.record(rec(f"f{i % 2}"))
    tracker.flush()
    assert state(tmp_path / "u.db") == (0, 7, 7)
    tracker.close()
    assert state(tmp_path / "u.db") == (7, 7, 7)
    check_rollup(tmp_path / "u.db")


# ------------------------------------------------------------------------------ compare, combine


def test_compare_commits_filters_the_rollup_and_the_tail(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    db = tmp_path / "usage.db"
    store.write_records(db, [rec("summarize", 1000, commit=C1, run="a"), rec("other", 10, commit=C1, run="a"),
                             rec("summarize", 1500, commit=C2, run="b")])
    legacy_insert(db, [rec("summarize", 500, commit=C2, run="b"), rec("other", 99, commit=C3, run="c")])
    d = compare_commits(db, C1, C2, output=io.StringIO(), pyproject=False)
    raw = without_rollup(db, tmp_path / "raw.db")
    want = compare_commits(raw, C1, C2, output=io.StringIO(), pyproject=False)
    assert d.current.calls == 2 and d.baseline is not None and d.baseline.calls == 2
    assert {r.key: r.change for r in d.functions} == {"summarize": "increased", "other": "removed"}
    p = pricing.lookup("gpt-4o")
    assert d.total.current.cost_usd == pytest.approx(p.cost(2000, 200))  # type: ignore[union-attr]
    assert_same_diff(d, want)


def test_combine_rolls_up_once_however_often_a_shard_is_combined(tmp_path):
    s1, s2, out = tmp_path / "s1.db", tmp_path / "s2.db", tmp_path / "all.db"
    store.write_records(s1, [rec("a", 1, run="x", test="t1"), rec("b", 200_000, run="x", test="t1")])
    store.write_records(s2, [rec("a", 3, run="y", test="t2")])
    legacy_insert(s2, [rec("c", 4, run="y", test="t2")])  # a shard's unrolled tail is combined too
    assert combine(out, [s1, s2]).added == 4
    assert state(out) == (4, 4, 4)
    table = rollup_table(out)
    assert sum(r[8] for r in table) == 4
    assert combine(out, [s1, s2, s1]).added == 0
    assert rollup_table(out) == table
    store.write_records(s2, [rec("d", 5, run="y", test="t2")])  # the shard grew
    assert combine(out, [s2]).added == 1
    mark, hi, n = state(out)  # (ignored inserts use up ids: they need not be dense)
    assert mark == hi and n == 5
    check_rollup(out)
    got = merged(fetch_all([Source(str(out))])[0])
    want = merged(fetch_all([Source(str(without_rollup(out, tmp_path / "raw.db")))])[0])
    assert got == want and sum(v[0] for v in got.values()) == 5


def test_extract_run_rolls_up(tmp_path):
    from tokenspy.testing_summary import extract_run

    db = tmp_path / "u.db"
    store.write_records(db, [rec("a", run="x"), rec("b", run="y"), rec("c", run="x")])
    out = extract_run(db, "x", tmp_path / "x.db")
    assert state(out) == (2, 2, 2)
    check_rollup(out)


# ------------------------------------------------------------------------------------- schema


def test_v3_db_with_rows_migrates_and_rolls_up_what_was_there(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    db = tmp_path / "usage.db"
    store.write_records(db, [rec("f", 1000, commit=C1), rec("g", 250_000, model="gemini-2.5-pro",
                                                             provider="google", commit=C1)])
    without_rollup(db, tmp_path / "v3.db")
    db = tmp_path / "v3.db"
    legacy_insert(db, [rec("f", 2000, commit=C2)])
    before = snapshot(tmp_path)
    raw = load_sides([Source(str(db))], now=TS)[0]  # read as is: no roll-up, never migrated by a read
    assert state(db)[0] is None and raw.total.usage.calls == 3
    assert snapshot(tmp_path) == before
    store.write_records(db, [rec("h", 10, commit=C2)])
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION == 5
    assert state(db) == (4, 4, 4)
    check_rollup(db)
    assert_same_diff(diff(Source(str(db)), Source(str(db), C1)),
                     diff(Source(str(without_rollup(db, tmp_path / "raw.db"))), Source(str(tmp_path / "raw.db"), C1)))


def test_migrated_by_a_reader_that_writes_nothing_else_reads_the_whole_tail(tmp_path, monkeypatch):
    # open_writable alone (e.g. `tokenspy budget reset`) migrates a v3 DB without rolling up
    store.write_records(tmp_path / "w.db", [rec("f", i) for i in range(1, 40)])
    db = without_rollup(tmp_path / "w.db", tmp_path / "v3.db")
    store.open_writable(db).close()
    assert state(db) == (0, 39, 39)
    monkeypatch.setattr(query_mod, "CHUNK_ROWS", 8)  # the tail goes to parallel chunks
    groups = fetch_all([Source(str(db))])[0]
    assert sum(g.calls for g in groups) == 39
    assert sum(g.input_tokens for g in groups) == sum(range(1, 40))


def test_rollup_built_with_other_splits_is_not_read_and_is_rebuilt(tmp_path):
    db = tmp_path / "u.db"
    store.write_records(db, [rec("f", 150_000), rec("f", 10)])
    conn = sqlite3.connect(db)
    conn.execute(f"UPDATE {rollup.META} SET value = '0:1,2,3' WHERE name = 'rollup_splits'")
    conn.execute(f"UPDATE {rollup.TABLE} SET calls = calls * 100")  # garbage a reader must not use
    conn.commit()
    conn.close()
    assert state(db)[0] is None
    assert sum(g.calls for g in fetch_all([Source(str(db))])[0]) == 2
    store.write_records(db, [rec("f", 20)])
    assert state(db) == (3, 3, 3)
    check_rollup(db)


def test_dropped_rollup_tables_on_a_v4_db_are_rebuilt_by_the_next_write(tmp_path):
    db = tmp_path / "u.db"
    store.write_records(db, [rec("f", 10), rec("g", 10)])
    conn = sqlite3.connect(db)
    conn.execute(f"DROP TABLE {rollup.TABLE}")  # half a roll-up: the mark alone must not be trusted
    conn.commit()
    conn.close()
    assert state(db)[0] is None
    store.write_records(db, [rec("h", 10)])
    assert state(db) == (3, 3, 3)
    check_rollup(db)


# ----------------------------------------------------------------------------- several writers


def test_processes_writing_one_db_keep_the_rollup_exact(tmp_path):
    db = tmp_path / "shared.db"
    script = tmp_path / "w.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(SRC)!r})
        from tokenspy import store
        from tokenspy.record import CallRecord
        me = sys.argv[1]
        for i in range(40):
            store.write_records({str(db)!r}, [
                CallRecord(f"f{{j % 3}}", "gpt-4o", "openai", 1000 * j, 7, 0.0, 1.0, 1.0, run_id=me,
                           test_id=f"t{{i % 4}}", git_commit=None if j % 2 else "c" * 40)
                for j in range(1, 16)])
        s = store.Store({str(db)!r})
        for j in range(500):
            s.add(CallRecord("bg", "gpt-4o-mini", "openai", j, 1, 0.0, 1.0, 1.0, run_id=me))
        s.close()
    """))
    procs = [subprocess.Popen([sys.executable, str(script), f"p{k}"], stderr=subprocess.PIPE) for k in range(4)]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert state(db) == (4 * (40 * 15 + 500),) * 3
    check_rollup(db)
    got = merged(fetch_all([Source(str(db))])[0])
    assert got == merged(fetch_all([Source(str(without_rollup(db, tmp_path / "raw.db")))])[0])


def test_emit_of_a_rollup_diff_matches_the_raw_one(tmp_path):
    db = tmp_path / "u.db"
    store.write_records(db, [rec("f", 1000, test="t1"), rec("g", 300_000, model="gemini-2.5-pro", provider="google",
                                                           test="t2")])
    raw = without_rollup(db, tmp_path / "raw.db")
    outs = []
    for path in (db, raw):
        out = io.StringIO()
        emit(diff(Source(str(path)), None), format="markdown", github_on=False, output=out)
        outs.append(out.getvalue().replace(str(raw), str(db)))
    assert outs[0] == outs[1]


def test_rows_with_parts_above_their_totals_price_the_same_however_grouped(tmp_path):
    """Records made by hand (not by the recorder) may say cache_write > input. The roll-up keeps
    commits apart, a raw read of the whole DB does not: the cost must not depend on that."""
    cur, base = tmp_path / "cur.db", tmp_path / "base.db"
    store.write_records(cur, [rec("f", inp=0, out=0, cache_write=7, commit=C1),
                              rec("f", inp=1, out=3, reasoning=5, commit=C2)])
    store.write_records(base, [rec("f", inp=10, out=1)])
    (tmp_path / "raw").mkdir()
    raw_cur = without_rollup(cur, tmp_path / "raw" / "cur.db")
    raw_base = without_rollup(base, tmp_path / "raw" / "base.db")
    got = diff(Source(str(cur)), Source(str(base)))
    want = diff(Source(str(raw_cur)), Source(str(raw_base)))
    assert_same_diff(got, want)
    row = {r.key: r for r in got.rows("function")}["f"]
    # input counted as 7 (its cache write) + 1, output as 5 (its reasoning) + 0
    assert (row.current.input_tokens, row.current.output_tokens) == (8, 5)
