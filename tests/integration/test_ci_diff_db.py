"""annotate_cost_diff on real SQLite DBs written through the store, and the GitHub env files."""

from __future__ import annotations

import hashlib
import io
import re
import sqlite3
from pathlib import Path

import pytest

from tokenspy import pricing, store
from tokenspy.ci import CostDiff, annotate_cost_diff
from tokenspy.ci.load import load_sides
from tokenspy.ci.markdown import render_markdown
from tokenspy.ci.query import Source
from tokenspy.record import CallRecord

TS = 1_750_000_000.0


def rec(fn: str, inp: int, out: int = 100, *, model: str = "gpt-4o", provider: str = "openai",
        test: str | None = None, run: str = "run-1", src: str | None = "src/app.py", line: int | None = 10,
        cached: int = 0, reasoning: int = 0, commit: str | None = None, cost: float = 0.0) -> CallRecord:
    return CallRecord(fn, model, provider, inp, out, cost, 5.0, TS, git_commit=commit, cached_input_tokens=cached,
                      reasoning_tokens=reasoning, test_id=test, source_file=src, source_line=line, run_id=run)


def snapshot(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture
def dbs(tmp_path):
    d = tmp_path / "dbs"
    d.mkdir()
    base, cur = d / "baseline.db", d / "current.db"
    store.write_records(base, [
        rec("app.summarize", 1000, test="tests/test_app.py::test_sum", cost=99.0),  # stored cost is ignored
        rec("app.classify", 500, 10, model="gpt-4o-mini", test="tests/test_app.py::test_cls", line=30),
        rec("app.legacy", 100, 10, line=50),
    ])
    store.write_records(cur, [
        rec("app.summarize", 1500, 150, test="tests/test_app.py::test_sum"),
        rec("app.classify", 500, 10, model="gpt-4o-mini", test="tests/test_app.py::test_cls", line=30),
        rec("app.fresh", 100, 10, line=70),
    ])
    return cur, base


def test_text_report_and_result(dbs, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    cur, base = dbs
    out = io.StringIO()
    d = annotate_cost_diff(cur, base, output=out, pyproject=False)
    assert isinstance(d, CostDiff)
    p4o = pricing.lookup("gpt-4o")
    assert d.total.baseline.cost_usd == pytest.approx(
        p4o.cost(1000, 100) + p4o.cost(100, 10) + pricing.lookup("gpt-4o-mini").cost(500, 10))
    kinds = {r.key: r.change for r in d.functions}
    assert kinds == {"app.summarize": "increased", "app.classify": "unchanged", "app.legacy": "removed",
                     "app.fresh": "new"}
    assert {r.key for r in d.tests} == {"tests/test_app.py::test_sum", "tests/test_app.py::test_cls"}
    assert {r.key for r in d.models} == {"gpt-4o", "gpt-4o-mini"}
    assert d.verdict == "pass" and d.regressions and d.mode == "exact"
    assert d.table_version == pricing.table_version()
    text = out.getvalue()
    assert text.startswith("tokenspy: ") and "app.summarize" in text and "::" not in text.replace("::test", "")
    assert f"tokenspy diff {cur} {base}" in text


def test_reads_never_write(dbs, monkeypatch, tmp_path):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    cur, base = dbs
    before = snapshot(cur.parent)
    annotate_cost_diff(cur, base, output=io.StringIO(), pyproject=False)
    annotate_cost_diff(cur, None, output=io.StringIO(), pyproject=False, format="markdown")
    assert snapshot(cur.parent) == before


def test_reads_never_write_while_a_writer_is_live(dbs, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    cur, base = dbs
    writer = store.open_writable(base)  # a live writer: -wal and -shm beside the file
    try:
        writer.execute("SELECT COUNT(*) FROM llm_calls").fetchone()
        names = {p.name for p in base.parent.iterdir()}
        before = snapshot(base.parent)
        d = annotate_cost_diff(cur, base, output=io.StringIO(), pyproject=False)
        assert d.baseline.calls == 3
        assert {p.name for p in base.parent.iterdir()} == names
        assert snapshot(base.parent) == before
    finally:
        writer.close()


def test_old_schema_db_is_read_not_migrated(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.execute(
        "CREATE TABLE llm_calls (id INTEGER PRIMARY KEY AUTOINCREMENT, function_name TEXT, call_stack TEXT, "
        "model TEXT, provider TEXT, input_tokens INTEGER, output_tokens INTEGER, cost_usd REAL, "
        "duration_ms REAL, timestamp REAL, session_id TEXT, git_commit TEXT)")
    conn.executemany(
        "INSERT INTO llm_calls (function_name, call_stack, model, provider, input_tokens, output_tokens, cost_usd, "
        "duration_ms, timestamp, session_id, git_commit) VALUES (?, '[]', ?, 'openai', ?, ?, 0, 1, ?, 's', NULL)",
        [("summarize", "gpt-4o", 1000, 100, TS), ("summarize", "gpt-4o", 1000, 100, TS + 1)])
    conn.commit()
    conn.close()
    before = snapshot(tmp_path)
    cur = tmp_path / "cur.db"
    store.write_records(cur, [rec("summarize", 1000), rec("summarize", 1000)])
    d = annotate_cost_diff(cur, old, output=io.StringIO(), pyproject=False)
    assert d.total.change == "unchanged" and d.baseline.calls == 2 and d.baseline.runs == 1
    assert d.mode == "exact" and not d.tests
    after = snapshot(tmp_path)
    assert after.pop("cur.db") and after == before  # the old DB: same bytes, no -wal, no -shm


def test_missing_or_bad_baseline_is_an_error(dbs, tmp_path):
    cur, _ = dbs
    missing = tmp_path / "nope.db"
    with pytest.raises(store.DBError, match=re.escape(str(missing))):
        annotate_cost_diff(cur, missing, output=io.StringIO())
    assert not missing.exists()
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    with pytest.raises(store.DBError, match="not a SQLite database"):
        annotate_cost_diff(cur, junk, output=io.StringIO())


def test_no_baseline(dbs, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    cur, _ = dbs
    out = io.StringIO()
    d = annotate_cost_diff(cur, output=out, fail_on_regression=True, pyproject=False)
    assert d.verdict == "pass" and not d.has_baseline and not d.regressions
    assert "no baseline" in out.getvalue()
    assert "(no baseline to compare with)" in render_markdown(d)


def test_noise_mode_from_run_ids(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    base, cur = tmp_path / "b.db", tmp_path / "c.db"
    store.write_records(base, [rec("f", v, test="tests/t.py::t", run=f"b{i}")
                               for i, v in enumerate([1000, 1200, 800, 1100, 900])])
    store.write_records(cur, [rec("f", 1150, test="tests/t.py::t", run=f"c{i}") for i in range(3)])
    d = annotate_cost_diff(cur, base, output=io.StringIO(), pyproject=False)
    assert d.mode == "noise" and d.baseline.samples == 5 and d.current.samples == 3
    row = d.functions[0]
    assert row.beyond_noise is False and not row.regression  # +11%: over 10%, within noise
    d = annotate_cost_diff(cur, base, output=io.StringIO(), pyproject=False, noise_sigma=0.1)
    assert d.functions[0].regression


def test_tiered_model_priced_per_call_tier(tmp_path):
    calls = [(150_000, 1000), (250_000, 2000), (199_999, 10), (200_001, 10), (5_000, 500)]
    db = tmp_path / "g.db"
    store.write_records(db, [rec("f", i, o, model="gemini-2.5-pro", provider="google") for i, o in calls])
    side = load_sides([Source(str(db))], now=TS)[0]
    price = pricing.lookup("gemini-2.5-pro", "google")
    assert side.total.usage.cost_usd == pytest.approx(sum(price.cost(i, o, timestamp=TS) for i, o in calls))


def test_model_with_a_tier_boundary_outside_the_splits_is_re_read(tmp_path):
    # A real ModelPrice with a cliff at 150k input tokens (no known model has one there).
    base_vec = (1.0, 0.5, 1.0, 1.0, 4.0, 4.0, 0.0)
    high_vec = (3.0, 1.5, 3.0, 3.0, 9.0, 9.0, 0.0)
    price = pricing.ModelPrice("cliff-model", "custom", (base_vec, ((150_000, high_vec),)))
    calls = [(140_000, 10), (160_000, 20), (120_000, 5), (5_000, 1)]
    db = tmp_path / "t.db"
    store.write_records(db, [rec("f", i, o, model="cliff-model", provider="custom", test=f"t{k}")
                             for k, (i, o) in enumerate(calls)])
    side = load_sides([Source(str(db))], lookup=lambda m, p: price if m == "cliff-model" else None, now=TS)[0]
    assert side.total.usage.cost_usd == pytest.approx(sum(price.cost(i, o, timestamp=TS) for i, o in calls))
    assert side.total.usage.calls == 4 and set(side.keys["test"]) == {"t0", "t1", "t2", "t3"}


# ------------------------------------------------------------------------------ GitHub Actions


def parse_outputs(text: str) -> dict[str, str]:
    out, lines, i = {}, text.split("\n"), 0
    while i < len(lines) and lines[i]:
        name, delim = lines[i].split("<<", 1)
        end = lines.index(delim, i + 1)
        out[name] = "\n".join(lines[i + 1:end])
        i = end + 1
    return out


@pytest.fixture
def actions_env(tmp_path, monkeypatch):
    env = tmp_path / "gh"
    (env / "runner-temp").mkdir(parents=True)
    files = {"summary": env / "summary.md", "output": env / "output.txt", "temp": env / "runner-temp"}
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output"]))
    monkeypatch.setenv("RUNNER_TEMP", str(files["temp"]))
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    files["summary"].write_text("previous step content\n")
    return files


def test_github_annotations_summary_outputs(dbs, actions_env):
    cur, base = dbs
    out = io.StringIO()
    d = annotate_cost_diff(cur, base, output=out, fail_on_regression=True, pyproject=False)
    assert d.verdict == "fail"
    lines = out.getvalue().split("\n")
    # the human-readable report is printed with workflow commands off
    token = lines[0].removeprefix("::stop-commands::")
    end = lines.index(f"::{token}::")
    commands = [x for x in lines[end + 1:] if x]
    assert commands and all(x.startswith("::error ") for x in commands)
    assert any("file=src/app.py,line=10,title=tokenspy%3A cost regression in app.summarize::" in x for x in commands)
    assert any("title=tokenspy%3A cost regression in app.fresh" in x and "line=70" in x for x in commands)
    summary = actions_env["summary"].read_text()
    assert summary.startswith("previous step content\n<!-- tokenspy -->\n")
    outputs = parse_outputs(actions_env["output"].read_text())
    assert outputs["verdict"] == "fail" and outputs["regressions"] == str(len(d.regressions))
    assert float(outputs["current-total-usd"]) == pytest.approx(d.total.current.cost_usd, abs=1e-6)
    assert float(outputs["baseline-total-usd"]) == pytest.approx(d.total.baseline.cost_usd, abs=1e-6)
    assert float(outputs["delta-usd"]) == pytest.approx(d.total.delta_usd, abs=1e-6)
    assert float(outputs["delta-pct"]) == pytest.approx(d.total.delta_pct, abs=0.01)
    report = Path(outputs["report-path"])
    assert report.parent == actions_env["temp"] and report.read_text().startswith("<!-- tokenspy -->")


def test_github_warnings_when_not_failing_and_json_keeps_stdout_clean(dbs, actions_env, capsys):
    cur, base = dbs
    d = annotate_cost_diff(cur, base, format="json", pyproject=False)
    assert d.verdict == "pass"
    captured = capsys.readouterr()
    import json

    assert json.loads(captured.out)["verdict"] == "pass"
    assert any(x.startswith("::warning ") for x in captured.err.splitlines())


def test_github_off_writes_nothing(dbs, actions_env):
    cur, base = dbs
    out = io.StringIO()
    annotate_cost_diff(cur, base, output=out, github=False, pyproject=False)
    assert "::" not in out.getvalue().replace("::test_", "")
    assert actions_env["summary"].read_text() == "previous step content\n"
    assert not actions_env["output"].exists() and not list(actions_env["temp"].iterdir())


def test_hostile_names_from_the_db_cannot_inject_commands(tmp_path, actions_env):
    base, cur = tmp_path / "b.db", tmp_path / "c.db"
    evil = "x\n::error file=evil.py::owned\r\n::set-output name=verdict::pass"
    store.write_records(base, [rec("ok", 100)])
    store.write_records(cur, [rec("ok", 100), rec(evil, 5000, test=evil)])
    out = io.StringIO()
    annotate_cost_diff(cur, base, output=out, pyproject=False, format="markdown")
    lines = out.getvalue().split("\n")
    token = lines[0].removeprefix("::stop-commands::")
    end = lines.index(f"::{token}::")
    commands = [x for x in lines[end + 1:] if x]
    assert commands
    for line in commands:
        # one command per line, whose properties are ours: the name stays inside escaped values
        head, sep, _ = line[2:].partition("::")
        level, _, props = head.partition(" ")
        assert sep and level in ("warning", "error", "notice"), line
        pairs = dict(kv.split("=", 1) for kv in props.split(","))
        assert set(pairs) <= {"file", "line", "title"}
        assert pairs.get("file") in (None, "src/app.py")
    assert "\n::error file=evil.py" not in actions_env["summary"].read_text()
