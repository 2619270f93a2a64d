"""The pytest plugin, driven through real pytest runs (pytester) of a small sample project whose
tests call a real OpenAI client over httpx2.MockTransport."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import git
import openai  # noqa: F401  (imported here so in-process pytester runs share the patched SDK)
import pytest

WIRE_DIR = str(Path(__file__).resolve().parents[1])

CONFTEST = f"""
import sys
sys.path.insert(0, {WIRE_DIR!r})
import pytest
from wire import Wire, openai_clients

@pytest.fixture
def client():
    return openai_clients(Wire())[0]

@pytest.fixture
def warmed(client):
    client.embeddings.create(model="text-embedding-3-small", input="warm-up")  # a call in setup
    yield client
    client.embeddings.create(model="text-embedding-3-small", input="cool-down")  # and in teardown
"""

TESTS = """
import tokenspy

MSG = [{"role": "user", "content": "hi"}]

@tokenspy.profile
def summarize(client):
    return client.chat.completions.create(model="gpt-4o", messages=MSG)

def test_two_calls(client):
    client.chat.completions.create(model="gpt-4o", messages=MSG)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)

def test_profiled(client):
    summarize(client)

def test_fixture_calls(warmed):
    pass

def test_no_llm():
    assert True
"""


def make_project(pytester: pytest.Pytester, tests: str = TESTS, extra: str = "") -> Path:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_sample=tests + extra)
    repo = git.Repo.init(pytester.path)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "t").set_value("user", "email", "t@example.com")
    repo.index.add(["conftest.py", "test_sample.py"])
    repo.index.commit("sample")
    return pytester.path / ".tokenspy" / "usage.db"


def line_of(pytester: pytest.Pytester, text: str) -> int:
    lines = (pytester.path / "test_sample.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(text))


def db_rows(db: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM llm_calls ORDER BY id").fetchall()
    finally:
        conn.close()


def test_rows_per_test_with_locations_run_and_commit(pytester):
    db = make_project(pytester)
    result = pytester.runpytest("--tokenspy", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    rows = db_rows(db)
    head = git.Repo(pytester.path).head.commit.hexsha
    by_test: dict[str, list[sqlite3.Row]] = {}
    for r in rows:
        by_test.setdefault(r["test_id"], []).append(r)
    assert sorted(by_test) == ["test_sample.py::test_fixture_calls", "test_sample.py::test_profiled",
                               "test_sample.py::test_two_calls"]
    two = by_test["test_sample.py::test_two_calls"]
    assert [r["model"] for r in two] == ["gpt-4o", "gpt-4o-mini"]
    location = ("test_sample.py", line_of(pytester, "def test_two_calls"))
    assert {(r["source_file"], r["source_line"]) for r in two} == {location}
    assert two[0]["function_name"] == "test_sample.test_two_calls"
    assert {r["run_id"] for r in rows} == {rows[0]["run_id"]} and rows[0]["run_id"]
    assert {r["git_commit"] for r in rows} == {head}
    (profiled,) = by_test["test_sample.py::test_profiled"]
    assert profiled["function_name"] == "summarize"
    # the profiled function keeps its own location
    assert profiled["source_line"] == line_of(pytester, "def summarize") - 1  # the decorator line


def test_fixture_calls_belong_to_the_requesting_test_with_phase(pytester):
    db = make_project(pytester)
    pytester.runpytest("--tokenspy").assert_outcomes(passed=4)
    rows = [r for r in db_rows(db) if r["test_id"] == "test_sample.py::test_fixture_calls"]
    import json

    stacks = [json.loads(r["call_stack"]) for r in rows]
    assert [s[0] for s in stacks] == ["<setup>", "<teardown>"]
    assert all(s[1] == "conftest.warmed" for s in stacks)


def test_terminal_summary_lists_top_tests(pytester):
    make_project(pytester)
    result = pytester.runpytest("--tokenspy", "--tokenspy-top=2")
    result.stdout.fnmatch_lines([
        "*tokenspy: LLM cost*",
        "5 LLM call(s), * tokens*total $0.0*",
        "top 2 test(s) by cost:",
        "*test_sample.py::test_two_calls",
        "*test_sample.py::test_profiled",
    ])


def test_no_llm_call_no_output_and_a_run_of_zero_calls(pytester):
    db = make_project(pytester, tests="def test_plain():\n    assert 1\n")
    result = pytester.runpytest("--tokenspy")
    result.assert_outcomes(passed=1)
    assert "tokenspy:" not in result.stdout.str()
    # a suite without LLM calls is a valid run (of $0), not a missing one
    assert db_rows(db) == []
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT calls FROM runs").fetchall() == [(0,)]
    finally:
        conn.close()


def test_inactive_without_the_flag(pytester):
    db = make_project(pytester)
    result = pytester.runpytest()
    result.assert_outcomes(passed=4)
    assert "tokenspy:" not in result.stdout.str()
    assert not db.exists()


def test_enabled_from_pyproject_and_custom_path(pytester):
    make_project(pytester)
    pytester.makefile(".toml", pyproject='[tool.tokenspy]\npytest = "costs/llm.db"\n')
    pytester.runpytest().assert_outcomes(passed=4)
    assert len(db_rows(pytester.path / "costs" / "llm.db")) == 5


def test_budget_marker_fails_only_the_dear_test(pytester):
    make_project(pytester, tests=textwrap.dedent("""
        import pytest
        MSG = [{"role": "user", "content": "hi"}]

        @pytest.mark.tokenspy_budget(usd=0.01)
        def test_cheap(client):
            client.chat.completions.create(model="gpt-4o", messages=MSG)

        @pytest.mark.tokenspy_budget(usd=0.005)
        def test_dear(client):
            for _ in range(3):
                client.chat.completions.create(model="gpt-4o", messages=MSG)
    """))
    result = pytester.runpytest("--tokenspy")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_dear*", "*over this test's budget of $0.005000*"])


def test_tokenspy_session_fixture(pytester):
    make_project(pytester, tests=textwrap.dedent("""
        def test_session(client, tokenspy_session):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
            assert tokenspy_session.calls == 1
            assert tokenspy_session.tokens == 1500
            assert tokenspy_session.cost > 0
    """))
    pytester.runpytest("--tokenspy").assert_outcomes(passed=1)


def test_xdist_two_workers_all_calls_land_one_run(pytester):
    many = "\n".join(
        f"def test_{i}(client):\n    client.chat.completions.create(model='gpt-4o', messages=[])\n"
        for i in range(12)
    )
    db = make_project(pytester, tests=many)
    result = pytester.runpytest_subprocess("--tokenspy", "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=12)
    rows = db_rows(db)
    assert len(rows) == 12
    assert len({r["run_id"] for r in rows}) == 1
    assert len({r["test_id"] for r in rows}) == 12
    # the summary is printed once, by the controller, over every worker's calls
    assert result.stdout.str().count("tokenspy: LLM cost") == 1
    result.stdout.fnmatch_lines(["12 LLM call(s)*"])


def _baseline_from_first_run(pytester: pytest.Pytester, db: Path) -> Path:
    baseline = pytester.path / "baseline.db"
    db.rename(baseline)
    return baseline


def test_gate_passes_when_cost_is_unchanged(pytester):
    db = make_project(pytester)
    pytester.runpytest("--tokenspy").assert_outcomes(passed=4)
    baseline = _baseline_from_first_run(pytester, db)
    result = pytester.runpytest("--tokenspy", f"--tokenspy-baseline={baseline}")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*tokenspy: cost diff against baseline*", "*no cost regression, verdict pass*"])


def test_gate_fails_the_session_on_a_regression(pytester):
    db = make_project(pytester)
    pytester.runpytest("--tokenspy").assert_outcomes(passed=4)
    baseline = _baseline_from_first_run(pytester, db)
    # the same tests, but test_two_calls now makes a third call
    dearer = TESTS.replace(
        '    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)\n',
        '    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)\n'
        '    client.chat.completions.create(model="gpt-4o", messages=MSG)\n',
    )
    pytester.makepyfile(test_sample=dearer)
    result = pytester.runpytest("--tokenspy", f"--tokenspy-baseline={baseline}")
    result.assert_outcomes(passed=4)  # every test passed, yet the run fails on cost
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*tokenspy: cost diff against baseline*", "*test_two_calls*"])
    # a generous threshold lets the same change through
    loose = pytester.runpytest("--tokenspy", f"--tokenspy-baseline={baseline}", "--tokenspy-max-increase-pct=500")
    assert loose.ret == 0


def test_gate_with_missing_baseline_is_a_usage_error(pytester):
    make_project(pytester)
    result = pytester.runpytest("--tokenspy", "--tokenspy-baseline=nope.db")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*tokenspy: error:*nope.db*"])


def test_test_path_after_flag_is_refused_with_a_clear_message(pytester):
    make_project(pytester)
    result = pytester.runpytest("--tokenspy", "test_sample.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--tokenspy takes a DB path*"])


def test_run_id_from_the_environment_is_shared_by_shards(pytester, monkeypatch):
    db = make_project(pytester)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "2")
    pytester.runpytest("--tokenspy", "-k", "two_calls").assert_outcomes(passed=1, deselected=3)
    pytester.runpytest("--tokenspy", "-k", "profiled").assert_outcomes(passed=1, deselected=3)
    assert {r["run_id"] for r in db_rows(db)} == {"gh-4242-2"}
    monkeypatch.setenv("TOKENSPY_RUN_ID", "mine")
    pytester.runpytest("--tokenspy", "-k", "profiled").assert_outcomes(passed=1, deselected=3)
    assert db_rows(db)[-1]["run_id"] == "mine"
