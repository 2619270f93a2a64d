"""compare_commits on a real git repository (GitPython) and one DB with rows of several commits."""

from __future__ import annotations

import io
import subprocess

import git
import pytest

from tokenspy import store
from tokenspy.ci import compare_commits
from tokenspy.ci.gitrev import RevisionError, is_shallow, resolve
from tokenspy.record import CallRecord


def rec(fn: str, inp: int, commit: str, test: str = "tests/test_a.py::test_x") -> CallRecord:
    return CallRecord(fn, "gpt-4o", "openai", inp, 100, 0.0, 1.0, 1.75e9, git_commit=commit, test_id=test,
                      source_file="src/app.py", source_line=3, run_id=f"run-{commit[:6]}")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """Four commits on main (c0..c3), a branch `feature` at c1, an annotated tag v1 at c2, and a DB
    with rows for c1, c2 and c3 (c0 has none)."""
    root = tmp_path_factory.mktemp("repo")
    r = git.Repo.init(root, initial_branch="main")
    with r.config_writer() as cw:
        cw.set_value("user", "name", "T").set_value("user", "email", "t@example.com")
    shas = []
    for i in range(4):
        (root / "f.txt").write_text(f"v{i}\n")
        r.index.add(["f.txt"])
        shas.append(r.index.commit(f"c{i}").hexsha)
    r.create_head("feature", shas[1])
    r.create_tag("v1", ref=shas[2], message="release 1")
    db = tmp_path_factory.mktemp("db") / "usage.db"
    store.write_records(db, [rec("summarize", 1000, shas[1]), rec("summarize", 1000, shas[2]),
                             rec("summarize", 2000, shas[3]), rec("other", 10, shas[3])])
    r.close()
    return root, shas, db


@pytest.fixture(autouse=True)
def no_actions(monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)


def run(db, a, b, **kw):
    return compare_commits(db, a, b, output=io.StringIO(), pyproject=False, **kw)


@pytest.mark.parametrize(("rev", "index"), [
    ("HEAD", 3), ("HEAD~1", 2), ("main~2", 1), ("feature", 1), ("v1", 2), ("refs/tags/v1", 2),
])
def test_revision_forms(repo, rev, index):
    root, shas, _ = repo
    assert resolve(rev, repo=root) == shas[index]


def test_short_and_full_shas(repo, tmp_path):
    root, shas, db = repo
    assert resolve(shas[2][:7], repo=root) == shas[2]
    # a full SHA needs no repository at all
    assert resolve(shas[2].upper(), repo=tmp_path) == shas[2]
    # outside a repository, a short SHA can still match one commit stored in the DB
    assert resolve(shas[3][:8], repo=tmp_path, db_path=str(db)) == shas[3]
    with pytest.raises(RevisionError, match="not in a git repository"):
        resolve("HEAD", repo=tmp_path)


def test_compare_head_parent(repo, monkeypatch):
    root, shas, db = repo
    monkeypatch.chdir(root)
    d = run(db, "HEAD~1", "HEAD")
    assert d.baseline.commit == shas[2] and d.current.commit == shas[3]
    assert d.baseline.calls == 1 and d.current.calls == 2
    assert {r.key: r.change for r in d.functions} == {"summarize": "increased", "other": "new"}
    assert d.reproduce.startswith(f"tokenspy compare {shas[2][:12]} {shas[3][:12]} --db ")
    same = run(db, "v1", "feature", repo=root)  # same token counts: nothing changed
    assert same.total.change == "unchanged" and not same.regressions


def test_commit_without_rows_is_an_error_naming_it(repo):
    root, shas, db = repo
    with pytest.raises(RevisionError) as exc:
        run(db, "main~3", "HEAD", repo=root)
    assert "'main~3'" in str(exc.value) and shas[0] in str(exc.value) and str(db) in str(exc.value)
    with pytest.raises(RevisionError, match="unknown revision 'nope'"):
        run(db, "nope", "HEAD", repo=root)


def test_shallow_clone(repo, tmp_path):
    root, shas, db = repo
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", root.as_uri(), str(clone)], check=True)
    r = git.Repo(clone)
    try:
        assert is_shallow(r)
    finally:
        r.close()
    assert resolve("HEAD", repo=clone) == shas[3]
    # history that was not fetched: say how to get it
    for rev in ("feature", "HEAD~3", shas[0][:10]):
        with pytest.raises(RevisionError) as exc:
            resolve(rev, repo=clone)
        assert "shallow" in str(exc.value) and "fetch-depth: 0" in str(exc.value)
    # a commit the DB has rows for still resolves by its short SHA
    d = run(db, shas[1][:10], "HEAD", repo=clone)
    assert d.baseline.commit == shas[1]
