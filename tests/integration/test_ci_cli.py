"""`tokenspy diff|annotate|compare|combine`: exit codes, one-line errors, formats, combine idempotence."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tokenspy import store
from tokenspy.cli import main
from tokenspy.record import CallRecord

SRC = Path(__file__).resolve().parents[2] / "src"


def rec(fn: str, inp: int, run: str = "r1", commit: str | None = None) -> CallRecord:
    return CallRecord(fn, "gpt-4o", "openai", inp, 100, 0.0, 1.0, 1.75e9, git_commit=commit,
                      test_id=f"tests/test_x.py::test_{fn}", source_file="src/app.py", source_line=1, run_id=run)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.chdir(tmp_path)  # no pyproject.toml above a pytest tmp dir


@pytest.fixture
def dbs(tmp_path):
    base, cur = tmp_path / "base.db", tmp_path / "cur.db"
    store.write_records(base, [rec("a", 1000), rec("b", 1000)])
    store.write_records(cur, [rec("a", 1500), rec("b", 1000)])  # a: +50%
    return str(cur), str(base)


def sha(p: str | Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def test_exit_codes(dbs, capsys):
    cur, base = dbs
    assert main(["diff", cur, base]) == 0  # increases reported, not failing
    assert "1 cost increase over the warn threshold (not failing)" in capsys.readouterr().out
    assert main(["diff", cur, base, "--fail-on-regression"]) == 1
    assert main(["annotate", cur, base, "--fail-on-regression"]) == 1
    assert main(["diff", cur, base, "--fail-on-regression", "--max-increase-pct", "60"]) == 0
    assert main(["diff", cur, base, "--fail-on-regression", "--max-increase-usd", "1"]) == 0
    # overrides apply to keys; the total (+25%) keeps the global threshold
    assert main(["diff", cur, base, "--fail-on-regression", "--override", "*=60"]) == 1
    assert main(["diff", cur, base, "--fail-on-regression", "--override", "*=60", "--max-increase-pct", "30"]) == 0
    assert main(["diff", cur, "--fail-on-regression"]) == 0  # no baseline: a report, pass


@pytest.mark.parametrize(("argv", "fragment"), [
    (["diff", "{tmp}/missing.db"], "missing.db: no such database file"),
    (["diff", "{cur}", "{tmp}/missing.db"], "missing.db: no such database file"),
    (["diff", "{cur}", "{base}", "--max-increase-pct", "ten"],
     "argument --fail-pct/--max-increase-pct: not a number: 'ten'"),
    (["diff", "{cur}", "{base}", "--max-increase-usd", "-1"], "must be a non-negative number"),
    (["diff", "{cur}", "{base}", "--noise-sigma", "nan"], "argument --noise-sigma"),
    (["diff", "{cur}", "{base}", "--override", "oops"], "--override 'oops'"),
    (["compare", "nope1", "HEAD", "--db", "{cur}"], "unknown revision 'nope1'"),
    (["compare", "a" * 40, "b" * 40, "--db", "{cur}"], "has no rows in"),
    (["combine", "{tmp}/out.db", "{tmp}/missing.db"], "missing.db: no such database file"),
])
def test_usage_and_data_errors_exit_2_with_one_line(dbs, tmp_path, capsys, argv, fragment):
    cur, base = dbs
    argv = [a.format(tmp=tmp_path, cur=cur, base=base) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors (bad flag values) exit from the parser
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("tokenspy: error: ") and err.count("\n") == 1, err
    assert fragment in err
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "out.db").exists()


def test_pyproject_thresholds_and_flags_precedence(dbs, tmp_path):
    cur, base = dbs
    (tmp_path / "pyproject.toml").write_text(
        "[tool.tokenspy.ci]\nmax_increase_pct = 80\nfail_on_regression = true\n")
    assert main(["diff", cur, base]) == 0  # +50% < 80%
    assert main(["diff", cur, base, "--max-increase-pct", "20"]) == 1  # flag beats pyproject
    (tmp_path / "pyproject.toml").write_text("[tool.tokenspy.ci]\nmax_increase_pct = 'x'\n")
    assert main(["diff", cur, base]) == 2


def test_formats(dbs, capsys):
    cur, base = dbs
    assert main(["diff", cur, base, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "pass" and data["mode"] == "exact"
    assert {r["key"] for r in data["functions"]} == {"a", "b"}
    assert data["total"]["delta_pct"] == pytest.approx(100 * data["total"]["delta_usd"]
                                                       / data["total"]["baseline"]["cost_usd"])
    assert main(["diff", cur, base, "--format", "markdown"]) == 0
    assert capsys.readouterr().out.startswith("<!-- tokenspy -->\n")


def test_diff_leaves_the_dbs_byte_identical(dbs, tmp_path):
    cur, base = dbs
    before = {p.name: sha(p) for p in tmp_path.iterdir()}
    main(["diff", cur, base, "--format", "json"])
    main(["diff", base, cur])
    assert {p.name: sha(p) for p in tmp_path.iterdir()} == before


def test_compare_uses_the_local_default_db(tmp_path, capsys):
    (tmp_path / ".git").mkdir()  # the DB of the work tree around the cwd (tokenspy.dbpath)
    c1, c2 = "1" * 40, "2" * 40
    store.write_records(tmp_path / ".tokenspy" / "usage.db", [rec("a", 1000, commit=c1), rec("a", 3000, commit=c2)])
    assert main(["compare", c1, c2, "--fail-on-regression"]) == 1
    assert "tokenspy compare 111111111111 222222222222" in capsys.readouterr().out


def test_subprocess_python_m_tokenspy(dbs):
    cur, base = dbs
    env = {**os.environ, "PYTHONPATH": str(SRC), "GITHUB_ACTIONS": ""}
    proc = subprocess.run([sys.executable, "-m", "tokenspy", "diff", cur, base, "--fail-on-regression"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "verdict fail" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "tokenspy", "diff", cur, "/nonexistent/x.db"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stderr == "tokenspy: error: /nonexistent/x.db: no such database file\n"


# ------------------------------------------------------------------------------------ combine


def count(db: Path) -> int:
    conn = store.open_readonly(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0]
    finally:
        conn.close()


def test_combine_is_idempotent_and_leaves_inputs_alone(tmp_path, capsys):
    s1, s2, out = tmp_path / "s1.db", tmp_path / "s2.db", tmp_path / "out" / "all.db"
    store.write_records(s1, [rec("a", 1), rec("b", 2)])
    store.write_records(s2, [rec("c", 3)])
    sums = (sha(s1), sha(s2))
    assert main(["combine", str(out), str(s1), str(s2)]) == 0
    assert "3 rows added, 0 already present" in capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert main(["combine", str(out), str(s1), str(s1), str(s2)]) == 0
    assert "0 rows added, 5 already present" in capsys.readouterr().out
    assert count(out) == 3 and (sha(s1), sha(s2)) == sums
    store.write_records(s2, [rec("d", 4)])  # the shard grew: only the new row is added
    assert main(["combine", str(out), str(s2)]) == 0
    assert count(out) == 4
    assert main(["combine", str(out), str(out)]) == 2  # not into itself


def test_combine_old_db_without_call_uid(tmp_path):
    old, out = tmp_path / "old.db", tmp_path / "out.db"
    conn = sqlite3.connect(old)
    conn.execute(
        "CREATE TABLE llm_calls (id INTEGER PRIMARY KEY AUTOINCREMENT, function_name TEXT, call_stack TEXT, "
        "model TEXT, provider TEXT, input_tokens INTEGER, output_tokens INTEGER, cost_usd REAL, "
        "duration_ms REAL, timestamp REAL, session_id TEXT, git_commit TEXT)")
    conn.executemany("INSERT INTO llm_calls (function_name, call_stack, model, provider, input_tokens, output_tokens,"
                     " cost_usd, duration_ms, timestamp) VALUES (?, '[]', 'gpt-4o', 'openai', 10, 1, 0, 1, 5)",
                     [("same",), ("same",)])  # two identical rows are still two calls (ids differ)
    conn.commit()
    conn.close()
    before = sha(old)
    assert main(["combine", str(out), str(old)]) == 0
    assert main(["combine", str(out), str(old)]) == 0
    assert count(out) == 2 and sha(old) == before
    conn = store.open_readonly(out)
    uids = [r[0] for r in conn.execute("SELECT call_uid FROM llm_calls")]
    cached = conn.execute("SELECT cached_input_tokens, priced FROM llm_calls").fetchall()
    conn.close()
    assert len(set(uids)) == 2 and all(u.startswith("legacy-") for u in uids)
    assert cached == [(0, 1), (0, 1)]


def test_warn_and_fail_levels_from_flags_and_pyproject(dbs, tmp_path, capsys):
    cur, base = dbs  # a: +50%
    assert main(["diff", cur, base, "--warn-pct", "5", "--fail-pct", "60", "--fail-on-regression"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tokenspy: no cost regression; 1 cost increase over the warn threshold, verdict pass")
    assert main(["diff", cur, base, "--warn-pct", "5", "--fail-pct", "30", "--fail-on-regression"]) == 1
    # the older flag is the fail level
    assert main(["diff", cur, base, "--max-increase-pct", "30", "--fail-on-regression"]) == 1
    capsys.readouterr()
    (tmp_path / "pyproject.toml").write_text("[tool.tokenspy.ci]\nwarn_pct = 5\nfail_pct = 60\n")
    assert main(["diff", cur, base, "--fail-on-regression"]) == 0
    assert "thresholds: warn +5%, fail +60%" in capsys.readouterr().out
    assert main(["diff", cur, base]) == 0
    assert capsys.readouterr().out.startswith("tokenspy: 1 cost increase over the warn threshold (not failing)")
    (tmp_path / "pyproject.toml").write_text("[tool.tokenspy.ci]\nfail_pct = 60\nmax_increase_pct = 10\n")
    assert main(["diff", cur, base]) == 2
    assert "fail_pct and max_increase_pct" in capsys.readouterr().err
