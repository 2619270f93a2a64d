"""Trend and history on real SQLite DBs: cost per commit, the bounded history artifact, the CLI."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from tokenspy.ci import history, trend
from tokenspy.ci.api import annotate_cost_diff
from tokenspy.ci.markdown import Extras, render_markdown
from tokenspy.record import CallRecord
from tokenspy.store import write_records


def sha(i: int) -> str:
    return hashlib.sha1(str(i).encode()).hexdigest()


def write_commit(path: Path, i: int, inp: int, *, fn: str = "app.summarize", t0: float = 1_700_000_000.0) -> None:
    write_records(path, [CallRecord(function_name=fn, model="gpt-4o", provider="openai", input_tokens=inp,
                                    output_tokens=0, cost_usd=0.0, duration_ms=1.0, timestamp=t0 + i * 60,
                                    git_commit=sha(i), test_id="tests/t.py::test_a", run_id=f"run-{i}")])


def test_history_is_cost_per_commit_in_commit_order(tmp_path):
    db = tmp_path / "h.db"
    for i, inp in enumerate([1000, 1000, 2000, 4000]):
        write_commit(db, i, inp)
    write_commit(db, 3, 1000, fn="app.other")  # a second function in the last commit
    before = db.stat().st_mtime_ns
    t = trend.history(str(db))
    assert [p.commit for p in t.points] == [sha(i) for i in range(4)]
    # gpt-4o input at $2.50/M: 1000 tokens = $0.0025
    assert [round(p.cost_usd, 6) for p in t.points] == [0.0025, 0.0025, 0.005, 0.0125]
    only = trend.history(str(db), key="app.summ*")
    assert round(only.points[-1].cost_usd, 6) == 0.01
    assert [p.commit for p in trend.history(str(db), limit=2).points] == [sha(2), sha(3)]
    assert db.stat().st_mtime_ns == before  # read paths never write
    assert trend.sparkline([1, 1, 2, 4]) == "▁▁▃█"
    chart = trend.mermaid(t.with_point(trend.Point('PR #7"]\ninjected', 0.02)))
    assert chart.startswith("```mermaid\nxychart-beta\n") and chart.endswith("\n```")
    assert '"PR #7injected"' in chart and "\ninjected" not in chart


def test_history_append_is_bounded_and_idempotent(tmp_path):
    prev = tmp_path / "prev.db"
    for i in range(5):
        write_commit(prev, i, 1000 + i)
    cur = tmp_path / "cur.db"
    write_commit(cur, 5, 3000)
    out = history.append(prev, cur, tmp_path / "out" / "usage.db", keep=3)
    assert [p.commit for p in trend.history(str(out)).points] == [sha(3), sha(4), sha(5)]
    again = history.append(out, cur, tmp_path / "again.db", keep=3)  # a re-run adds nothing
    assert [p.commit for p in trend.history(str(again)).points] == [sha(3), sha(4), sha(5)]
    first = history.append(None, cur, tmp_path / "first.db")  # no previous artifact: starts over
    assert [p.commit for p in trend.history(str(first)).points] == [sha(5)]


def test_report_shows_chart_and_sparkline(tmp_path):
    base = tmp_path / "b.db"
    for i in range(3):
        write_commit(base, i, 1000 * (i + 1))
    cur = tmp_path / "c.db"
    write_commit(cur, 9, 6000)
    d = annotate_cost_diff(cur, base, format=None, github=False, pyproject=False)
    t = trend.history(str(base)).with_point(trend.Point("PR #7", d.current.cost_usd))
    text = render_markdown(d, extras=Extras("This PR", trend=t))
    assert "**Trend** (LLM cost per test run): ▁▂▄█ \\$0.002500 → \\$0.0150 (4 points)" in text
    assert '  x-axis ["' + sha(0)[:7] + '", "' + sha(1)[:7] + '", "' + sha(2)[:7] + '", "PR #7"]' in text


def test_trend_cli(tmp_path):
    db = tmp_path / "h.db"
    for i, inp in enumerate([1000, 3000]):
        write_commit(db, i, inp)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    run = subprocess.run([sys.executable, "-m", "tokenspy", "trend", "--db", str(db)], capture_output=True,
                         text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "last 2 commits: ▁█ $0.002500 → $0.007500" in run.stdout
    assert f"  {sha(1)[:7]}  $0.007500  +$0.005000" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "tokenspy", "trend", "--db", str(db), "--last", "0"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "'0'" in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "tokenspy", "trend", "--db", str(tmp_path / "none.db")],
                             capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 2 and "none.db" in missing.stderr
    assert not (tmp_path / "none.db").exists()
