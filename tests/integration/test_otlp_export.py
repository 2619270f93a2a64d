"""OpenTelemetry export (issue 21) against a real OTLP receiver: the Arize Phoenix server, started
from its PyPI package on a loopback port, read back through its own REST API. Calls are made
through the real SDK clients (tests/wire.py); what Phoenix stored is compared with the DB rows.
Metrics go to a loopback OTLP sink that decodes them with the OpenTelemetry protobufs (Phoenix
takes traces only)."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import tokenspy
from tokenspy import cli
from tokenspy.config import config
from tokenspy.errors import TokenspyWarning
from tokenspy.export import live
from tokenspy.record import CallRecord
from tokenspy.store import load_records
from tokenspy.tracker import get_global_tracker

otlp = pytest.importorskip("tokenspy.export.otlp", reason="tokenspy[otel] is not installed", exc_type=ImportError)
from otlp_receiver import OtlpSink, Phoenix, free_port, phoenix_executable  # noqa: E402
from tokenspy.export import db as db_export  # noqa: E402
from wire import Wire, anthropic_clients, google_client, openai_clients  # noqa: E402

MSG = [{"role": "user", "content": "hi"}]
IN_CI = os.environ.get("CI") == "true"
TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"


def _unavailable(reason: str) -> None:
    if IN_CI:  # CI installs the receiver (.ci/run): there it must run
        pytest.fail(f"OTLP receiver unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"OTLP receiver unavailable ({reason}); `bash .ci/run` installs it, or "
                "pip install -r tests/receiver-requirements.txt into a venv and set TOKENSPY_PHOENIX")


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Any:
    exe = phoenix_executable()
    if exe is None:
        _unavailable("no phoenix executable")
    server = Phoenix(exe, tmp_path_factory.mktemp("phoenix"))
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        _unavailable(str(exc))
    yield server
    server.stop()


@pytest.fixture
def project(monkeypatch: pytest.MonkeyPatch) -> str:
    """A Phoenix project of this test's own (the resource attribute Phoenix files spans under)."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"openinference.project.name={name}")
    return name


@pytest.fixture
def metrics_sink() -> Any:
    sink = OtlpSink()
    yield sink
    sink.close()


@pytest.fixture
def exporting(phoenix, project, metrics_sink, monkeypatch, tmp_path) -> Any:
    """tokenspy.init(persist=True, otlp=True) with the endpoints from the standard variables:
    traces to Phoenix, metrics to the loopback sink."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{phoenix.base}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"{metrics_sink.base}/v1/metrics")
    tokenspy.init(persist=True, persist_dir=tmp_path, track_git=True, otlp=True)
    yield live.current()
    tokenspy.init()


@pytest.fixture(autouse=True)
def no_export_left():
    yield
    live.stop()


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def assert_span_is_row(span: dict[str, Any], rec: CallRecord, request_model: str | None = None) -> None:
    a = span["attributes"]
    op = otlp.operation(rec)
    assert span["name"] == f"{op} {request_model or rec.model}"
    assert a["gen_ai.operation.name"] == op
    assert a["gen_ai.provider.name"] == {"google": "gcp.gemini"}.get(rec.provider, rec.provider)
    assert a["gen_ai.request.model"] == (request_model or rec.model)
    assert a["gen_ai.response.model"] == rec.model
    assert a["gen_ai.usage.input_tokens"] == rec.input_tokens
    assert a["gen_ai.usage.output_tokens"] == rec.output_tokens
    assert a.get("gen_ai.usage.cache_read.input_tokens", 0) == rec.cached_input_tokens
    assert a.get("gen_ai.usage.cache_creation.input_tokens", 0) == rec.cache_write_tokens
    assert a.get("gen_ai.usage.reasoning.output_tokens", 0) == rec.reasoning_tokens
    assert a["tokenspy.cost_usd"] == pytest.approx(rec.cost_usd, rel=1e-12, abs=0)
    assert a["tokenspy.priced"] is rec.priced
    assert a["tokenspy.usage_source"] == rec.usage_source
    assert a["code.function.name"] == rec.function_name
    assert a.get("code.file.path") == rec.source_file
    assert a.get("code.line.number") == rec.source_line
    assert a.get("test.case.name") == rec.test_id
    assert a.get("vcs.ref.head.revision") == rec.git_commit
    assert a["tokenspy.run.id"] == rec.run_id
    assert a["tokenspy.call_stack"] == rec.call_stack
    # the call's own times (Phoenix keeps microseconds)
    assert ts(span["start_time"]) == pytest.approx(rec.timestamp, abs=2e-6)
    assert ts(span["end_time"]) - ts(span["start_time"]) == pytest.approx(rec.duration_ms / 1000, abs=2e-6)


@tokenspy.profile
def pipeline(oai: Any, ant: Any, goog: Any) -> None:
    oai.chat.completions.create(model="gpt-4o", messages=MSG)
    for _ in oai.chat.completions.create(model="gpt-4o", messages=MSG, stream=True):
        pass
    oai.embeddings.create(model="text-embedding-3-small", input="hi")
    ant.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=MSG)
    goog.models.generate_content(model="gemini-2.5-flash", contents="hi")


def test_live_export_sends_one_span_per_call_with_the_rows_values(exporting, phoenix, project, metrics_sink,
                                                                  tmp_path):
    wire = Wire()
    oai, aoai = openai_clients(wire)
    pipeline(oai, anthropic_clients(wire)[0], google_client(wire))
    asyncio.run(aoai.chat.completions.create(model="gpt-4o-mini", messages=MSG))  # async, unprofiled
    assert exporting.flush()
    get_global_tracker().flush()
    rows = sorted(load_records(tmp_path / "usage.db"), key=lambda r: r.timestamp)
    assert len(rows) == 6 == wire.count

    spans = phoenix.spans(project, expect=len(rows))
    assert len(spans) == len(rows)
    asked = ["gpt-4o", "gpt-4o", "text-embedding-3-small", "claude-sonnet-4-6", "gemini-2.5-flash", "gpt-4o-mini"]
    for span, rec, model in zip(spans, rows, asked, strict=True):
        assert_span_is_row(span, rec, request_model=model)
        assert span["parent_id"] is None  # no OTel span was current
    assert [s["attributes"]["gen_ai.operation.name"] for s in spans] == [
        "chat", "chat", "embeddings", "chat", "generate_content", "chat"]
    assert rows[0].function_name.endswith("pipeline") and rows[0].git_commit

    # the metrics: token histogram and cost counter, with the totals of the rows
    usage = metrics_sink.metric_points("gen_ai.client.token.usage")
    for kind, field in (("input", "input_tokens"), ("output", "output_tokens")):
        assert sum(p.sum for a, p in usage if a["gen_ai.token.type"] == kind) == sum(getattr(r, field) for r in rows)
    by_model = {}
    for a, p in usage:
        if a["gen_ai.token.type"] == "input":
            by_model[a["gen_ai.response.model"]] = by_model.get(a["gen_ai.response.model"], 0) + p.count
    assert by_model == {m: sum(1 for r in rows if r.model == m) for m in {r.model for r in rows}}
    cost = metrics_sink.metric_points("tokenspy.cost")
    assert sum(p.as_double for _, p in cost) == pytest.approx(sum(r.cost_usd for r in rows), rel=1e-9)
    assert {a["code.function.name"] for a, _ in cost} == {r.function_name for r in rows}
    assert exporting.lost() == 0


def test_spans_nest_under_the_apps_current_span_even_when_consumed_later(exporting, phoenix, project):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    # the app's own tracing, not the global provider (a process has one, set once)
    app = TracerProvider(resource=otlp.resource())
    app.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{phoenix.base}/v1/traces")))
    tracer = app.get_tracer("app")
    oai, aoai = openai_clients(Wire())

    async def in_a_task() -> None:
        await aoai.chat.completions.create(model="gpt-4o-mini", messages=MSG)

    with tracer.start_as_current_span("handle-request") as parent:
        oai.chat.completions.create(model="gpt-4o", messages=MSG)
        stream = oai.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
        ctx = contextvars.copy_context()
        t = threading.Thread(target=ctx.run, args=(oai.embeddings.create,),
                             kwargs={"model": "text-embedding-3-small", "input": "x"})
        t.start()
        t.join()
        asyncio.run(in_a_task())
    for _ in stream:  # consumed after the parent span ended, outside it: still its child
        pass
    oai.chat.completions.create(model="gpt-4o", messages=MSG)  # outside any span: a root
    assert exporting.flush()
    app.shutdown()

    spans = phoenix.spans(project, expect=6)
    pid = format(parent.get_span_context().span_id, "016x")
    tid = format(parent.get_span_context().trace_id, "032x")
    mine = [s for s in spans if s["name"] != "handle-request"]
    assert len(mine) == 5 and any(s["context"]["span_id"] == pid for s in spans)
    children = [s for s in mine if s["parent_id"] == pid]
    assert len(children) == 4
    assert {s["context"]["trace_id"] for s in children} == {tid}
    assert sorted(s["attributes"]["gen_ai.operation.name"] for s in children) == ["chat", "chat", "chat", "embeddings"]
    (root,) = [s for s in mine if s["parent_id"] is None]
    assert root["context"]["trace_id"] != tid


def _record_two_runs(tmp_path: Path) -> Path:
    oai, _ = openai_clients(Wire())
    tokenspy.init(persist=True, persist_dir=tmp_path)
    saved = config.run_id
    try:
        for run, n in (("run-a", 3), ("run-b", 2)):
            config.run_id = run
            for _ in range(n):
                oai.chat.completions.create(model="gpt-4o", messages=MSG)
    finally:
        config.run_id = saved
        tokenspy.init()  # closes the DB: no writer, no -wal file left
    return tmp_path / "usage.db"


def _uids(db: Path) -> dict[float, str]:
    import sqlite3

    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        return dict(conn.execute("SELECT timestamp, call_uid FROM llm_calls"))
    finally:
        conn.close()


def test_export_of_a_db_is_idempotent_keeps_the_rows_times_and_never_writes(phoenix, project, tmp_path,
                                                                            monkeypatch, capsys):
    db = _record_two_runs(tmp_path / "ci")
    marker_db = _record_two_runs(tmp_path / "marker")
    before = (hashlib.sha256(db.read_bytes()).hexdigest(), sorted(os.listdir(db.parent)))
    rows = sorted(load_records(db), key=lambda r: r.timestamp)
    uids = _uids(db)

    assert cli.main(["export", "--otlp", phoenix.base, "--db", str(db)]) == 0
    assert cli.main(["export", "--otlp", phoenix.base, "--db", str(db)]) == 0  # again: same ids
    assert "exported 5 call(s)" in capsys.readouterr().out
    # a later export into the same project: once its spans are in, the repeat above was processed
    assert cli.main(["export", "--otlp", phoenix.base, "--db", str(marker_db), "--run", "run-b"]) == 0
    spans = phoenix.spans(project, expect=7)
    assert len(spans) == 7  # 5 rows once each (deduplicated by span id) + the 2 of the marker
    marker_uids = set(_uids(marker_db).values())
    spans = [s for s in spans if s["attributes"]["tokenspy.call_uid"] not in marker_uids]
    assert len(spans) == 5
    for span, rec in zip(spans, rows, strict=True):
        assert_span_is_row(span, rec)
        uid = uids[rec.timestamp]
        trace_id, span_id = db_export.stable_ids(uid)
        assert span["attributes"]["tokenspy.call_uid"] == uid
        assert span["context"] == {"trace_id": format(trace_id, "032x"), "span_id": format(span_id, "016x")}
    assert (hashlib.sha256(db.read_bytes()).hexdigest(), sorted(os.listdir(db.parent))) == before

    # --run: that run's calls only (of another DB: spans already sent keep their ids, and so
    # their place in the project they went to)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "openinference.project.name=" + project + "-run")
    other = _record_two_runs(tmp_path / "other")
    assert cli.main(["export", "--otlp", phoenix.base, "--db", str(other), "--run", "run-a"]) == 0
    run_spans = phoenix.spans(project + "-run", expect=3)
    assert sorted(s["attributes"]["tokenspy.run.id"] for s in run_spans) == ["run-a"] * 3


def test_export_errors_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    db = _record_two_runs(tmp_path)
    dead = f"http://127.0.0.1:{free_port()}"
    cases = [
        (["--otlp", dead, "--db", str(db)], "cannot reach the OpenTelemetry collector"),
        (["--otlp", "ftp://collector", "--db", str(db)], "is not an OTLP/HTTP endpoint"),
        (["--otlp", "http://127.0.0.1:4318", "--db", str(tmp_path / "missing.db")], "no such database file"),
        (["--db", str(db)], "needs a destination: --otlp"),
    ]
    for args, message in cases:
        assert cli.main(["export", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert cli.main(["export", "--otlp", "--db", str(db)]) == 2
    assert "OTLP/HTTP (http/protobuf) only" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()


def test_an_unreachable_collector_never_slows_or_breaks_the_calls_and_warns_once(monkeypatch, capfd):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")  # the exporter's retries, on its own thread
    oai, _ = openai_clients(Wire())
    dead = f"http://127.0.0.1:{free_port()}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tokenspy.init(otlp=dead)
        exporter = live.current()
        slowest = 0.0
        for _round in range(3):
            for _ in range(20):
                t = time.perf_counter()
                r = oai.chat.completions.create(model="gpt-4o", messages=MSG)
                slowest = max(slowest, time.perf_counter() - t)
                assert r.choices[0].message.content
            exporter.flush(timeout=8)  # the first flush meets the dead collector; later ones fail at once
        t = time.perf_counter()
        tokenspy.init()  # stops the export: no wait for a collector known to be down
        closing = time.perf_counter() - t
    ours = [w for w in caught if issubclass(w.category, TokenspyWarning)]
    assert len(ours) == 1 and f"{dead}/v1/traces" in str(ours[0].message), [str(w.message) for w in caught]
    assert slowest < 0.25 and closing < 3.0
    assert get_global_tracker().total_calls() == 60
    err = capfd.readouterr().err
    assert f"tokenspy: 60 of 60 LLM call(s) were not exported to {dead}/v1/traces" in err
    # no log of the OTel exporter's retries: one line of tokenspy's, whose reason is the exporter's first word
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_a_dead_collector_under_warnings_as_errors_never_raises_into_the_call(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    oai, _ = openai_clients(Wire())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenspy.init(otlp=f"http://127.0.0.1:{free_port()}")
        for _ in range(5):
            assert oai.chat.completions.create(model="gpt-4o", messages=MSG).usage.total_tokens == 1500
        live.current().flush(timeout=5)
        assert oai.chat.completions.create(model="gpt-4o", messages=MSG).usage.total_tokens == 1500
        tokenspy.init()


PYTEST_CONFTEST = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
import pytest
from wire import Wire, openai_clients

@pytest.fixture
def client():
    return openai_clients(Wire())[0]
"""


def test_pytest_option_exports_each_tests_calls_with_its_id(pytester, phoenix, project):
    pytester.makeconftest(PYTEST_CONFTEST)
    pytester.makepyfile(test_sample=textwrap.dedent("""
        def test_one(client):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

        def test_two(client):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    """))
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--tokenspy=calls.db",
                                           f"--tokenspy-otlp={phoenix.base}")
    result.assert_outcomes(passed=2)
    spans = phoenix.spans(project, expect=2)
    assert sorted(s["attributes"]["test.case.name"] for s in spans) == [
        "test_sample.py::test_one", "test_sample.py::test_two"]
    rows = sorted(load_records(pytester.path / "calls.db"), key=lambda r: r.timestamp)
    for span, rec in zip(spans, rows, strict=True):
        assert_span_is_row(span, rec, request_model=span["attributes"]["gen_ai.request.model"])

    # pyproject's [tool.tokenspy] otlp, and a bad value there: a usage error naming it
    pytester.makepyprojecttoml('[tool.tokenspy]\notlp = 42\n')
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*[[]tool.tokenspy[]] otlp must be true, false or the collector's URL*"])
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--tokenspy-otlp", "tests/")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


HIDE_OTEL = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hide())
"""


def test_without_the_extra_each_option_says_which_to_install(tmp_path):
    db = _record_two_runs(tmp_path)
    script = HIDE_OTEL + textwrap.dedent(f"""
        import tokenspy
        from tokenspy import cli
        try:
            tokenspy.init(otlp=True)
        except ImportError as exc:
            print("init:", exc)
        print("cli:", cli.main(["export", "--otlp", "--db", {str(db)!r}]))
        print("loaded:", sorted(m for m in sys.modules if m.startswith("opentelemetry")))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(SRC)})
    assert "init: tokenspy.init(otlp=...) needs the OpenTelemetry packages" in out.stdout
    assert "pip install 'tokenspy[otel]'" in out.stdout
    assert "cli: 2" in out.stdout and "loaded: []" in out.stdout
    assert out.stderr.count("\n") == 1 and "tokenspy export --otlp needs the OpenTelemetry packages" in out.stderr


def test_import_tokenspy_loads_no_opentelemetry():
    code = ("import sys, tokenspy; tokenspy.init(); tokenspy.init(persist=False); "
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry') or m.startswith('tokenspy.export')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(SRC)})
    assert out.stdout.strip() == "['tokenspy.export', 'tokenspy.export.live']", out.stderr


def test_endpoints_follow_the_standard_variables():
    T = otlp.Target.resolve
    assert T(True, {}).traces == "http://localhost:4318/v1/traces"
    t = T(True, {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c.example:4318/base/",
                 "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%20x,Team=llm"})
    assert (t.traces, t.metrics) == ("https://c.example:4318/base/v1/traces", "https://c.example:4318/base/v1/metrics")
    assert dict(t.headers) == {"api-key": "s x", "team": "llm"}
    t = T(True, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:9999/custom/traces"})
    assert (t.traces, t.metrics) == ("http://b:9999/custom/traces", "http://a:4318/v1/metrics")
    assert T("http://h:4318/v1/traces", {}).metrics == "http://h:4318/v1/metrics"
    for bad in ("localhost:4318", "http://", "http://h:port", ""):
        with pytest.raises(ValueError, match="is not an OTLP/HTTP endpoint"):
            T(bad, {})
    with pytest.raises(ValueError, match="http/protobuf"):
        T(True, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    with pytest.raises(TypeError):
        live.resolve(4318)  # type: ignore[arg-type]


def test_a_failing_sink_never_breaks_the_call_and_other_sinks_still_get_the_record(oai, active):
    from tokenspy import sinks

    got: list[Any] = []

    class Broken:
        def capture(self) -> Any:
            raise RuntimeError("capture bug")

        def send(self, rec: CallRecord, captured: Any, request_model: str | None) -> None:
            raise RuntimeError("send bug")

    class Keeper:
        def capture(self) -> Any:
            return "ctx"

        def send(self, rec: CallRecord, captured: Any, request_model: str | None) -> None:
            got.append((rec.model, captured, request_model))

    broken, keeper = Broken(), Keeper()
    sinks.add(broken)
    sinks.add(keeper)
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            r = oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
    finally:
        sinks.remove(broken)
        sinks.remove(keeper)
    assert r.usage.total_tokens == 1500 and get_global_tracker().total_calls() == 1
    assert got == [("gpt-4o", "ctx", "gpt-4o")]
    assert sinks.active == ()


EXIT_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
import tokenspy
from wire import Wire, openai_clients
tokenspy.init(otlp={endpoint!r})
client = openai_clients(Wire())[0]
for _ in range(3):
    client.chat.completions.create(model="gpt-4o", messages=[{{"role": "user", "content": "hi"}}])
print("calls done", flush=True)
"""  # and exits: no flush, no init() to stop the export


def _run_script(endpoint: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    t = time.monotonic()
    out = subprocess.run([sys.executable, "-c", EXIT_SCRIPT.format(tests=str(TESTS), endpoint=endpoint)],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(SRC), "OTEL_METRICS_EXPORTER": "none", **env})
    return out, time.monotonic() - t


def test_at_exit_the_queued_spans_are_sent(phoenix, project):
    out, _ = _run_script(phoenix.base, {"OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}"})
    assert out.returncode == 0 and "calls done" in out.stdout, out.stderr
    assert "not exported" not in out.stderr
    assert len(phoenix.spans(project, expect=3)) == 3


def test_at_exit_a_dead_collector_costs_one_line_and_a_bounded_wait():
    out, took = _run_script(f"http://127.0.0.1:{free_port()}", {"OTEL_EXPORTER_OTLP_TIMEOUT": "2"})
    assert out.returncode == 0 and "calls done" in out.stdout, out.stderr
    assert "3 of 3 LLM call(s) were not exported" in out.stderr
    assert out.stderr.count("TokenspyWarning") <= 1 and "Traceback" not in out.stderr, out.stderr
    assert took < 20, took


def test_export_of_a_large_db_shows_progress_on_a_terminal(tmp_path):
    import pty

    from tokenspy.store import write_records

    db = tmp_path / "big.db"
    now = time.time()
    write_records(db, [CallRecord("app.step", "gpt-4o", "openai", 100 + i, 10, 0.001, 5.0, now - 3600 + i,
                                  run_id="r1") for i in range(1500)])
    sink = OtlpSink(keep=False)
    primary, replica = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "tokenspy", "export", "--otlp", sink.base, "--db", str(db)],
                              stdout=subprocess.PIPE, stderr=replica, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(SRC)})
        os.close(replica)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
        sink.close()
    assert proc.returncode == 0, shown
    assert "exported 1,500 call(s)" in proc.stdout
    assert b"\r  1,500 / 1,500 calls (100%)" in shown
    assert sink.span_count == 1500
