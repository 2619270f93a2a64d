"""Where annotations point (issue 18, item 8): a call made outside any ``@profile`` function during a
test is stored with the location of the function that made it, so a dearer function is annotated
at its own ``def`` (a dearer test at its own ``def`` line: tests/unit/test_ci_github.py). Real
pytest runs of a sample project in a real git repository, diffed with ``compare_commits``."""

from __future__ import annotations

import ast
from pathlib import Path

import git
import openai  # noqa: F401  (imported here so in-process pytester runs share the patched SDK)
import pytest

from tokenspy.ci import compare_commits, github

APP = '''
PROMPT = "Summarize this."


def helper_summarize(client):
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}])
'''
TESTS = '''
from app import helper_summarize


def test_summary(client):
    assert helper_summarize(client)
'''


def def_line(path: Path, name: str) -> int:
    return next(n.lineno for n in ast.walk(ast.parse(path.read_text())) if getattr(n, "name", None) == name)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch) -> pytest.Pytester:
    from test_pytest_plugin import CONFTEST

    for name in ("GITHUB_ACTIONS", "TOKENSPY_DB", "TOKENSPY_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(app=APP, test_app=TESTS)
    pytester.makepyprojecttoml('[tool.tokenspy]\nusage = "request"\n')
    repo = git.Repo.init(pytester.path)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "t").set_value("user", "email", "t@example.com")
    (pytester.path / ".gitignore").write_text(".tokenspy/\n__pycache__/\n")
    repo.index.add(["conftest.py", "app.py", "test_app.py", ".gitignore", "pyproject.toml"])
    repo.index.commit("v1")
    repo.close()
    return pytester


def test_a_dearer_helper_is_annotated_at_its_def_and_the_test_at_its_def(project, monkeypatch):
    project.runpytest_subprocess("--tokenspy").assert_outcomes(passed=1)
    project.makepyfile(app=APP.replace('"Summarize this."', '"Summarize this. " * 50'))
    repo = git.Repo(project.path)
    repo.index.add(["app.py"])
    repo.index.commit("longer prompt")
    repo.close()
    project.runpytest_subprocess("--tokenspy").assert_outcomes(passed=1)

    monkeypatch.chdir(project.path)
    d = compare_commits(".tokenspy/usage.db", "HEAD~1", "HEAD", repo=str(project.path), output=None,
                        github=False, fail_on_regression=True)
    lines = github.annotations(d, root=project.path)
    (fn,) = lines  # one change, one regression: the function explains its test
    assert "function app.helper_summarize" in fn
    assert f"file=app.py,line={def_line(project.path / 'app.py', 'helper_summarize')}," in fn
