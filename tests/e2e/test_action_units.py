"""The action's Python entry in-process (pytest-subprocess proves it never shells out), and the
small pieces: settings, event payload, redirect policy, artifact zips, comment body limit."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from conftest import BASE_SHA, PR_NUMBER, make_db, shallow_clone, zip_bytes
from tokenspy.ci import artifacts, comment
from tokenspy.ci.action import main
from tokenspy.ci.event import Event
from tokenspy.ci.settings import Settings, UsageError


@pytest.fixture
def workspace(tmp_path, runner):
    """A ``git clone --depth 1`` as GITHUB_WORKSPACE (made before ``fp`` starts faking)."""
    base, head = shallow_clone(tmp_path, runner.workspace)
    return runner.workspace, base, head


def test_in_process_shallow_checkout_makes_no_subprocess_call(workspace, runner, gh, fp, monkeypatch, tmp_path):
    """Nothing shells out — no git, no pip: with pytest-subprocess active and nothing registered,
    any subprocess would raise. The base comes from the event and the API, not from history."""
    ws, base, head = workspace
    gh.add_artifact("tokenspy-usage", make_db(tmp_path / "main" / "usage.db", commit=base), head_sha=base)
    runner.pull_request(base_sha=base, head_sha=head)
    runner.sha = head
    make_db(ws / ".tokenspy/usage.db", commit=head, scale=2.0)
    run_dir = tmp_path / "inproc"
    run_dir.mkdir()
    env = runner.runner_env(run_dir)
    verdict = run_dir / "verdict"
    for k, v in {**env, "TOKENSPY_GITHUB_TOKEN": gh.token, "TOKENSPY_VERDICT_FILE": str(verdict)}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(ws)
    out = io.StringIO()
    assert main(out=out) == 1, out.getvalue()[-3000:]
    assert list(fp.calls) == []
    assert verdict.read_text().strip() == "fail"
    assert gh.comments(PR_NUMBER)
    assert gh.token not in out.getvalue()


def test_settings_defaults_and_token_kept_out_of_repr():
    s = Settings.from_environ({"TOKENSPY_GITHUB_TOKEN": "ghs_secret", "GITHUB_API_URL": "https://ghe.example/api/v3/"})
    assert s.current_db == ".tokenspy/usage.db" and s.baseline == "auto" and s.comment == "update"
    assert s.fail_on_regression is True and s.artifact_name == "tokenspy-usage"
    assert s.api_url == "https://ghe.example/api/v3"
    assert "ghs_secret" not in repr(s)
    assert s.scrub("Authorization: token ghs_secret") == "Authorization: token ***"
    s = Settings.from_environ({"TOKENSPY_MAX_INCREASE_PCT": "12.5%", "TOKENSPY_MAX_INCREASE_USD": "$0.25",
                               "TOKENSPY_FAIL_ON_REGRESSION": "False", "TOKENSPY_COMMENT": "ALWAYS"})
    assert (s.max_increase_pct, s.max_increase_usd, s.fail_on_regression, s.comment) == (12.5, 0.25, False, "update")
    # the earlier names of two modes are still understood; the tag defaults to the job's name
    assert Settings.from_environ({"TOKENSPY_COMMENT": "never"}).comment == "off"
    assert Settings.from_environ({"GITHUB_JOB": "cost"}).comment_tag == "cost"
    tagged = Settings.from_environ({"GITHUB_JOB": "cost", "TOKENSPY_COMMENT_TAG": "matrix-3.12"})
    assert tagged.comment_tag == "matrix-3.12"
    with pytest.raises(UsageError, match="input usage: 'tokens' is not one of request, response"):
        Settings.from_environ({"TOKENSPY_USAGE": "tokens"})
    with pytest.raises(UsageError, match="input comment: 'sometimes' is not one of update, new, on-change, off"):
        Settings.from_environ({"TOKENSPY_COMMENT": "sometimes"})
    with pytest.raises(UsageError, match="max-increase-pct"):
        Settings.from_environ({"TOKENSPY_MAX_INCREASE_PCT": "nan"})
    with pytest.raises(UsageError, match="exclusive"):
        Settings.from_environ({"TOKENSPY_BASE_REF": "main", "TOKENSPY_BASELINE_DB": "x.db"})


def test_usage_error_scrubs_the_token(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    code = main({"TOKENSPY_GITHUB_TOKEN": "ghs_abc", "TOKENSPY_CURRENT_DB": "ghs_abc.db"}, out=out)
    assert code == 2
    assert out.getvalue().startswith("::error::tokenspy: input current-db: ***.db")
    assert "ghs_abc" not in out.getvalue()


def _pr_payload(head_repo: object) -> dict:
    return {"pull_request": {"number": 3, "base": {"sha": BASE_SHA, "ref": "main", "repo": {"full_name": "a/b"}},
                             "head": {"sha": "2" * 40, "repo": head_repo}},
            "repository": {"full_name": "a/b", "default_branch": "main"}}


def test_event_fork_detection_and_base():
    same = Event("pull_request", _pr_payload({"full_name": "a/b"}))
    assert same.is_pull_request and not same.is_fork
    assert (same.pr_number, same.base_sha, same.base_ref, same.compare_branch) == (3, BASE_SHA, "main", "main")
    assert Event("pull_request", _pr_payload({"full_name": "someone/b"})).is_fork
    assert Event("pull_request", _pr_payload(None)).is_fork  # the fork was deleted
    push = Event("push", {"repository": {"default_branch": "main"}}, "refs/heads/main")
    assert push.is_push_to_default and not push.is_pull_request and push.compare_branch == "main"
    assert not Event("push", {"repository": {"default_branch": "main"}}, "refs/heads/dev").is_push_to_default
    assert not Event("push", {"repository": {"default_branch": "main"}}, "refs/tags/main").is_push_to_default


@pytest.mark.parametrize(("url", "expected"), [
    ("https://api.github.com/repos/o/r/actions/artifacts/1/zip", True),
    ("https://pipelines.actions.githubusercontent.com/abc/zip?sig=1", False),
    ("https://productionresultssa1.blob.core.windows.net/actions-results/x.zip?sv=1", False),
    ("http://productionresultssa1.blob.core.windows.net/x.zip", None),  # storage only over https
    ("https://evil.example/api.github.com", None),
    ("https://api.github.com.evil.example/x", None),
    ("https://api.github.com:8443/x", None),
])
def test_redirect_policy(url, expected):
    assert artifacts.redirect_policy(url, "https://api.github.com") is expected


def test_extract_db_picks_the_db_and_ignores_zip_paths(tmp_path):
    db = make_db(tmp_path / "u.db").read_bytes()
    z = tmp_path / "a.zip"
    z.write_bytes(zip_bytes({"../../escape/notes.txt": b"x", "../../escape/usage.db": db, "other.db": b"nope"}))
    out = artifacts.extract_db(z, tmp_path / "out.db")
    assert out == tmp_path / "out.db" and out.read_bytes() == db
    assert not (tmp_path.parent.parent / "escape").exists()
    z.write_bytes(zip_bytes({"usage.db": b"not sqlite"}))
    with pytest.raises(artifacts.ArtifactError, match="not a SQLite database"):
        artifacts.extract_db(z, tmp_path / "out2.db")
    z.write_bytes(b"PK not really")
    with pytest.raises(artifacts.ArtifactError, match="not a zip"):
        artifacts.extract_db(z, tmp_path / "out3.db")


def test_snapshot_folds_in_the_wal_and_leaves_the_source_alone(tmp_path):
    import sqlite3

    src = make_db(tmp_path / "live.db")
    conn = sqlite3.connect(src)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("INSERT INTO llm_calls (function_name, model, input_tokens, output_tokens) VALUES ('late', 'm', 1, 1)")
    conn.commit()
    assert Path(str(src) + "-wal").stat().st_size > 0
    before = src.read_bytes()
    snap = artifacts.snapshot_db(src, tmp_path / "out" / "usage.db")
    conn.close()
    assert before  # the source file was not rewritten by the snapshot
    rows = sqlite3.connect(snap).execute("SELECT COUNT(*) FROM llm_calls WHERE function_name='late'").fetchone()
    assert rows == (1,)
    with zipfile.ZipFile(io.BytesIO(zip_bytes({"usage.db": snap.read_bytes()}))) as zf:
        assert zf.namelist() == ["usage.db"]


def test_fit_body_caps_and_keeps_the_marker():
    body = comment.MARKER + "\n" + "\n".join("| row | " + "x" * 90 + " |" for _ in range(2000))
    fitted = comment.fit_body(body)
    assert len(fitted) <= comment.BODY_MAX_CHARS
    assert fitted.startswith(comment.MARKER) and "Cut to fit" in fitted
    assert comment.fit_body("hello").startswith(comment.MARKER + "\n")
    assert comment.is_ours(comment.MARKER + "\nx") and not comment.is_ours("> " + comment.MARKER)


def test_event_json_round_trip(tmp_path, gh):
    from tokenspy.ci.event import load

    gh.add_pull(PR_NUMBER, BASE_SHA, "2" * 40, head_repo="contributor/shop")
    path = tmp_path / "event.json"
    path.write_text(json.dumps(gh.pull_request_event(PR_NUMBER)))
    ev = load("pull_request", str(path), f"refs/pull/{PR_NUMBER}/merge")
    assert ev.is_fork and ev.pr_number == PR_NUMBER and ev.base_sha == BASE_SHA
    path.write_text("[1, 2]")
    with pytest.raises(UsageError, match="not a JSON object"):
        load("pull_request", str(path))
