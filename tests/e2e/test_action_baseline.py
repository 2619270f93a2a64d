"""Where the baseline comes from: the base branch's artifact, a path, or two commits of one DB.

No test needs git history: the base SHA comes from the event payload (one test runs in a real
``git clone --depth 1``).
"""

from __future__ import annotations

from pathlib import Path

from conftest import BASE_SHA, HEAD_SHA, MERGE_SHA, PR_NUMBER, make_db, shallow_clone, zip_bytes

ARTIFACTS = r"/repos/acme/shop/actions/artifacts"
ZIP = r"/repos/acme/shop/actions/artifacts/\d+/zip"


def _notice_lines(result, level: str = "notice") -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(f"::{level}")]


def test_artifact_of_the_base_branch_is_found_downloaded_and_used(runner, gh, tmp_path):
    base_db = make_db(tmp_path / "main" / "usage.db", commit=BASE_SHA)
    art = gh.add_artifact("tokenspy-usage", base_db, head_sha=BASE_SHA)
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db", scale=2.0)
    result = runner.run()
    assert result.returncode == 1, result.stdout[-3000:]
    out = result.action_outputs
    assert out["baseline-source"] == "artifact"
    assert out["verdict"] == "fail"
    assert float(out["baseline-total-usd"]) < float(out["current-total-usd"])
    [listing] = gh.requests("GET", ARTIFACTS)
    assert listing.query["name"] == ["tokenspy-usage"]
    assert gh.requests("GET", rf"/repos/acme/shop/actions/runs/{art['workflow_run']['id']}")
    [download] = gh.requests("GET", ZIP)
    assert (download.status == 302 and download.authorization == f"token {gh.token}") or \
        download.authorization == f"Bearer {gh.token}"
    assert gh.requests("GET", r"/_blob/\d+")[0].status == 200
    assert f"Baseline: artifact tokenspy-usage of run {art['workflow_run']['id']} on main at 111111111111" \
        in result.summary
    body = gh.comments(PR_NUMBER)[0]["body"]
    assert f"gh run download {art['workflow_run']['id']} -n tokenspy-usage" in body
    assert str(runner.temp) not in body  # no runner path in the comment: stable bodies
    assert not _notice_lines(result, "warning")


def test_prefers_the_prs_exact_base_then_the_newest_good_run(runner, gh, tmp_path):
    exact = make_db(tmp_path / "a" / "usage.db", commit=BASE_SHA, scale=2.0)
    newer = make_db(tmp_path / "b" / "usage.db", commit="9" * 40, scale=1.0)
    gh.add_artifact("tokenspy-usage", exact, head_sha=BASE_SHA)
    gh.add_artifact("tokenspy-usage", newer, head_sha="9" * 40)  # newer, but not the PR's base
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db", scale=2.0)
    result = runner.run()
    assert result.returncode == 0
    assert result.action_outputs["baseline-source"] == "artifact"
    assert result.action_outputs["delta-usd"] == "0.000000"  # compared with the exact base


def test_untrusted_or_unfinished_artifacts_are_skipped(runner, gh, tmp_path):
    good = make_db(tmp_path / "good" / "usage.db", commit="8" * 40)
    poisoned = make_db(tmp_path / "bad" / "usage.db", commit="7" * 40, scale=50.0)
    gh.add_artifact("tokenspy-usage", good, head_sha="8" * 40)
    gh.add_artifact("tokenspy-usage", poisoned, fork=True)  # a fork's run
    gh.add_artifact("tokenspy-usage", poisoned, event="pull_request")  # a PR's workflow run
    gh.add_artifact("tokenspy-usage", poisoned, conclusion="failure")
    gh.add_artifact("tokenspy-usage", poisoned, conclusion=None)  # still running
    gh.add_artifact("tokenspy-usage", poisoned, expired=True)
    gh.add_artifact("tokenspy-usage", poisoned, branch="release")
    gh.add_artifact("other-name", poisoned)
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db", scale=2.0)
    result = runner.run({"fail-on-regression": "false"})
    assert result.action_outputs["baseline-source"] == "artifact", (result.stdout[-3000:], result.stderr)
    assert "at 888888888888" in result.summary
    assert float(result.action_outputs["delta-usd"]) > 0  # against the good one, not the 50x one
    assert len(gh.requests("GET", ZIP)) == 1


def test_no_artifact_is_a_notice_and_a_pass(runner, gh):
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db", scale=5.0)
    result = runner.run()
    assert result.returncode == 0
    out = result.action_outputs
    assert out["verdict"] == "pass"
    assert out["baseline-source"] == "none"
    assert out["baseline-total-usd"] == "" and out["delta-usd"] == ""
    [notice] = _notice_lines(result)
    assert "No baseline" in notice and "tokenspy-usage" in notice and "main" in notice
    assert "No baseline: no artifact named" in result.summary
    assert "no baseline" in result.summary.lower()
    assert out["comment-status"] == "created"  # update: the report of this run, saying there is no baseline
    assert [w.method for w in gh.writes] == ["POST"]


def test_only_unusable_artifacts_say_why(runner, gh, tmp_path):
    db = make_db(tmp_path / "x" / "usage.db", commit=BASE_SHA)
    gh.add_artifact("tokenspy-usage", db, conclusion="failure")
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db")
    result = runner.run()
    assert result.returncode == 0
    [notice] = _notice_lines(result)
    assert "successful run" in notice and "failure" in notice


def test_artifacts_not_readable_is_a_warning_and_a_pass(runner, gh):
    gh.actions_forbidden = True
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db", scale=2.0)
    result = runner.run()
    assert result.returncode == 0
    [warning] = _notice_lines(result, "warning")
    assert "403" in warning and "actions: read" in warning
    assert result.action_outputs["baseline-source"] == "none"


def test_download_redirect_to_a_foreign_host_is_refused(runner, gh, tmp_path):
    db = make_db(tmp_path / "m" / "usage.db", commit=BASE_SHA)
    gh.add_artifact("tokenspy-usage", db, head_sha=BASE_SHA)
    gh.redirect_to = "http://127.0.0.2:9/steal/"
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db", scale=2.0)
    result = runner.run()
    assert result.returncode == 0
    [warning] = _notice_lines(result, "warning")
    assert "refusing" in warning and "127.0.0.2" in warning
    assert result.action_outputs["baseline-source"] == "none"


def test_artifact_without_a_db_is_a_warning(runner, gh):
    gh.add_artifact("tokenspy-usage", zip_bytes({"a.txt": b"x", "b.txt": b"y"}), head_sha=BASE_SHA)
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db")
    result = runner.run()
    assert result.returncode == 0
    [warning] = _notice_lines(result, "warning")
    assert "no DB file" in warning


def test_push_to_default_saves_the_db_and_the_next_pr_uses_it(runner, gh):
    make_db(runner.workspace / ".tokenspy/usage.db", commit=BASE_SHA)
    runner.push(BASE_SHA)
    push = runner.run()
    assert push.returncode == 0
    assert push.action_outputs["verdict"] == "pass"
    assert push.action_outputs["baseline-source"] == "none"
    assert push.action_outputs["comment-status"] == "skipped"
    # a push only reads (the previous artifact, whose history it extends): the upload is upload-artifact's job
    assert not gh.writes and all(r.path.endswith("/actions/artifacts") or r.path == "/repos/acme/shop"
                                 for r in gh.log)
    assert push.upload is not None, "the upload step's if: must hold on a push to the default branch"
    assert push.upload["name"] == "tokenspy-usage"
    saved = Path(push.upload["path"])
    assert saved.read_bytes().startswith(b"SQLite format 3\x00")
    assert "saved as the artifact `tokenspy-usage`" in push.summary

    runner.upload_artifact(push.upload, sha=BASE_SHA)  # what actions/upload-artifact does
    (runner.workspace / ".tokenspy/usage.db").unlink()
    make_db(runner.workspace / ".tokenspy/usage.db", scale=2.0)
    runner.pull_request()
    pr = runner.run()
    assert pr.returncode == 1
    assert pr.action_outputs["baseline-source"] == "artifact"
    assert pr.upload is None


def test_no_upload_on_other_branches_or_without_artifact_name(runner, gh):
    make_db(runner.workspace / ".tokenspy/usage.db")
    runner.push("4" * 40, branch="feature")
    assert runner.run().upload is None
    runner.push(BASE_SHA)
    assert runner.run({"artifact-name": ""}).upload is None


def test_artifact_mode_on_a_push_compares_with_the_default_branch(runner, gh, tmp_path):
    db = make_db(tmp_path / "m" / "usage.db", commit=BASE_SHA)
    gh.add_artifact("tokenspy-usage", db, head_sha=BASE_SHA)
    make_db(runner.workspace / ".tokenspy/usage.db", commit="4" * 40, scale=2.0)
    runner.push("4" * 40, branch="feature")
    result = runner.run({"baseline": "artifact"})
    assert result.returncode == 1
    assert result.action_outputs["baseline-source"] == "artifact"


def test_baseline_db_path(runner, gh):
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db", scale=2.0)
    make_db(runner.workspace / "restored" / "usage.db", commit=BASE_SHA)
    result = runner.run({"baseline": "path", "baseline-db": "restored/usage.db"})
    assert result.returncode == 1
    assert result.action_outputs["baseline-source"] == "path"
    assert not gh.requests("GET", ARTIFACTS)


def test_baseline_none_never_compares(runner, gh, tmp_path):
    db = make_db(tmp_path / "m" / "usage.db", commit=BASE_SHA)
    gh.add_artifact("tokenspy-usage", db, head_sha=BASE_SHA)
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db", scale=2.0)
    result = runner.run({"baseline": "none"})
    assert result.returncode == 0
    assert result.action_outputs["baseline-source"] == "none"
    assert not gh.requests("GET", ARTIFACTS)


def _two_commit_db(path: Path, base: str = BASE_SHA, head: str = MERGE_SHA, head_scale: float = 2.0) -> Path:
    make_db(path, commit=base, run_id="base-run")
    make_db(path, commit=head, run_id="head-run", scale=head_scale)
    return path


def test_base_ref_compares_two_commits_of_one_db(runner, gh):
    runner.pull_request()
    _two_commit_db(runner.workspace / ".tokenspy/usage.db")
    for ref in ("pr-base", "main", "origin/main", BASE_SHA):
        result = runner.run({"base-ref": ref})
        assert result.returncode == 1, (ref, result.stdout[-2000:])
        assert result.action_outputs["baseline-source"] == "commit"
        assert "tokenspy compare 111111111111 333333333333" in result.summary
    assert not gh.requests("GET", ARTIFACTS)


def test_auto_uses_the_base_commits_rows_when_the_db_has_them(runner, gh):
    runner.pull_request()
    _two_commit_db(runner.workspace / ".tokenspy/usage.db", head=HEAD_SHA)  # rows tagged with the PR head
    result = runner.run()
    assert result.returncode == 1
    assert result.action_outputs["baseline-source"] == "commit"
    assert "the PR's base commit 111111111111 in the same DB" in result.summary
    assert not gh.requests("GET", ARTIFACTS)


def test_base_ref_commit_without_rows_is_a_usage_error(runner, gh):
    runner.pull_request()
    make_db(runner.workspace / ".tokenspy/usage.db")
    result = runner.run({"base-ref": "pr-base"})
    assert result.returncode == 2
    [line] = result.error_lines
    assert line.startswith("::error::tokenspy: ") and "has no rows" in line and BASE_SHA in line


def test_shallow_workspace_needs_no_history(runner, gh, tmp_path):
    base, head = shallow_clone(tmp_path, runner.workspace)
    runner.pull_request(base_sha=base, head_sha=head)
    runner.sha = head
    db = runner.workspace / ".tokenspy/usage.db"
    _two_commit_db(db, base=base, head=head)
    auto = runner.run()
    assert auto.returncode == 1, auto.stdout[-2000:]
    assert auto.action_outputs["baseline-source"] == "commit"

    # the artifact route in the same shallow checkout
    db.unlink()
    make_db(db, commit=head, scale=2.0)
    gh.add_artifact("tokenspy-usage", make_db(tmp_path / "main" / "usage.db", commit=base), head_sha=base)
    artifact = runner.run()
    assert artifact.returncode == 1
    assert artifact.action_outputs["baseline-source"] == "artifact"

    # a revision that does need history says how to get it (HEAD~1 would resolve: the head
    # commit names its parent; its grandparent needs the missing parent object)
    _two_commit_db(tmp_path / "both.db", base=base, head=head)
    history = runner.run({"base-ref": "HEAD~2", "current-db": str(tmp_path / "both.db")})
    assert history.returncode == 2
    [line] = history.error_lines
    assert "HEAD~2" in line and "fetch-depth: 0" in line


def test_history_trend_and_html_report_across_pushes_and_a_pr(runner, gh):
    # Three pushes to main, each extending the previous artifact's DB; then a PR shows the trend
    # of those commits plus itself, and links the HTML report written for the upload step.
    shas = ["a" * 40, "b" * 40, BASE_SHA]
    for i, sha in enumerate(shas):
        db = runner.workspace / ".tokenspy/usage.db"
        db.unlink(missing_ok=True)
        make_db(db, commit=sha, scale=1.0 + i * 0.1, run_id=f"push-{i}")
        runner.push(sha)
        push = runner.run()
        assert push.returncode == 0, push.stdout
        assert push.upload is not None
        runner.upload_artifact(push.upload, sha)
    assert "history of up to 200 commits" in push.summary
    assert "**Trend**" in push.summary and "(3 points)" in push.summary
    (runner.workspace / ".tokenspy/usage.db").unlink()
    make_db(runner.workspace / ".tokenspy/usage.db", scale=2.0)
    runner.pull_request()
    pr = runner.run({"fail-on-regression": "false"})
    assert pr.returncode == 0, pr.stdout
    assert pr.action_outputs["baseline-source"] == "artifact"
    body = gh.comments(PR_NUMBER)[0]["body"]
    assert "(4 points)" in body and '"PR #7"]' in body and "xychart-beta" in body
    html = Path(pr.action_outputs["html-report-path"])
    assert html.is_file() and "By test" in html.read_text(encoding="utf-8")
    assert "[tokenspy-report](https://github.com/acme/shop/actions/runs/" in pr.summary or \
        f"[tokenspy-report]({gh.host}/acme/shop/actions/runs/" in pr.summary
