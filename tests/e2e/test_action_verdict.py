"""The action's verdict (issue 18): warn and fail levels as inputs, a suite without LLM calls,
and nothing but our own words in the log."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import BASE_SHA, make_db


def _dbs(runner, current_scale: float) -> None:
    make_db(runner.workspace / ".tokenspy/usage.db", scale=current_scale)
    make_db(runner.workspace / "baseline.db", commit=BASE_SHA)


def test_warn_and_fail_level_inputs(runner, gh):
    runner.pull_request()
    _dbs(runner, current_scale=1.15)  # summarize +15%: over warn 5, under fail 25
    warned = runner.run({"baseline-db": "baseline.db", "warn-pct": "5", "fail-pct": "25", "comment": "never"})
    assert warned.returncode == 0
    assert warned.outputs["verdict"] == "pass" and warned.outputs["regressions"] == "0"
    assert warned.outputs["warnings"] == "1"
    assert any(line.startswith("::warning ") and "app.summarize" in line for line in warned.stdout.splitlines())
    assert "⚠️ 1 over the warn level" in warned.summary
    # the same run at fail 10 (older input name): a regression, and the step fails
    failed = runner.run({"baseline-db": "baseline.db", "warn-pct": "5", "max-increase-pct": "10",
                         "comment": "never"})
    assert failed.returncode == 1 and failed.outputs["regressions"] == "1"
    both = runner.run({"baseline-db": "baseline.db", "fail-pct": "5", "max-increase-pct": "10"})
    assert both.returncode == 2 and "fail-pct" in both.error_lines[0] and "max-increase-pct" in both.error_lines[0]


def _suite_without_llm_calls(workspace) -> None:
    """`pytest --tokenspy` on a suite whose last LLM call was removed."""
    (workspace / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "TOKENSPY_"))}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_plain.py",
                           "--tokenspy=.tokenspy/usage.db"], cwd=workspace, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_suite_without_llm_calls_passes_and_shows_the_cost_that_went_away(runner, gh):
    runner.pull_request()
    make_db(runner.workspace / "baseline.db", commit=BASE_SHA)
    _suite_without_llm_calls(runner.workspace)
    result = runner.run({"baseline-db": "baseline.db", "comment": "never"})
    assert result.returncode == 0, result.stdout
    assert result.outputs["verdict"] == "pass"
    assert result.outputs["current-total-usd"] == "0.000000"
    assert float(result.outputs["delta-usd"]) < 0
    assert "no LLM calls in this run" in result.summary
    assert "➖ 2 removed" in result.summary and "app.summarize" in result.summary


def test_a_suite_without_llm_calls_and_no_baseline_reports_no_llm_calls(runner, gh):
    runner.push()
    _suite_without_llm_calls(runner.workspace)
    result = runner.run({"baseline": "none", "artifact-name": ""})
    assert result.returncode == 0, result.stdout
    assert "no LLM calls in this run" in result.summary


def test_pygithubs_own_log_line_stays_out_of_a_fork_prs_log(runner, gh):
    gh.fork_mode = True
    runner.pull_request(fork=True)
    _dbs(runner, current_scale=1.0)
    result = runner.run({"baseline-db": "baseline.db", "comment": "always"})
    assert result.returncode == 0 and result.outputs["comment-status"] == "skipped"
    assert "failed with 403" not in result.stdout + result.stderr
    # our one notice says it
    assert sum("PR comment skipped" in line for line in result.stdout.splitlines()) == 1
