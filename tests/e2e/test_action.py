"""The action end to end: entrypoint.sh as action.yml runs it, against the loopback GitHub API.

Sticky comment lifecycle, fork PRs, exit codes and usage errors. Baselines: test_action_baseline.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import BASE_SHA, PR_NUMBER, make_db
from tokenspy.ci.comment import BODY_MAX_CHARS
from tokenspy.ci.markdown import marker_for

MARKER = marker_for("cost")  # the runner's GITHUB_JOB: the default comment-tag

COMMENTS = r"/repos/acme/shop/issues/7/comments"
EDIT = r"/repos/acme/shop/issues/comments/\d+"


def _dbs(runner, current_scale: float, base_scale: float = 1.0) -> None:
    make_db(runner.workspace / ".tokenspy/usage.db", scale=current_scale)
    make_db(runner.workspace / "baseline.db", scale=base_scale, commit=BASE_SHA)


def _replace_current(runner, scale: float) -> None:
    """A later push: the current DB made anew with costs ``scale`` times the base."""
    (runner.workspace / ".tokenspy/usage.db").unlink()
    make_db(runner.workspace / ".tokenspy/usage.db", scale=scale)


def test_comment_created_then_edited_then_left_alone(runner, gh):
    runner.pull_request()
    _dbs(runner, current_scale=2.0)
    first = runner.run({"baseline-db": "baseline.db"})
    assert first.returncode == 1, first.stderr  # regression + fail-on-regression (default true)
    assert first.action_outputs["verdict"] == "fail"
    assert first.action_outputs["comment-status"] == "created"
    [comment] = gh.comments(PR_NUMBER)
    assert comment["body"].startswith(MARKER)
    assert "1 function over the limit" in comment["body"]
    assert comment["body"] == Path(first.outputs["report-path"]).read_text(encoding="utf-8")
    assert first.action_outputs["comment-url"] == comment["html_url"]
    assert len(gh.requests("POST", COMMENTS)) == 1
    assert "PR comment posted" in first.summary

    # a later push: dearer still -> the same comment, edited in place
    _replace_current(runner, 3.0)
    second = runner.run({"baseline-db": "baseline.db"})
    assert second.returncode == 1
    assert second.action_outputs["comment-status"] == "updated"
    assert [c["id"] for c in gh.comments(PR_NUMBER)] == [comment["id"]]
    assert len(gh.requests("PATCH", EDIT)) == 1
    assert len(gh.requests("POST", COMMENTS)) == 1
    assert "+165.3%" in gh.comments(PR_NUMBER)[0]["body"].replace("\\", "")

    # the same numbers again: the body is identical, so no write at all
    writes_before = len(gh.writes)
    third = runner.run({"baseline-db": "baseline.db"})
    assert third.returncode == 1
    assert third.action_outputs["comment-status"] == "unchanged"
    assert len(gh.writes) == writes_before
    assert gh.requests("GET", COMMENTS), "it looked for the existing comment"


def test_finds_its_comment_among_many_pages(runner, gh):
    runner.pull_request()
    for i in range(130):  # the API pages comments (100 per page at most)
        gh.add_comment(PR_NUMBER, f"comment {i} mentioning {MARKER} inside, not first", user="someone")
    ours = gh.add_comment(PR_NUMBER, MARKER + "\nold report", user="github-actions[bot]")
    _dbs(runner, current_scale=2.0)
    result = runner.run({"baseline-db": "baseline.db", "fail-on-regression": "false"})
    assert result.returncode == 0
    assert result.action_outputs["verdict"] == "pass"
    assert result.action_outputs["comment-status"] == "updated"
    assert len(gh.requests("GET", COMMENTS)) == 2  # two pages
    [patch] = gh.requests("PATCH", EDIT)
    assert patch.path.endswith(f"/{ours['id']}")
    assert not gh.requests("POST", COMMENTS)


def test_fork_pr_comment_403_is_a_summary_note_and_the_verdict_still_decides(runner, gh):
    gh.fork_mode = True
    runner.pull_request(fork=True)
    _dbs(runner, current_scale=2.0)
    result = runner.run({"baseline-db": "baseline.db"})
    assert result.returncode == 1  # the verdict (fail), not the comment
    assert result.action_outputs["comment-status"] == "skipped"
    assert result.action_outputs["verdict"] == "fail"
    assert "PR comment skipped" in result.summary
    assert "Resource not accessible by integration" in result.summary
    assert "fork" in result.summary
    assert any(line.startswith("::notice") and "PR comment skipped" in line for line in result.stdout.splitlines())
    [post] = gh.requests("POST", COMMENTS)
    assert post.status == 403
    assert not result.stderr.strip() or "Traceback" not in result.stderr


def test_fork_pr_passing_exits_0(runner, gh):
    gh.fork_mode = True
    runner.pull_request(fork=True)
    _dbs(runner, current_scale=1.0)
    result = runner.run({"baseline-db": "baseline.db", "comment": "always"})
    assert result.returncode == 0
    assert result.action_outputs["verdict"] == "pass"
    assert "PR comment skipped" in result.summary
    assert gh.requests("POST", COMMENTS)[0].status == 403


def test_on_change_posts_nothing_when_nothing_changed(runner, gh):
    runner.pull_request()
    _dbs(runner, current_scale=1.0)
    result = runner.run({"baseline-db": "baseline.db", "comment": "on-change"})
    assert result.returncode == 0
    assert result.action_outputs["comment-status"] == "skipped"
    assert result.action_outputs["delta-usd"] == "0.000000"
    assert not gh.writes
    assert "nothing changed" in result.summary


def test_on_change_deletes_a_stale_comment_once_unchanged_again(runner, gh):
    runner.pull_request()
    _dbs(runner, current_scale=2.0)
    changed = runner.run({"baseline-db": "baseline.db", "comment": "on-change"})
    assert changed.action_outputs["comment-status"] == "created" and len(gh.comments(PR_NUMBER)) == 1
    _replace_current(runner, 1.0)
    back = runner.run({"baseline-db": "baseline.db", "comment": "on-change"})
    assert back.returncode == 0
    assert back.action_outputs["comment-status"] == "deleted"
    assert gh.comments(PR_NUMBER) == []
    assert len(gh.requests("DELETE", EDIT)) == 1
    assert "PR comment removed" in back.summary


def test_update_keeps_an_existing_comment_current(runner, gh):
    runner.pull_request()
    gh.add_comment(PR_NUMBER, MARKER + "\n### ❌ 1 function over the limit (stale)", user="github-actions[bot]")
    _dbs(runner, current_scale=1.0)
    result = runner.run({"baseline-db": "baseline.db"})
    assert result.returncode == 0
    assert result.action_outputs["comment-status"] == "updated"
    assert "leaves LLM cost unchanged" in gh.comments(PR_NUMBER)[0]["body"]


def test_comment_new_posts_a_comment_per_changed_report(runner, gh):
    runner.pull_request()
    _dbs(runner, current_scale=2.0)
    first = runner.run({"baseline-db": "baseline.db", "comment": "new"})
    assert first.action_outputs["comment-status"] == "created"
    same = runner.run({"baseline-db": "baseline.db", "comment": "new"})
    assert same.action_outputs["comment-status"] == "unchanged"
    _replace_current(runner, 3.0)
    again = runner.run({"baseline-db": "baseline.db", "comment": "new"})
    assert again.action_outputs["comment-status"] == "created"
    assert len(gh.comments(PR_NUMBER)) == 2 and not gh.requests("PATCH", EDIT)


def test_comment_tags_keep_one_comment_per_job(runner, gh):
    # Two matrix jobs (or workflows) on one PR: each edits its own comment, never the other's.
    runner.pull_request()
    _dbs(runner, current_scale=2.0)
    py312 = runner.run({"baseline-db": "baseline.db", "comment-tag": "py3.12"})
    py313 = runner.run({"baseline-db": "baseline.db", "comment-tag": "py3.13"})
    assert py312.action_outputs["comment-status"] == py313.action_outputs["comment-status"] == "created"
    bodies = [c["body"].split("\n", 1)[0] for c in gh.comments(PR_NUMBER)]
    assert bodies == [marker_for("py3.12"), marker_for("py3.13")]
    _replace_current(runner, 3.0)
    again = runner.run({"baseline-db": "baseline.db", "comment-tag": "py3.13"})
    assert again.action_outputs["comment-status"] == "updated"
    [patch] = gh.requests("PATCH", EDIT)
    assert patch.path.endswith(f"/{gh.comments(PR_NUMBER)[1]['id']}")


def test_the_first_tagged_run_takes_over_the_comment_from_before_tags(runner, gh):
    # A PR commented on by a tokenspy without comment tags (marker "<!-- tokenspy -->"): after
    # the upgrade, that comment is edited (and gets the tag's marker), not joined by a second one.
    runner.pull_request()
    older = gh.add_comment(PR_NUMBER, marker_for("") + "\nan earlier report", user="github-actions[bot]")
    planted = gh.add_comment(PR_NUMBER, marker_for("") + "\nnot ours", user="mallory")
    _dbs(runner, current_scale=2.0)
    result = runner.run({"baseline-db": "baseline.db"})
    assert result.action_outputs["comment-status"] == "updated"
    assert not gh.requests("POST", COMMENTS)
    [patch] = gh.requests("PATCH", EDIT)
    assert patch.path.endswith(f"/{older['id']}")
    first_lines = [c["body"].split("\n", 1)[0] for c in gh.comments(PR_NUMBER)]
    assert first_lines == [MARKER, marker_for("")] and gh.comments(PR_NUMBER)[1] is planted
    # another job's tag finds its own marker nowhere and nothing untagged left: a comment of its own
    other = runner.run({"baseline-db": "baseline.db", "comment-tag": "py3.13"})
    assert other.action_outputs["comment-status"] == "created"
    assert [c["body"].split("\n", 1)[0] for c in gh.comments(PR_NUMBER)][-1] == marker_for("py3.13")


def test_accept_label_turns_a_failing_verdict_into_a_visible_pass(runner, gh):
    runner.pull_request()
    _dbs(runner, current_scale=2.0)
    gh.set_labels(PR_NUMBER, "bug", "tokenspy:accept")
    runner.event = gh.pull_request_event(PR_NUMBER, action="labeled")
    result = runner.run({"baseline-db": "baseline.db"})
    assert result.returncode == 0
    out = result.action_outputs
    assert out["verdict"] == "pass" and out["accepted"] == "true" and out["regressions"] == "1"
    assert "Accepted by label" in result.summary and "tokenspy:accept" in result.summary
    assert "Accepted by label" in gh.comments(PR_NUMBER)[0]["body"]
    assert not any(line.startswith("::error ") for line in result.stdout.splitlines())
    # the label removed again (unlabeled): the verdict fails as before
    gh.set_labels(PR_NUMBER, "bug")
    runner.event = gh.pull_request_event(PR_NUMBER, action="unlabeled")
    failed = runner.run({"baseline-db": "baseline.db"})
    assert failed.returncode == 1 and failed.action_outputs["accepted"] == "false"
    # another label name, configured
    gh.set_labels(PR_NUMBER, "cost-ok")
    runner.event = gh.pull_request_event(PR_NUMBER, action="labeled")
    assert runner.run({"baseline-db": "baseline.db", "accept-label": "cost-ok"}).returncode == 0
    assert runner.run({"baseline-db": "baseline.db", "accept-label": ""}).returncode == 1


def test_comment_always_and_never(runner, gh):
    runner.pull_request()
    _dbs(runner, current_scale=1.0)
    always = runner.run({"baseline-db": "baseline.db", "comment": "always"})
    assert always.action_outputs["comment-status"] == "created"
    requests_before = len(gh.log)
    never = runner.run({"baseline-db": "baseline.db", "comment": "never"})
    assert never.returncode == 0
    assert never.action_outputs["comment-status"] == "disabled"
    assert len(gh.log) == requests_before  # no API call at all


def test_comment_body_stays_under_github_limit(runner, gh):
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db", scale=2.0, functions=1500, long_names=1500)
    make_db(runner.workspace / "baseline.db", commit=BASE_SHA)
    result = runner.run({"baseline-db": "baseline.db", "comment": "always", "fail-on-regression": "false"})
    assert result.returncode == 0, result.stdout[-2000:]
    [post] = gh.requests("POST", COMMENTS)
    assert post.status == 201
    body = post.body["body"]
    assert len(body) < BODY_MAX_CHARS
    assert body.startswith(MARKER)
    assert "left out" in body
    assert len(result.summary.encode()) > len(body.encode())  # the summary keeps more rows


def test_ghes_api_url_with_path_prefix(tmp_path):
    from github_server import GitHubServer

    from conftest import Runner

    server = GitHubServer(prefix="/api/v3").start()
    try:
        runner = Runner(tmp_path, server).pull_request()
        _dbs(runner, current_scale=2.0)
        result = runner.run({"baseline-db": "baseline.db"})
        assert result.returncode == 1
        assert result.action_outputs["comment-status"] == "created"
        assert server.log and all(not r.path.startswith("/<outside>") for r in server.log)
    finally:
        server.stop()


def test_bad_token_is_a_warning_not_a_failure(runner, gh):
    runner.pull_request()
    _dbs(runner, current_scale=1.0)
    result = runner.run({"baseline-db": "baseline.db", "comment": "always", "github-token": "ghs_wrongTOKEN999"})
    assert result.returncode == 0
    assert result.action_outputs["comment-status"] == "failed"
    assert "401" in result.summary
    assert "ghs_wrongTOKEN999" not in result.stdout + result.stderr + result.summary
    assert any(line.startswith("::warning") for line in result.stdout.splitlines())


def test_fail_on_regression_false_passes_with_warnings(runner, gh):
    runner.pull_request()
    _dbs(runner, current_scale=2.0)
    result = runner.run({"baseline-db": "baseline.db", "fail-on-regression": "false"})
    assert result.returncode == 0
    assert result.action_outputs["verdict"] == "pass"
    assert int(result.action_outputs["regressions"]) > 0
    assert any(line.startswith("::warning file=app.py") for line in result.stdout.splitlines())


def test_thresholds_from_inputs(runner, gh):
    runner.pull_request()
    _dbs(runner, current_scale=2.0)
    loose = runner.run({"baseline-db": "baseline.db", "max-increase-pct": "500"})
    assert loose.returncode == 0
    assert loose.action_outputs["regressions"] == "0"
    both = runner.run({"baseline-db": "baseline.db", "max-increase-pct": "10", "max-increase-usd": "1"})
    assert both.returncode == 0  # over 10 % but not over $1: a regression needs both


def test_pyproject_thresholds_are_read_from_the_workspace(runner, gh):
    runner.pull_request()
    _dbs(runner, current_scale=2.0)
    (runner.workspace / "pyproject.toml").write_text("[tool.tokenspy.ci]\nmax_increase_pct = 1000\n")
    result = runner.run({"baseline-db": "baseline.db"})
    assert result.returncode == 0
    assert result.action_outputs["regressions"] == "0"


# --------------------------------------------------------------------------- usage errors


def _usage_error(result, *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert len(result.error_lines) == 1, result.stdout
    [line] = result.error_lines
    assert line.startswith("::error::tokenspy: ")
    for needle in needles:
        assert needle in line, line
    assert "Traceback" not in result.stderr


def test_missing_current_db_is_a_usage_error(runner, gh):
    runner.pull_request()
    result = runner.run()
    _usage_error(result, "current-db", ".tokenspy/usage.db", "no such database file", "pytest --tokenspy")
    assert not gh.log


def test_not_a_database_is_a_usage_error(runner, gh):
    runner.pull_request()
    (runner.workspace / "notes.db").write_text("hello")
    _usage_error(runner.run({"current-db": "notes.db"}), "not a SQLite database")



@pytest.mark.parametrize(("inputs", "needles"), [
    ({"max-increase-pct": "ten"}, ("max-increase-pct", "'ten'", "not a number")),
    ({"max-increase-usd": "-1"}, ("max-increase-usd", "non-negative")),
    ({"max-increase-usd": "inf"}, ("max-increase-usd", "finite")),
    ({"fail-on-regression": "maybe"}, ("fail-on-regression", "boolean")),
    ({"comment": "sometimes"}, ("comment", "update, new, on-change, off")),
    ({"usage": "mock"}, ("usage", "request, response")),
    ({"baseline": "latest"}, ("baseline", "auto, artifact, path, none")),
    ({"baseline": "path"}, ("baseline", "baseline-db")),
    ({"baseline-db": "nowhere.db"}, ("baseline-db", "nowhere.db", "no such database file")),
    ({"base-ref": "pr-base", "baseline": "none"}, ("base-ref",)),
])
def test_bad_inputs_are_usage_errors(runner, gh, inputs, needles):
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db")
    _usage_error(runner.run(inputs), *needles)


def test_bad_pyproject_threshold_is_a_usage_error(runner, gh):
    runner.pull_request()
    _dbs(runner, current_scale=1.0)
    (runner.workspace / "pyproject.toml").write_text("[tool.tokenspy.ci]\nmax_increase_pct = 'lots'\n")
    _usage_error(runner.run({"baseline-db": "baseline.db"}), "max_increase_pct")


def test_python_entry_missing_is_not_mistaken_for_a_verdict(runner, gh, tmp_path):
    """entrypoint.sh maps the verdict, not just the exit code: a Python that cannot even import
    the package (exit 1) is an internal error (3), not a cost regression."""
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db")
    fake = tmp_path / "python-without-tokenspy"
    fake.write_text("#!/usr/bin/env bash\necho 'No module named tokenspy' >&2\nexit 1\n")
    fake.chmod(0o755)
    step = runner.step("tokenspy")
    ctx = runner.context({}, {"install": {"python": str(fake)}})
    run_dir = tmp_path / "direct"
    run_dir.mkdir()
    proc = runner.run_step("tokenspy", ctx, runner.runner_env(run_dir), run_dir)
    assert step["env"]["TOKENSPY_PYTHON"] == "${{ steps.install.outputs.python }}"
    assert proc.returncode == 3
    assert "::error title=tokenspy::the action stopped without a verdict (exit code 1)" in proc.stdout


@pytest.mark.parametrize("token_user", [None, "release-bot"])
def test_a_comment_someone_else_wrote_with_our_marker_is_never_taken_over(runner, gh, token_user):
    """Anyone can start a comment with the marker: only ours (marker and the token's own login:
    its user, or the Actions bot for GITHUB_TOKEN) is edited or deleted."""
    gh.user_login = token_user
    runner.pull_request()
    planted = gh.add_comment(PR_NUMBER, MARKER + "\nplanted by someone", user="mallory")
    _dbs(runner, current_scale=2.0)
    result = runner.run({"baseline-db": "baseline.db", "fail-on-regression": "false"})
    assert result.action_outputs["comment-status"] == "created"
    assert not gh.requests("PATCH", EDIT)
    bodies = {c["id"]: c for c in gh.comments(PR_NUMBER)}
    assert bodies[planted["id"]]["body"] == MARKER + "\nplanted by someone"
    mine = [c for c in bodies.values() if c["id"] != planted["id"]]
    assert [c["user"]["login"] for c in mine] == [token_user or "github-actions[bot]"]
    # a later run edits its own comment, still not the planted one
    _replace_current(runner, 3.0)
    again = runner.run({"baseline-db": "baseline.db", "fail-on-regression": "false"})
    assert again.action_outputs["comment-status"] == "updated"
    [patch] = gh.requests("PATCH", EDIT)
    assert patch.path.endswith(f"/{mine[0]['id']}")
