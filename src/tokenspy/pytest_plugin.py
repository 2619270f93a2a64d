"""pytest plugin: cost per test, a git-tagged DB for the CI diff, a budget marker, the gate.

Registered through the ``pytest11`` entry point for everyone who installs tokenspy, so it does
nothing (and imports nothing heavy) unless asked for with ``--tokenspy`` or ``tokenspy = true``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

DEFAULT_DB = ".tokenspy/usage.db"
_ENABLED = pytest.StashKey["_State"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tokenspy", "LLM cost tracking (tokenspy)")
    group.addoption(
        "--tokenspy", nargs="?", const=True, default=None, metavar="PATH",
        help="record the cost of every LLM call per test into a SQLite DB (default $TOKENSPY_DB, else "
             f"{DEFAULT_DB} at the top of the git work tree, else ~/{DEFAULT_DB})",
    )
    group.addoption("--tokenspy-baseline", metavar="PATH",
                    help="diff this run against a baseline DB at the end; a regression fails the run")
    group.addoption("--tokenspy-max-increase-pct", type=float, metavar="PCT",
                    help="allowed relative cost increase (default from [tool.tokenspy.ci] or 10)")
    group.addoption("--tokenspy-max-increase-usd", type=float, metavar="USD",
                    help="allowed absolute cost increase (default from [tool.tokenspy.ci] or none)")
    group.addoption("--tokenspy-usage", metavar="SOURCE",
                    help="where token counts come from: response (what the response reports) or request "
                         "(counted from each request and answer: stable under mocks); default from "
                         "TOKENSPY_USAGE, [tool.tokenspy] usage, or response")
    group.addoption("--tokenspy-otlp", nargs="?", const=True, default=None, metavar="ENDPOINT",
                    help="also send every LLM call to an OpenTelemetry collector as a span (implies --tokenspy): "
                         "its OTLP/HTTP URL, e.g. http://localhost:4318, or none for the OTEL_EXPORTER_OTLP_* "
                         "variables; default from [tool.tokenspy] otlp. Needs tokenspy[otel]")
    group.addoption("--tokenspy-top", type=int, default=10, metavar="N",
                    help="tests listed in the terminal summary (default 10)")
    parser.addini("tokenspy", "record LLM costs per test (like --tokenspy)", type="bool", default=False)
    parser.addini("tokenspy_db", f"DB path for --tokenspy (default {DEFAULT_DB})", default="")


def _pyproject_setting(rootdir: Path) -> Any:
    """``[tool.tokenspy] pytest = true | "path"`` (``tokenspy = …`` accepted too)."""
    path = rootdir / "pyproject.toml"
    if not path.is_file():
        return None
    from tokenspy import pyproject

    try:
        _, table = pyproject.tool_table(path)
    except (OSError, ValueError):
        return None
    return table.get("pytest", table.get("tokenspy"))


def _usage(config: pytest.Config) -> str:
    """The usage source: --tokenspy-usage, then TOKENSPY_USAGE, then [tool.tokenspy] usage."""
    from tokenspy import pyproject, usage_source

    value = config.getoption("tokenspy_usage") or os.environ.get("TOKENSPY_USAGE")
    where = "--tokenspy-usage" if config.getoption("tokenspy_usage") else "TOKENSPY_USAGE"
    if not value:
        try:
            path, table = pyproject.tool_table(config.rootpath)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        value, where = table.get("usage", "response"), f"{path}: [tool.tokenspy] usage"
    try:
        return usage_source.check(value)
    except ValueError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None


def _otlp(config: pytest.Config) -> Any:
    """Where to export (``tokenspy.export.otlp.Target``), from --tokenspy-otlp or
    ``[tool.tokenspy] otlp = true | "url"``; None: no export. Bad values are usage errors."""
    value, where = config.getoption("tokenspy_otlp"), "--tokenspy-otlp"
    if value is None:
        from tokenspy import pyproject

        try:
            path, table = pyproject.tool_table(config.rootpath)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        value, where = table.get("otlp"), f"{path}: [tool.tokenspy] otlp"
        if value is None or value is False:
            return None
        if not (value is True or isinstance(value, str)):
            raise pytest.UsageError(f"{where} must be true, false or the collector's URL, not {value!r}")
    elif isinstance(value, str) and "://" not in value:  # `pytest --tokenspy-otlp tests/`
        raise pytest.UsageError(f"--tokenspy-otlp takes the collector's URL, not {value!r}: write "
                                "`--tokenspy-otlp=http://host:4318` or put test paths before --tokenspy-otlp")
    from tokenspy.export import MissingExtra, live

    try:
        return live.resolve(value, where)
    except (MissingExtra, ValueError) as exc:
        raise pytest.UsageError(f"{where}: {exc}" if isinstance(exc, ValueError) else str(exc)) from None


def _db_path(config: pytest.Config, wanted: bool = False) -> Path | None:
    opt = config.getoption("tokenspy")
    ini_on = config.getini("tokenspy")
    setting = _pyproject_setting(config.rootpath)
    if not wanted and opt is None and not ini_on and not setting and not config.getoption("tokenspy_baseline"):
        return None
    if isinstance(opt, str):
        if opt.endswith(".py") or "::" in opt or Path(opt).is_dir():
            # `pytest --tokenspy tests/`: argparse gave the test path to the option
            raise pytest.UsageError(
                f"--tokenspy takes a DB path, not {opt!r}: write `--tokenspy={DEFAULT_DB}` or put test "
                "paths before --tokenspy"
            )
        raw = opt
    elif config.getini("tokenspy_db"):
        raw = str(config.getini("tokenspy_db"))
    elif isinstance(setting, str):
        raw = setting
    else:  # the one rule of every command (tokenspy.dbpath): $TOKENSPY_DB, the repo's, ~'s
        from tokenspy import dbpath

        return dbpath.find(None, writing=True, cwd=config.rootpath)
    path = Path(raw).expanduser()
    return path if path.is_absolute() else config.rootpath / path


def _default_run_id() -> str:
    """One id per test run. Matrix shards of one workflow run share GitHub's run id, so the CI
    diff sums them as one run instead of guessing; ``TOKENSPY_RUN_ID`` overrides."""
    explicit = os.environ.get("TOKENSPY_RUN_ID")
    if explicit:
        return explicit
    gh = os.environ.get("GITHUB_RUN_ID")
    if gh and os.environ.get("GITHUB_ACTIONS") == "true":
        return f"gh-{gh}-{os.environ.get('GITHUB_RUN_ATTEMPT', '1')}"
    return uuid.uuid4().hex


class _State:
    def __init__(self, db: Path, run_id: str, worker: bool) -> None:
        self.db = db
        self.run_id = run_id
        self.worker = worker
        self.started_at = time.time()
        self.git: Any = None  # tokenspy.gitstate.GitState of the code under test (controller only)
        self.tracker: Any = None
        self.previous_tracker: Any = None
        self.previous_run_id: str | None = None
        self.previous_git: bool = False
        self.previous_usage = "response"
        self.otlp = False  # this plugin started the live OTLP export


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "tokenspy_budget(usd): fail the test when its LLM calls cost more than usd dollars"
    )
    otlp = _otlp(config)
    db = _db_path(config, wanted=otlp is not None)
    if db is None:
        # a budget marker is a test's own assertion: it holds with the plugin off too
        config.pluginmanager.register(_MarkedOnly(), "tokenspy-budgets")
        return
    usage = _usage(config)
    workerinput = getattr(config, "workerinput", None)
    run_id = (workerinput or {}).get("tokenspy_run_id") or _default_run_id()
    state = _State(db, run_id, worker=workerinput is not None)
    config.stash[_ENABLED] = state
    if not state.worker:
        from tokenspy import gitstate

        # read before the tests run: the code they test, not what they may leave behind
        state.git = gitstate.read(config.rootpath)

    from tokenspy import interceptor
    from tokenspy.config import config as ts_config
    from tokenspy.tracker import Tracker, get_global_tracker, set_global_tracker

    state.previous_tracker = get_global_tracker()
    state.previous_run_id = ts_config.run_id
    state.previous_git = ts_config.track_git
    state.previous_usage = ts_config.usage
    state.tracker = Tracker(persist_path=db)
    set_global_tracker(state.tracker)
    ts_config.run_id = run_id
    ts_config.track_git = True
    ts_config.usage = usage
    interceptor.ensure_active()
    if otlp is not None:  # every process that makes calls (each xdist worker) exports its own
        from tokenspy.export import live

        live.configure(otlp)
        state.otlp = True
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(state), "tokenspy-xdist")
    config.pluginmanager.register(_Recorder(state), "tokenspy-recorder")


class _XdistHooks:
    """Give every worker the controller's run id: one run, however many processes."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["tokenspy_run_id"] = self.state.run_id


def _location(item: pytest.Item) -> tuple[str | None, int | None]:
    from tokenspy.gitinfo import repo_relative

    fspath, lineno, _ = item.location
    path = str(item.config.rootpath / fspath)
    code = getattr(getattr(item, "function", None), "__code__", None)
    line = code.co_firstlineno if code is not None else (lineno + 1 if lineno is not None else None)
    return repo_relative(path), line


class _Budgets:
    """Each test's cost, summed while its phases run, and its ``tokenspy_budget`` marker."""

    def __init__(self) -> None:
        self.costs: dict[str, float] = {}

    def _phase(self, item: pytest.Item, phase: str) -> Generator[None, Any, Any]:
        from tokenspy import context
        from tokenspy.context import TestContext

        source, line = _location(item)
        nodeid = item.nodeid
        costs = self.costs

        def collect(rec: Any) -> None:
            costs[nodeid] = costs.get(nodeid, 0.0) + rec.cost_usd

        test = TestContext(nodeid, source, line, phase)
        test_token = context.current_test.set(test)
        collect_token = context.collectors.set((*context.collectors.get(), collect))
        # calls in the test's worker threads (their context has no test) fall back to this
        previous, context.running_test = context.running_test, (test, (collect,))
        try:
            return (yield)
        finally:
            context.running_test = previous
            context.collectors.reset(collect_token)
            context.current_test.reset(test_token)


    def _check_budget(self, item: pytest.Item) -> None:
        marker = item.get_closest_marker("tokenspy_budget")
        if marker is None:
            return
        usd = marker.kwargs.get("usd", marker.args[0] if marker.args else None)
        if not isinstance(usd, (int, float)) or isinstance(usd, bool) or usd < 0:
            pytest.fail(f"tokenspy_budget needs usd=<non-negative number>, got {usd!r}", pytrace=False)
        spent = self.costs.get(item.nodeid, 0.0)
        if spent > usd and not item.stash.get(_BUDGET_FAILED, False):
            item.stash[_BUDGET_FAILED] = True
            pytest.fail(f"LLM calls cost ${spent:.6f}, over this test's budget of ${usd:.6f}", pytrace=False)

    def _wanted(self, item: pytest.Item) -> bool:
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, Any, Any]:
        if not self._wanted(item):
            return (yield)
        return (yield from self._phase(item, "setup"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        if not self._wanted(item):
            return (yield)
        result = yield from self._phase(item, "call")
        self._check_budget(item)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: Any) -> Generator[None, Any, Any]:
        if not self._wanted(item):
            return (yield)
        result = yield from self._phase(item, "teardown")
        self._check_budget(item)
        return result


class _MarkedOnly(_Budgets):
    """The plugin off: only tests with a ``tokenspy_budget`` marker are recorded, in memory (the
    global tracker), so that their budget is checked; nothing is written."""

    def __init__(self) -> None:
        super().__init__()
        self.active = False

    def _wanted(self, item: pytest.Item) -> bool:
        if item.get_closest_marker("tokenspy_budget") is None:
            return False
        if not self.active:
            from tokenspy import interceptor

            interceptor.ensure_active()
            self.active = True
        return True


class _Recorder(_Budgets):
    """Per-test attribution (setup, call and teardown), the budget marker, summary and gate."""

    def __init__(self, state: _State) -> None:
        super().__init__()
        self.state = state

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        state = self.state
        if state.tracker is not None:
            # closed, not only flushed: the gate and the summary read the DB next, in this process,
            # and a file of it opened other than through SQLite while our connection is open
            # would drop that connection's locks (POSIX locks are per process; see
            # store._refuse_foreign). A call made after this reopens it.
            state.tracker.close()
        if state.worker:
            return
        _write_run(state)
        baseline = session.config.getoption("tokenspy_baseline")
        if baseline:
            verdict = _gate(session.config, state, baseline)
            if verdict == "fail" and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            elif verdict == "error":
                session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if self.state.worker:
            return
        from tokenspy.testing_summary import summary_lines

        lines = summary_lines(self.state.db, self.state.run_id, config.getoption("tokenspy_top"))
        report = config.stash.get(_GATE_REPORT, None)
        if not lines and not report:
            return
        # test ids and names are untrusted: under Actions the runner must take none of them for a
        # workflow command
        token = f"tokenspy-{uuid.uuid4().hex}" if os.environ.get("GITHUB_ACTIONS") == "true" else None
        if token:
            terminalreporter.write_line(f"::stop-commands::{token}")
        if lines:
            terminalreporter.section("tokenspy: LLM cost")
            for line in lines:
                terminalreporter.write_line(line)
        if report:
            terminalreporter.section("tokenspy: cost diff against baseline")
            terminalreporter.write(report)
        if token:
            terminalreporter.write_line(f"::{token}::")


_BUDGET_FAILED = pytest.StashKey[bool]()
_GATE_REPORT = pytest.StashKey[str]()


def _write_run(state: _State) -> None:
    """The run's row in ``runs``, also for a run without LLM calls: that is a run of $0 (the PR
    that removed the last call), not a missing one."""
    from tokenspy import store
    from tokenspy.errors import TokenspyWarning, safe_warn

    try:
        store.write_run(state.db, state.run_id, state.git, state.started_at, time.time())
    except Exception as exc:  # an unwritable DB: the calls already warned; the tests still count
        safe_warn(f"tokenspy: cannot record the run in {state.db} ({exc})", TokenspyWarning)


def _gate(config: pytest.Config, state: _State, baseline: str) -> str:
    """Diff this run (its rows in the DB, which also keeps earlier runs for `tokenspy compare`)
    against the baseline; returns "pass", "fail" or "error"."""
    import io

    from tokenspy.ci import annotate_cost_diff

    thresholds: dict[str, float] = {}
    if config.getoption("tokenspy_max_increase_pct") is not None:
        thresholds["max_increase_pct"] = config.getoption("tokenspy_max_increase_pct")
    if config.getoption("tokenspy_max_increase_usd") is not None:
        thresholds["max_increase_usd"] = config.getoption("tokenspy_max_increase_usd")
    out = io.StringIO()
    try:
        diff = annotate_cost_diff(str(state.db), str(Path(baseline).expanduser()), run=state.run_id, output=out,
                                  fail_on_regression=True, **thresholds)
    except Exception as exc:  # a bad baseline path or DB: say so, fail the run as a usage error
        config.stash[_GATE_REPORT] = f"tokenspy: error: {exc}{os.linesep}"
        return "error"
    config.stash[_GATE_REPORT] = out.getvalue()
    return "fail" if diff.verdict == "fail" else "pass"


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_ENABLED, None)
    if state is None:
        return
    from tokenspy.config import config as ts_config
    from tokenspy.tracker import set_global_tracker

    if state.otlp:  # flushed (bounded), and a line if calls could not be exported
        from tokenspy.export import live

        live.stop()
    state.tracker.close()
    set_global_tracker(state.previous_tracker)
    ts_config.run_id = state.previous_run_id or ts_config.run_id
    ts_config.track_git = state.previous_git
    ts_config.usage = state.previous_usage


@pytest.fixture
def tokenspy_session(request: pytest.FixtureRequest) -> Generator[Any, None, None]:
    """A ``tokenspy.Session`` holding every LLM call this test makes (cost, tokens, calls)."""
    from tokenspy.session import Session

    with Session(request.node.nodeid) as s:
        yield s
