"""``tokenspy demo``: the whole CI chain, offline, on a throwaway git repo.

It writes a tiny LLM app and its tests (a real OpenAI client whose HTTP goes to a local
transport: no network, no key), records the test run of a base commit with the pytest plugin,
commits a prompt change that makes one function dearer, records again, then runs what a CI job
runs: the commit-to-commit diff with annotations, the Markdown job summary and the step outputs
(written to files it names), and the gate's verdict.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

APP = '''\
"""A tiny LLM app. Its OpenAI client talks to a local mock of the API."""

import httpx2
import openai

import tokenspy

SUMMARY_PROMPT = "Summarize the text in one sentence."

# What a test suite's mock usually is: one canned completion, its model and usage fixed whatever
# the request. tokenspy runs in request mode ([tool.tokenspy] usage = "request" in
# pyproject.toml), so it prices what each request asks for and still sees a prompt change.
CANNED = {
    "id": "chatcmpl-demo", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "A short answer."}}],
    "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
}


def _local_api(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, json=CANNED)


client = openai.OpenAI(
    api_key="demo-key-not-secret",
    base_url="https://api.openai.invalid/v1",
    http_client=httpx2.Client(transport=httpx2.MockTransport(_local_api)),
    max_retries=0,
)


@tokenspy.profile
def summarize(text: str) -> str:
    r = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": SUMMARY_PROMPT}, {"role": "user", "content": text}],
    )
    return r.choices[0].message.content


@tokenspy.profile
def classify(text: str) -> str:
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Label as bug or feature: " + text}],
    )
    return r.choices[0].message.content
'''

TESTS = '''\
from app import classify, summarize


def test_summarize():
    assert summarize("tokenspy records what every LLM call costs, per test and per commit.")


def test_classify():
    assert classify("the login button does nothing")
'''

PYPROJECT = """\
[tool.tokenspy]
# price what each request asks for (its model, its prompt counted with the model's tokenizer,
# the canned answer), not the usage the mock reports: stable, and it sees a prompt change
usage = "request"
"""

# The "prompt change" of the second commit: few-shot examples make every summarize call dearer.
PROMPT_CHANGE = (
    'SUMMARIZE_EXAMPLES = " ".join(["Example: a long text, then its one-sentence summary."] * 40)\n'
    'SUMMARY_PROMPT = "Summarize the text in one sentence. " + SUMMARIZE_EXAMPLES\n'
)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=tokenspy demo", "-c", "user.email=demo@tokenspy.invalid",
         "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def _run_tests(repo: Path, out: TextIO) -> None:
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("GITHUB_ACTIONS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", "--tokenspy"],
        cwd=repo, env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the demo's test run failed:\n{proc.stdout}\n{proc.stderr}")
    summary = proc.stdout.split("tokenspy: LLM cost", 1)[-1].splitlines()[1:]
    for line in summary:
        if line.startswith("=") or not line.strip():
            continue
        out.write(f"    {line}\n")


@contextmanager
def _github_env(files: dict[str, Path]):
    """Act like a GitHub runner for the diff: summary and outputs appended to files. Workflow
    commands go to a file too: on a terminal a raw ``::error …`` line is noise, and under a
    real runner (GITHUB_ACTIONS=true) they would annotate the demo's own job."""
    keys = ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITHUB_WORKSPACE", "RUNNER_TEMP")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({
        "GITHUB_STEP_SUMMARY": str(files["summary"]),
        "GITHUB_OUTPUT": str(files["outputs"]),
        "GITHUB_WORKSPACE": str(files["repo"]),
        "RUNNER_TEMP": str(files["runner_temp"]),
    })
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_demo(directory: str | os.PathLike[str] | None = None, out: TextIO = sys.stdout) -> int:
    """Run the tour; returns 0 when the chain behaved as expected (it flags the regression)."""
    started = time.perf_counter()
    base = Path(directory).expanduser().resolve() if directory else Path(tempfile.mkdtemp(prefix="tokenspy-demo-"))
    if base.exists() and not base.is_dir():
        raise NotADirectoryError(f"{base}: not a directory (--dir names the directory to create the demo in)")
    repo = base / "llm-app"
    if repo.exists() and any(repo.iterdir()):
        raise FileExistsError(f"{repo} already exists and is not empty")
    (repo / "tests").mkdir(parents=True)
    (repo / "app.py").write_text(APP)
    (repo / "tests" / "test_app.py").write_text(TESTS)
    (repo / ".gitignore").write_text(".tokenspy/\n__pycache__/\n")
    (repo / "pyproject.toml").write_text(PYPROJECT)
    _git(repo, "init", "-q")
    w = out.write

    w(f"tokenspy demo — a throwaway repo at {repo}\n")
    w("The app's tests mock the API with one canned answer (usage fixed at 1,200 in / 300 out), as test\n"
      "suites do; tokenspy runs in request mode, so it prices what each request asks for.\n\n")
    first = _commit(repo, "tiny LLM app with tests")
    w(f"1. base commit {first[:12]}: run the tests under `pytest --tokenspy`\n")
    _run_tests(repo, out)

    app = (repo / "app.py").read_text()
    (repo / "app.py").write_text(app.replace('SUMMARY_PROMPT = "Summarize the text in one sentence."\n',
                                             PROMPT_CHANGE))
    second = _commit(repo, "summarize: add few-shot examples to the prompt")
    w(f"\n2. prompt change {second[:12]}: few-shot examples in summarize's prompt; run the tests again\n")
    _run_tests(repo, out)

    db = repo / ".tokenspy" / "usage.db"
    files = {
        "repo": repo,
        "summary": base / "step-summary.md",
        "outputs": base / "step-outputs.txt",
        "runner_temp": base / "runner-temp",
        "commands": base / "workflow-commands.txt",
    }
    files["runner_temp"].mkdir(exist_ok=True)
    w("\n3. the CI step: `tokenspy compare HEAD~1 HEAD --fail-on-regression` as a GitHub runner sees it\n")
    w("-" * 78 + "\n")
    out.flush()
    from tokenspy.ci import compare_commits, github
    from tokenspy.ci.markdown import Extras, headline, render_markdown
    from tokenspy.ci.trend import history, one_line
    from tokenspy.reporting.data import ReportData
    from tokenspy.reporting.diff_html import render_diff_html

    cwd = os.getcwd()
    os.chdir(repo)
    try:
        with _github_env(files):
            diff = compare_commits(str(db), "HEAD~1", "HEAD", repo=str(repo), fail_on_regression=True,
                                   format=None, github=False)
            extras = Extras("This PR", trend=history(str(db)))
            w(render_markdown(diff, extras=extras))
            with open(files["commands"], "w", encoding="utf-8") as fh:
                github.publish(diff, fh, root=repo, extras=extras)
    finally:
        os.chdir(cwd)
    html = base / "tokenspy-report.html"
    html.write_text(render_diff_html(diff, headline=headline(diff, extras),
                                     base_data=ReportData.from_db(db, first), head_data=ReportData.from_db(db, second)),
                    encoding="utf-8")
    w("-" * 78 + "\n\n")
    w(f"headline: {headline(diff, extras)}\n")
    if extras.trend is not None:
        w(f"trend   : {one_line(extras.trend)}  (the summary draws it as a Mermaid chart)\n")
    w("\nannotations on the pull request's diff:\n")
    for line in github.annotations(diff, root=repo):
        w(f"  {github.describe_command(line)}\n")
    w(f"\nverdict: {diff.verdict}  (a real CI step would now exit 1 and fail the check)\n")
    w(f"HTML report (side by side, flame graphs): {html}\n")
    w(f"job summary (Markdown)  : {files['summary']}\n")
    w(f"step outputs            : {files['outputs']}\n")
    w(f"workflow commands       : {files['commands']}\n")
    w(f"usage DB (both commits) : {db}\n")
    w(f"try it yourself         : cd {repo} && tokenspy compare HEAD~1 HEAD && tokenspy report\n")
    w(f"done in {time.perf_counter() - started:.1f} s, offline, no API key.\n")
    return 0 if diff.verdict == "fail" else 1


