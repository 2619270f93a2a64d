"""Runs of different code are never averaged (issue 18): the plugin records each run's git state,
``diff`` and ``compare`` take one code state per side and say which. Real pytest runs (pytester)
of a sample project in a real git repository, the real CLI."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import git
import openai  # noqa: F401  (imported here so in-process pytester runs share the patched SDK)
import pytest

from tokenspy.cli import main

TESTS = """
MSG = [{"role": "user", "content": "Summarize this."}]

def test_summarize(client):
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
"""
# what the issue did without committing: a dearer model and a longer prompt
DEARER = TESTS.replace("gpt-4o-mini", "gpt-4o").replace("Summarize this.", "Summarize this. " * 20)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch) -> pytest.Pytester:
    from test_pytest_plugin import CONFTEST

    for name in ("GITHUB_ACTIONS", "TOKENSPY_DB", "TOKENSPY_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_app=TESTS)
    repo = git.Repo.init(pytester.path)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "t").set_value("user", "email", "t@example.com")
    (pytester.path / ".gitignore").write_text(".tokenspy/\n*.db\n__pycache__/\n")
    repo.index.add(["conftest.py", "test_app.py", ".gitignore"])
    repo.index.commit("v1")
    repo.close()
    return pytester


def runs_of(db: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM runs ORDER BY started_at").fetchall()
    finally:
        conn.close()


def commit(path: Path, message: str) -> str:
    repo = git.Repo(path)
    try:
        repo.index.add(["test_app.py"])
        return repo.index.commit(message).hexsha
    finally:
        repo.close()


def test_each_run_records_its_commit_and_whether_the_tree_was_dirty(project):
    db = project.path / ".tokenspy" / "usage.db"
    project.runpytest("--tokenspy").assert_outcomes(passed=1)
    project.makepyfile(test_app=DEARER)  # not committed
    project.runpytest("--tokenspy").assert_outcomes(passed=1)
    clean, dirty = runs_of(db)
    head = git.Repo(project.path).head.commit.hexsha
    assert clean["git_commit"] == dirty["git_commit"] == head
    assert (clean["dirty"], clean["fingerprint"]) == (0, "")
    assert dirty["dirty"] == 1 and len(dirty["fingerprint"]) == 64
    assert clean["calls"] == dirty["calls"] == 1


def test_a_dirty_rerun_is_not_averaged_with_the_clean_run(project, capsys, monkeypatch):
    db = project.path / ".tokenspy" / "usage.db"
    project.runpytest("--tokenspy").assert_outcomes(passed=1)
    baseline = project.path / "baseline.db"
    shutil.copy(db, baseline)
    project.makepyfile(test_app=DEARER)
    project.runpytest("--tokenspy").assert_outcomes(passed=1)
    monkeypatch.chdir(project.path)
    capsys.readouterr()
    rc = main(["diff", str(db), str(baseline), "--max-increase-pct", "10", "--fail-on-regression"])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert out.startswith("tokenspy: 1 cost regression, verdict fail")
    assert "mean of 2 runs" not in out
    # the DB holds two code states: the report says which one it used
    assert "holds runs of 2 code states; used 1 run of" in out and "uncommitted changes" in out


def test_compare_uses_clean_runs_and_says_when_it_left_a_dirty_one_out(project, capsys, monkeypatch):
    # in subprocesses: three runs and a commit in between, isolated from what earlier in-process
    # runs left in sys.modules
    db = project.path / ".tokenspy" / "usage.db"
    project.runpytest_subprocess("--tokenspy").assert_outcomes(passed=1)
    project.makepyfile(test_app=DEARER)
    commit(project.path, "v2: dearer")
    project.runpytest_subprocess("--tokenspy").assert_outcomes(passed=1)
    monkeypatch.chdir(project.path)
    assert main(["compare", "HEAD~1", "HEAD", "--fail-on-regression"]) == 1
    # a re-run of HEAD with the change undone in the work tree
    project.makepyfile(test_app=TESTS)
    project.runpytest_subprocess("--tokenspy").assert_outcomes(passed=1)
    capsys.readouterr()
    rc = main(["compare", "HEAD~1", "HEAD", "--fail-on-regression", "--db", str(db)])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "left out 1 run with uncommitted changes" in out


def test_repeats_of_identical_code_are_averaged(project, capsys, monkeypatch):
    db = project.path / ".tokenspy" / "usage.db"
    for _ in range(2):
        project.runpytest("--tokenspy").assert_outcomes(passed=1)
    monkeypatch.chdir(project.path)
    capsys.readouterr()
    assert main(["diff", str(db)]) == 0
    out = capsys.readouterr().out
    assert "current: mean of 2 runs of" in out and "(clean)" in out


def test_a_suite_without_llm_calls_is_a_run_of_zero_cost(project, capsys, monkeypatch):
    db = project.path / ".tokenspy" / "usage.db"
    project.runpytest("--tokenspy").assert_outcomes(passed=1)
    baseline = project.path / "baseline.db"
    shutil.copy(db, baseline)
    project.makepyfile(test_app="def test_plain():\n    assert True\n")
    project.runpytest("--tokenspy").assert_outcomes(passed=1)
    assert [r["calls"] for r in runs_of(db)] == [1, 0]
    monkeypatch.chdir(project.path)
    capsys.readouterr()
    assert main(["diff", str(db), str(baseline), "--fail-on-regression"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tokenspy: no LLM calls in this run; no cost")
    assert "removed" in out


def test_an_empty_baseline_is_no_baseline(project, capsys, monkeypatch, tmp_path):
    db = project.path / ".tokenspy" / "usage.db"
    project.runpytest("--tokenspy").assert_outcomes(passed=1)
    empty = tmp_path / "empty.db"
    from tokenspy import store

    store.open_writable(empty).close()  # a DB with tokenspy's tables and no run
    before = empty.read_bytes()
    capsys.readouterr()
    assert main(["diff", str(db), str(empty), "--fail-on-regression"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tokenspy: LLM cost $")  # the report of the current run, not a diff
    assert "no baseline" in out.splitlines()[0] and "holds no run" in out
    assert "baseline: 1 run" not in out and "REGRESSION" not in out
    assert empty.read_bytes() == before


def test_the_gates_reproduce_line_works_after_the_run(project, monkeypatch, capsys):
    db = project.path / ".tokenspy" / "usage.db"
    project.runpytest("--tokenspy").assert_outcomes(passed=1)
    baseline = project.path / "baseline.db"
    shutil.move(db, baseline)
    project.makepyfile(test_app=DEARER)
    result = project.runpytest("--tokenspy", f"--tokenspy-baseline={baseline}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    [line] = [x for x in result.stdout.lines if x.startswith("reproduce: ")]
    argv = line.removeprefix("reproduce: ").split()
    assert argv[:2] == ["tokenspy", "diff"] and "--run" in argv
    assert all(Path(a).exists() for a in argv[2:4])  # nothing in a deleted temp dir
    # a later run does not change what the line reproduces
    project.runpytest("--tokenspy").assert_outcomes(passed=1)
    monkeypatch.chdir(project.path)
    capsys.readouterr()
    assert main(argv[1:]) == 1
    assert capsys.readouterr().out.startswith("tokenspy: 1 cost regression, verdict fail")


def test_budget_marker_is_checked_without_the_plugin(project):
    project.makepyfile(test_app="""
        import pytest
        MSG = [{"role": "user", "content": "hi"}]

        @pytest.mark.tokenspy_budget(usd=0.000001)
        def test_dear(client):
            client.chat.completions.create(model="gpt-4o", messages=MSG)

        def test_unmarked(client):
            client.chat.completions.create(model="gpt-4o", messages=MSG)
    """)
    result = project.runpytest()  # no --tokenspy
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_dear*", "*over this test's budget of $0.000001*"])
    assert not (project.path / ".tokenspy").exists()  # recorded in memory only


def test_the_plugin_and_the_commands_share_one_db_rule(project, monkeypatch, capsys, tmp_path):
    # the README's and the demo's hint: after `pytest --tokenspy`, `tokenspy report` finds the run
    (project.path / "pkg").mkdir()
    project.runpytest("--tokenspy").assert_outcomes(passed=1)
    monkeypatch.chdir(project.path / "pkg")
    capsys.readouterr()
    assert main(["report"]) == 0
    assert "test_app" in capsys.readouterr().out
    # TOKENSPY_DB moves both
    elsewhere = tmp_path / "costs.db"
    monkeypatch.setenv("TOKENSPY_DB", str(elsewhere))
    monkeypatch.chdir(project.path)
    project.runpytest("--tokenspy").assert_outcomes(passed=1)
    assert [r["calls"] for r in runs_of(elsewhere)] == [1]
    capsys.readouterr()
    assert main(["history"]) == 0 and "gpt-4o-mini" in capsys.readouterr().out
