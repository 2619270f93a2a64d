"""ReportData: the aggregates behind every report, from records and from a real SQLite DB."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tokenspy import store
from tokenspy.record import CallRecord
from tokenspy.reporting.data import MAX_STACK_DEPTH, ROOT_NAME, ReportData, StackNode
from tokenspy.store import DBError, write_records


def rec(function: str = "f", cost: float = 0.01, *, stack: list[str] | None = None, model: str = "gpt-4o",
        provider: str = "openai", inp: int = 100, out: int = 20, ts: float = 1_700_000_000.0,
        **kw) -> CallRecord:
    return CallRecord(
        function_name=function, model=model, provider=provider, input_tokens=inp, output_tokens=out,
        cost_usd=cost, duration_ms=kw.pop("duration_ms", 250.0), timestamp=ts,
        call_stack=[function] if stack is None else stack, **kw,
    )


def both(tmp_path: Path, records: list[CallRecord]) -> tuple[ReportData, ReportData]:
    db = tmp_path / "calls.db"
    write_records(db, records)
    return ReportData.from_records(records), ReportData.from_db(db)


def child(node: StackNode, name: str) -> StackNode:
    matches = [c for c in node.children if c.name == name]
    assert len(matches) == 1, f"{name} not under {node.name}: {[c.name for c in node.children]}"
    return matches[0]


def varied_records(n: int, seed: int = 3) -> list[CallRecord]:
    rng = random.Random(seed)
    stacks = [["main", "a", "b"], ["main", "a"], ["main", "c"], ["job"], []]
    models = [("openai", "gpt-4o", True), ("anthropic", "claude-x", True), ("acme", "mystery", False)]
    out = []
    for _ in range(n):
        stack = rng.choice(stacks)
        provider, model, priced = rng.choice(models)
        fn = stack[-1] if stack else "loose"
        out.append(rec(
            fn, rng.random() / 97 if priced else 0.0, stack=stack, model=model, provider=provider,
            inp=rng.randrange(1, 5000), out=rng.randrange(0, 900), ts=1.7e9 + rng.random() * 1e6,
            duration_ms=rng.random() * 3000, priced=priced, cached_input_tokens=rng.randrange(0, 50),
            cache_write_tokens=rng.randrange(0, 5), reasoning_tokens=rng.randrange(0, 9),
            session_id=rng.choice([None, "s1", "s2", "s3"]), git_commit=rng.choice([None, "c0ffee", "bead"]),
        ))
    return out


# --------------------------------------------------------------------------- equality of sources


def test_from_records_equals_from_db(tmp_path: Path) -> None:
    mem, db = both(tmp_path, varied_records(3000))
    assert mem == db
    assert mem.totals.calls == 3000


def test_empty(tmp_path: Path) -> None:
    mem, db = both(tmp_path, [])
    assert mem == db
    assert mem.is_empty
    assert mem.totals.cost_usd == 0.0 and mem.totals.first_timestamp is None
    assert mem.functions == mem.models == mem.sessions == mem.commits == mem.unpriced == ()
    assert mem.stacks == StackNode(ROOT_NAME, 0, 0, 0, 0.0, 0.0, ())


# --------------------------------------------------------------------------- figures


def test_totals_and_rows(tmp_path: Path) -> None:
    records = [
        rec("plan", 0.03, model="gpt-4o", inp=1000, out=100, ts=10.0, cached_input_tokens=400,
            reasoning_tokens=30, duration_ms=100.0),
        rec("plan", 0.01, model="claude-x", provider="anthropic", inp=500, out=50, ts=30.0,
            cache_write_tokens=7, duration_ms=300.0),
        rec("write", 0.06, model="gpt-4o", inp=2000, out=300, ts=20.0, duration_ms=200.0),
    ]
    mem, db = both(tmp_path, records)
    assert mem == db
    t = mem.totals
    assert (t.calls, t.input_tokens, t.output_tokens) == (3, 3500, 450)
    assert (t.cached_input_tokens, t.cache_write_tokens, t.reasoning_tokens) == (400, 7, 30)
    assert t.cost_usd == pytest.approx(0.10)
    assert t.duration_ms == pytest.approx(600.0)
    assert (t.first_timestamp, t.last_timestamp) == (10.0, 30.0)

    assert [f.name for f in mem.functions] == ["write", "plan"]  # most expensive first
    write, plan = mem.functions
    assert (plan.calls, plan.input_tokens, plan.output_tokens) == (2, 1500, 150)
    assert plan.cost_usd == pytest.approx(0.04) and plan.share == pytest.approx(0.4)
    assert write.share == pytest.approx(0.6)

    assert [(m.provider, m.model) for m in mem.models] == [("openai", "gpt-4o"), ("anthropic", "claude-x")]
    gpt = mem.models[0]
    assert (gpt.calls, gpt.input_tokens, gpt.cached_input_tokens, gpt.reasoning_tokens) == (2, 3000, 400, 30)
    assert gpt.cost_usd == pytest.approx(0.09)


def test_unpriced_models(tmp_path: Path) -> None:
    records = [
        rec("a", 0.0, model="my-finetune", provider="acme", inp=700, out=70, priced=False),
        rec("a", 0.0, model="my-finetune", provider="acme", inp=300, out=30, priced=False),
        rec("b", 0.02, model="gpt-4o"),
        rec("b", 0.0, model="gpt-4o", inp=50, out=5, priced=False),  # priced later, not at first
    ]
    mem, db = both(tmp_path, records)
    assert mem == db
    assert mem.totals.unpriced_calls == 3
    assert [(u.provider, u.model, u.calls, u.input_tokens, u.output_tokens) for u in mem.unpriced] == [
        ("acme", "my-finetune", 2, 1000, 100),
        ("openai", "gpt-4o", 1, 50, 5),
    ]
    by_model = {m.model: m for m in mem.models}
    assert by_model["my-finetune"].unpriced_calls == 2 and by_model["my-finetune"].cost_usd == 0.0
    assert by_model["gpt-4o"].unpriced_calls == 1 and by_model["gpt-4o"].calls == 2


def test_all_unpriced_has_zero_shares(tmp_path: Path) -> None:
    mem, db = both(tmp_path, [rec("a", 0.0, priced=False), rec("b", 0.0, priced=False)])
    assert mem == db
    assert all(f.share == 0.0 for f in mem.functions)
    assert [f.name for f in mem.functions] == ["a", "b"]


def test_sessions_and_commits(tmp_path: Path) -> None:
    records = [
        rec(cost=0.01, ts=1.0, session_id="old", git_commit="aaa"),
        rec(cost=0.02, ts=2.0, session_id="old", git_commit="aaa"),
        rec(cost=0.04, ts=5.0, session_id="new", git_commit="bbb"),
        rec(cost=0.08, ts=6.0),  # no session, no commit: in the totals only
    ]
    mem, db = both(tmp_path, records)
    assert mem == db
    assert [(s.key, s.calls) for s in mem.sessions] == [("new", 1), ("old", 2)]  # most recent first
    old = mem.sessions[1]
    assert old.cost_usd == pytest.approx(0.03)
    assert (old.first_timestamp, old.last_timestamp) == (1.0, 2.0)
    assert [(c.key, c.calls) for c in mem.commits] == [("bbb", 1), ("aaa", 2)]


# --------------------------------------------------------------------------- call-stack tree


def test_stack_tree_costs_add_up(tmp_path: Path) -> None:
    records = [
        rec("C", 0.04, stack=["A", "B", "C"]),
        rec("C", 0.04, stack=["A", "B", "C"]),
        rec("B", 0.02, stack=["A", "B"]),
        rec("D", 0.01, stack=["A", "D"]),
        rec("E", 0.10, stack=["E"]),
    ]
    mem, db = both(tmp_path, records)
    assert mem == db
    root = mem.stacks
    assert root.name == ROOT_NAME and root.calls == 5 and root.self_calls == 0
    assert root.total_cost_usd == pytest.approx(mem.totals.cost_usd)
    a = child(root, "A")
    b, c, d = child(a, "B"), child(child(a, "B"), "C"), child(a, "D")
    assert c.total_cost_usd == pytest.approx(0.08) and c.self_cost_usd == pytest.approx(0.08)
    assert (c.calls, c.self_calls, c.children) == (2, 2, ())
    assert b.self_cost_usd == pytest.approx(0.02) and b.self_calls == 1
    assert b.total_cost_usd == pytest.approx(b.self_cost_usd + c.total_cost_usd)
    assert a.self_cost_usd == 0.0 and a.calls == 4
    assert a.total_cost_usd == pytest.approx(b.total_cost_usd + d.total_cost_usd)
    assert root.total_cost_usd == pytest.approx(a.total_cost_usd + child(root, "E").total_cost_usd)
    assert b.tokens == 3 * 120
    for _, node in root.walk():  # every frame: total = self + children
        assert node.total_cost_usd == pytest.approx(
            node.self_cost_usd + sum(x.total_cost_usd for x in node.children))
        assert node.calls == node.self_calls + sum(x.calls for x in node.children)


def test_stack_always_ends_in_the_calling_function(tmp_path: Path) -> None:
    records = [rec("f", 0.01, stack=[]), rec("f", 0.02, stack=["main"]), rec("f", 0.04, stack=["main", "f"])]
    mem, db = both(tmp_path, records)
    assert mem == db
    assert [c.name for c in mem.stacks.children] == ["f", "main"]
    assert child(mem.stacks, "f").self_calls == 1
    assert child(child(mem.stacks, "main"), "f").self_calls == 2


def test_deep_stacks_are_capped(tmp_path: Path) -> None:
    deep = [f"level{i}" for i in range(MAX_STACK_DEPTH * 3)]
    mem, db = both(tmp_path, [rec(deep[-1], 0.01, stack=deep)])
    assert mem == db
    depth = max(d for d, _ in mem.stacks.walk())
    assert depth == MAX_STACK_DEPTH
    leaf = next(n for _, n in mem.stacks.walk() if not n.children)
    assert leaf.name == deep[-1] and leaf.self_calls == 1


# --------------------------------------------------------------------------- DB specifics


def _insert_raw(db: Path, rows: list[dict]) -> None:
    with closing(sqlite3.connect(db)) as conn, conn:
        for row in rows:
            cols = ", ".join(row)
            conn.execute(f"INSERT INTO llm_calls ({cols}) VALUES ({', '.join('?' * len(row))})",
                         tuple(row.values()))


def test_seed_schema_db(tmp_path: Path) -> None:
    """A DB of the original tool: no priced/cached/reasoning columns, some NULLs."""
    db = tmp_path / "seed.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "CREATE TABLE llm_calls (id INTEGER PRIMARY KEY AUTOINCREMENT, function_name TEXT, "
            "call_stack TEXT, model TEXT, provider TEXT, input_tokens INTEGER, output_tokens INTEGER, "
            "cost_usd REAL, duration_ms REAL, timestamp REAL, session_id TEXT, git_commit TEXT)"
        )
    _insert_raw(db, [
        dict(function_name="run", call_stack='["main", "run"]', model="gpt-4o", provider="openai",
             input_tokens=100, output_tokens=10, cost_usd=0.5, duration_ms=20.0, timestamp=5.0,
             session_id="s", git_commit="abc"),
        dict(function_name="run", call_stack=None, model=None, provider=None, input_tokens=None,
             output_tokens=7, cost_usd=None, duration_ms=None, timestamp=None, session_id=None,
             git_commit=None),
    ])
    data = ReportData.from_db(db)
    # load_records reads a NULL timestamp as 0.0; the report leaves it out of the time span
    loaded = ReportData.from_records(store.load_records(db))
    assert data == dataclasses.replace(loaded, totals=dataclasses.replace(loaded.totals, first_timestamp=5.0))
    assert data.totals.calls == 2 and data.totals.unpriced_calls == 0
    assert data.totals.cost_usd == 0.5 and data.totals.output_tokens == 17
    assert {(m.provider, m.model) for m in data.models} == {("openai", "gpt-4o"), ("unknown", "")}
    assert [c.name for c in data.stacks.children] == ["main", "run"]
    assert [s.key for s in data.sessions] == ["s"] and [c.key for c in data.commits] == ["abc"]


def test_stack_json_spellings_are_one_frame(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    write_records(db, [rec("b", 0.01, stack=["a", "b"])])
    _insert_raw(db, [dict(function_name="b", call_stack='["a","b"]', model="gpt-4o", provider="openai",
                          input_tokens=1, output_tokens=1, cost_usd=0.02, duration_ms=1.0, timestamp=1.0,
                          priced=1)])
    data = ReportData.from_db(db)
    assert [c.name for c in data.stacks.children] == ["a"]
    b = child(child(data.stacks, "a"), "b")
    assert b.calls == 2 and b.total_cost_usd == pytest.approx(0.03)
    assert data.functions[0].calls == 2


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_from_db_leaves_the_db_and_its_directory_untouched(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    write_records(db, varied_records(50))
    before = (_listing(tmp_path), hashlib.sha256(db.read_bytes()).hexdigest())
    ReportData.from_db(db)
    assert (_listing(tmp_path), hashlib.sha256(db.read_bytes()).hexdigest()) == before


def test_from_db_bad_paths(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(DBError, match=re.escape(str(missing))):
        ReportData.from_db(missing)
    assert _listing(tmp_path) == []
    text = tmp_path / "notes.txt"
    text.write_text("not a database")
    with pytest.raises(DBError, match=re.escape(str(text))):
        ReportData.from_db(text)
    assert _listing(tmp_path) == ["notes.txt"]


def test_non_list_stack_json(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    write_records(db, [])
    _insert_raw(db, [dict(function_name="f", call_stack=json.dumps("solo"), model="m", provider="p",
                          input_tokens=1, output_tokens=1, cost_usd=0.01, duration_ms=1.0, timestamp=1.0),
                     dict(function_name="f", call_stack="not json", model="m", provider="p",
                          input_tokens=1, output_tokens=1, cost_usd=0.01, duration_ms=1.0, timestamp=2.0)])
    data = ReportData.from_db(db)
    assert data == ReportData.from_records(store.load_records(db))
    assert sorted(c.name for c in data.stacks.children) == ["not json", "solo"]


def test_from_db_reads_a_db_with_a_live_writer(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    write_records(db, [rec("f", 0.01)] * 3)
    writer = store.open_writable(db)
    try:
        with store.transaction(writer):
            writer.execute("INSERT INTO llm_calls (function_name, model, provider, cost_usd) "
                           "VALUES ('g', 'm', 'p', 0.5)")
        before = _listing(tmp_path)
        assert (tmp_path / "calls.db-wal").exists()
        data = ReportData.from_db(db)
        assert data.totals.calls == 4 and data.totals.cost_usd == pytest.approx(0.53)
        assert _listing(tmp_path) == before
    finally:
        writer.close()


def test_keys_sql_keeps_apart_but_python_reads_alike_merge(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    write_records(db, [])
    row = dict(function_name="f", call_stack='["f"]', model="m", provider="p", input_tokens=1,
               output_tokens=1, cost_usd=0.01, duration_ms=1.0, timestamp=1.0)
    _insert_raw(db, [{**row, "session_id": 5}, {**row, "session_id": "5"}])
    data = ReportData.from_db(db)
    assert [(s.key, s.calls) for s in data.sessions] == [("5", 2)]
