"""Harness for the GitHub Action's end-to-end tests.

It reads action.yml, renders the composite steps' ``${{ … }}`` expressions the way the runner
would (inputs with their defaults, ``github.action_path``, ``runner.temp``, step outputs), runs a
step's ``run:`` script with ``bash --noprofile --norc -eo pipefail`` (the runner's ``shell: bash``)
and the variables a runner sets, then parses ``$GITHUB_OUTPUT`` into the step's and the action's
outputs. The GitHub API is the loopback server of ``github_server.py``. Every run asserts that the
token appears in none of what the action wrote.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from github_server import GitHubServer

ROOT = Path(__file__).resolve().parents[2]
ACTION_YML = ROOT / "action.yml"
ENTRYPOINT = ROOT / "entrypoint.sh"

BASE_SHA = "1" * 40  # the PR's base commit (event payload: pull_request.base.sha)
HEAD_SHA = "2" * 40  # the PR's head commit
MERGE_SHA = "3" * 40  # GITHUB_SHA of a pull_request run: the merge commit the tests ran on
PR_NUMBER = 7

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_CMP = re.compile(r"^(.+?)\s*(==|!=)\s*'([^']*)'$")


def load_action() -> dict[str, Any]:
    import yaml

    with open(ACTION_YML, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def lookup(path: str, ctx: Mapping[str, Any]) -> str:
    """``inputs.x`` / ``steps.a.outputs.b`` / ``github.action_path`` … (unknown names are a
    test failure: they would be empty strings on a runner, which hides typos)."""
    value: Any = ctx
    for part in path.split("."):
        if not isinstance(value, Mapping):
            raise KeyError(path)
        if part not in value:
            if path.startswith("steps.") and ".outputs." in path:
                return ""  # an output a step did not set is empty
            raise KeyError(f"unknown expression {path!r}")
        value = value[part]
    return "" if value is None else str(value)


def evaluate(expr: str, ctx: Mapping[str, Any]) -> Any:
    expr = expr.strip()
    if expr.startswith("${{") and expr.endswith("}}"):
        expr = expr[3:-2].strip()
    m = _CMP.match(expr)
    if m:
        left = lookup(m.group(1).strip(), ctx)
        return (left == m.group(3)) if m.group(2) == "==" else (left != m.group(3))
    return lookup(expr, ctx)


def render(text: str, ctx: Mapping[str, Any]) -> str:
    return _EXPR.sub(lambda m: str(evaluate(m.group(1), ctx)), text)


def parse_env_file(text: str) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` syntax: ``name=value`` and ``name<<DELIM`` … ``DELIM``."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            value = []
            while lines[i] != delim:
                value.append(lines[i])
                i += 1
            i += 1
            out[name] = "\n".join(value)
        else:
            name, _, value = line.partition("=")
            out[name] = value
    return out


def make_db(path: Path, *, scale: float = 1.0, commit: str | None = MERGE_SHA, run_id: str = "run-1",
            functions: int = 0, long_names: int = 0) -> Path:
    """A DB as ``pytest --tokenspy`` writes it: two LLM functions in two tests, tokens times
    ``scale`` for the summarizer. ``functions`` adds that many cheap functions (many keys)."""
    from tokenspy.record import CallRecord
    from tokenspy.store import write_records

    now = time.time()

    def rec(fn: str, test: str, model: str, inp: int, out: int, line: int) -> CallRecord:
        return CallRecord(function_name=fn, model=model, provider="openai", input_tokens=inp,
                          output_tokens=out, cost_usd=0.0, duration_ms=5.0, timestamp=now,
                          git_commit=commit, test_id=test, source_file="app.py", source_line=line,
                          run_id=run_id, session_id=run_id)

    records = [
        rec("app.summarize", "tests/test_app.py::test_summarize", "gpt-4o", int(2000 * scale), 100, 10),
        rec("app.classify", "tests/test_app.py::test_classify", "gpt-4o-mini", 300, 5, 20),
    ]
    for i in range(functions):
        name = f"app.helper_{i:05d}" + ("_" + "x" * 200 if i < long_names else "")
        records.append(rec(name, f"tests/test_many.py::test_{i}", "gpt-4o-mini", 100 + i, 10, 30 + i))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_records(path, records)
    return path


def zip_bytes(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1",
           "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def shallow_clone(tmp_path: Path, workspace: Path) -> tuple[str, str]:
    """A repo with two commits, cloned with ``--depth 1`` into ``workspace`` (as actions/checkout
    does by default). Returns (base, head) SHAs; the base commit is NOT in the clone."""
    src = tmp_path / "origin"
    src.mkdir()
    _git(src, "init", "-q", "-b", "main")
    (src / "app.py").write_text("PROMPT = 'short'\n")
    _git(src, "add", ".")
    _git(src, "commit", "-q", "-m", "base")
    base = _git(src, "rev-parse", "HEAD")
    (src / "app.py").write_text("PROMPT = 'a much longer prompt'\n")
    _git(src, "commit", "-q", "-am", "prompt change")
    head = _git(src, "rev-parse", "HEAD")
    _git(tmp_path, "clone", "-q", "--depth", "1", src.as_uri(), str(workspace))
    assert _git(workspace, "rev-parse", "--is-shallow-repository") == "true"
    assert subprocess.run(["git", "cat-file", "-e", f"{base}^{{commit}}"], cwd=workspace,
                          capture_output=True).returncode != 0, "the base commit must be missing"
    return base, head


@dataclass
class ActionRun:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]  # the tokenspy step's outputs
    action_outputs: dict[str, str]  # action.yml's outputs, evaluated
    summary: str
    upload: dict[str, str] | None  # the upload step's `with:` when its `if:` holds, else None
    env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("::error")]


class Runner:
    """One job's worth of runner state: a workspace, RUNNER_TEMP, the event, the API server."""

    def __init__(self, tmp_path: Path, gh: GitHubServer) -> None:
        self.tmp = tmp_path
        self.gh = gh
        self.workspace = tmp_path / "workspace"
        self.workspace.mkdir()
        self.temp = tmp_path / "runner-temp"
        self.temp.mkdir()
        self.action = load_action()
        self.runs = 0
        self.event_name = "pull_request"
        self.event: dict[str, Any] = {}
        self.ref = f"refs/pull/{PR_NUMBER}/merge"
        self.sha = MERGE_SHA

    # events ------------------------------------------------------------------
    def pull_request(self, number: int = PR_NUMBER, *, fork: bool = False, base_sha: str = BASE_SHA,
                     head_sha: str = HEAD_SHA) -> Runner:
        self.gh.add_pull(number, base_sha, head_sha, head_repo="contributor/shop" if fork else None)
        self.event_name, self.event = "pull_request", self.gh.pull_request_event(number)
        self.ref, self.sha = f"refs/pull/{number}/merge", MERGE_SHA
        return self

    def push(self, sha: str = BASE_SHA, branch: str | None = None) -> Runner:
        self.event_name, self.event = "push", self.gh.push_event(sha, branch)
        self.ref, self.sha = self.event["ref"], sha
        return self

    # steps -------------------------------------------------------------------
    def step(self, step_id: str) -> dict[str, Any]:
        for step in self.action["runs"]["steps"]:
            if step.get("id") == step_id:
                return step
        raise KeyError(step_id)

    def context(self, inputs: Mapping[str, str], steps: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
        base = {"github": {"action_path": str(ROOT), "token": self.gh.token}, "runner": {"temp": str(self.temp)}}
        values = {}
        for name, spec in self.action["inputs"].items():
            default = str(spec.get("default", "")) if spec.get("default") is not None else ""
            values[name] = inputs.get(name, render(default, base))
        unknown = set(inputs) - set(values)
        assert not unknown, f"not inputs of action.yml: {unknown}"
        return {**base, "inputs": values, "steps": {k: {"outputs": dict(v)} for k, v in steps.items()}}

    def runner_env(self, run_dir: Path) -> dict[str, str]:
        event_path = run_dir / "event.json"
        event_path.write_text(json.dumps(self.event), encoding="utf-8")
        (run_dir / "summary.md").touch()
        (run_dir / "output.txt").touch()
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.tmp), "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1", "CI": "true",
            "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": self.event_name, "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_REPOSITORY": self.gh.full_name, "GITHUB_API_URL": self.gh.base_url,
            "GITHUB_SERVER_URL": self.gh.host, "GITHUB_STEP_SUMMARY": str(run_dir / "summary.md"),
            "GITHUB_OUTPUT": str(run_dir / "output.txt"), "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_REF": self.ref, "GITHUB_SHA": self.sha, "GITHUB_RUN_ID": str(900 + self.runs),
            "GITHUB_RUN_ATTEMPT": "1", "GITHUB_JOB": "cost", "RUNNER_TEMP": str(self.temp), "RUNNER_OS": "Linux",
        }

    def run_step(self, step_id: str, ctx: Mapping[str, Any], env: Mapping[str, str], run_dir: Path,
                 ) -> subprocess.CompletedProcess[str]:
        step = self.step(step_id)
        assert step.get("shell") == "bash"
        script = run_dir / f"{step_id}.sh"
        script.write_text(render(step["run"], ctx), encoding="utf-8")
        step_env = {**env, **{k: render(str(v), ctx) for k, v in (step.get("env") or {}).items()}}
        return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                              cwd=self.workspace, env=step_env, capture_output=True, text=True, timeout=60)

    def run(self, inputs: Mapping[str, str] | None = None, *, extra_env: Mapping[str, str] | None = None
            ) -> ActionRun:
        """Run the action's main step (entrypoint.sh) as the runner would."""
        self.runs += 1
        run_dir = self.tmp / f"run-{self.runs}"
        run_dir.mkdir()
        env = {**self.runner_env(run_dir), **(extra_env or {})}
        installed = {"install": {"python": sys.executable}, "setup-python": {}}
        ctx = self.context(inputs or {}, installed)
        proc = self.run_step("tokenspy", ctx, env, run_dir)
        outputs = parse_env_file((run_dir / "output.txt").read_text(encoding="utf-8"))
        ctx = self.context(inputs or {}, {**installed, "tokenspy": outputs})
        action_outputs = {name: render(str(spec["value"]), ctx) for name, spec in self.action["outputs"].items()}
        upload_step = self.step("upload")
        upload = None
        if proc.returncode == 0 and evaluate(upload_step["if"], ctx):
            upload = {k: render(str(v), ctx) for k, v in upload_step["with"].items()}
        result = ActionRun(proc.returncode, proc.stdout, proc.stderr, outputs, action_outputs,
                           (run_dir / "summary.md").read_text(encoding="utf-8"), upload, env)
        # shown by pytest when a test fails
        print(f"--- run {self.runs}: exit {proc.returncode}\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
        report = Path(outputs["report-path"]).read_text(encoding="utf-8") if outputs.get("report-path") else ""
        for text in (result.stdout, result.stderr, result.summary, json.dumps(outputs), report):
            assert self.gh.token not in text, "the token was printed"
        return result

    def upload_artifact(self, upload: Mapping[str, str], sha: str) -> dict[str, Any]:
        """What actions/upload-artifact does with the upload step's `with:`: the file, zipped
        under its base name, as an artifact of a (successful, push) run."""
        path = Path(upload["path"])
        assert path.is_file(), upload
        return self.gh.add_artifact(upload["name"], zip_bytes({path.name: path.read_bytes()}), head_sha=sha)


@pytest.fixture
def gh() -> Iterator[GitHubServer]:
    server = GitHubServer().start()
    yield server
    server.stop()


@pytest.fixture
def runner(tmp_path: Path, gh: GitHubServer) -> Runner:
    return Runner(tmp_path, gh)
