"""Issue 19, the recording side: user code behaves exactly as without tokenspy, paid calls keep
their row, the writer loses nothing it can keep, caches stay bounded.

Real SDK clients over ``httpx2.MockTransport`` (tests/wire.py), real SQLite files, subprocesses
where a process must exit.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import openai
import pydantic
import pytest

import tokenspy
from tokenspy import context, pricing, recorder, store
from tokenspy.record import CallRecord
from tokenspy.tracker import Tracker, set_global_tracker
from wire import Wire, anthropic_clients, fixture_json, openai_clients, sse

MSG = [{"role": "user", "content": "hi"}]
ROOT = Path(__file__).resolve().parents[2]
TESTS_DIR = str(ROOT / "tests")


class Answer(pydantic.BaseModel):
    answer: str


def rows(db: Path, sql: str = "SELECT model, input_tokens, output_tokens, test_id FROM llm_calls") -> list[Any]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def run_python(code: str, *, timeout: float = 60,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), TESTS_DIR]), **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=full)


# ------------------------------------------------------------------ 1. warnings never raise


def test_unpriced_model_under_error_filter_returns_the_result_and_keeps_the_row(wire, oai, active, fresh_tracker):
    body = fixture_json("openai_chat.json")
    del body["model"]  # the request's model is the call's
    wire.overrides["/chat/completions"] = body
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for model in ("claude-test-unpriced", "claude-test-unpriced", "another-unpriced"):
            oai[0].chat.completions.create(model=model, messages=MSG)
    recs = fresh_tracker.records()
    assert [(r.model, r.priced) for r in recs] == [("claude-test-unpriced", False)] * 2 + [("another-unpriced", False)]


def test_internal_error_warning_under_error_filter_does_not_reach_the_user(wire, oai, active, fresh_tracker,
                                                                            monkeypatch):
    monkeypatch.setattr(recorder, "_internal_warned", False)

    def broken_collector(rec: CallRecord) -> None:
        raise RuntimeError("a collector's bug")

    token = context.collectors.set((broken_collector,))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
            again = oai[0].chat.completions.create(model="gpt-4o-mini", messages=MSG)
    finally:
        context.collectors.reset(token)
    assert result.model == "gpt-4o" and again.model == "gpt-4o-mini"
    assert [r.model for r in fresh_tracker.records()] == ["gpt-4o", "gpt-4o-mini"]


def test_store_warnings_under_error_filter_do_not_reach_stats(tmp_path):
    (tmp_path / "dir.db").mkdir()  # a DB path that cannot be opened: the store warns
    tracker = Tracker(persist_path=tmp_path / "dir.db")
    set_global_tracker(tracker)
    tracker.record(CallRecord("f", "gpt-4o", "openai", 1, 1, 0.0, 1.0, 0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tokenspy.stats()["total_calls"] == 1
    tracker.close()


def test_no_model_in_the_response_is_recorded_with_the_requests_model(wire, oai, active, fresh_tracker):
    body = fixture_json("openai_chat.json")
    del body["model"]
    wire.overrides["/chat/completions"] = body
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning about a model 'unknown'
        oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
    (rec,) = fresh_tracker.records()
    assert rec.model == "gpt-4o" and rec.priced and rec.cost_usd > 0


def test_a_call_without_any_model_is_unknown_without_a_warning(wire, active, fresh_tracker):
    p = recorder.begin("openai", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recorder.finish(p, (10, 2), None)
    (rec,) = fresh_tracker.records()
    assert rec.model == recorder.UNKNOWN_MODEL and not rec.priced


# ------------------------------------------------------------------ 1. the injected usage chunk


def _chunks(usage_null: bool) -> list[dict[str, Any]]:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o"}
    chunks: list[dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "o"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "k"}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}},
    ]
    if usage_null:  # what a server that honours include_usage sends on the other chunks
        for c in chunks[:-1]:
            c["usage"] = None
    return chunks


def _serve_chunks(wire: Wire, chunks: list[dict[str, Any]]) -> None:
    events = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]
    wire.routes["/chat/completions"] = lambda request, body: sse(events)


@pytest.mark.parametrize("sync", [True, False])
def test_a_usage_chunk_the_server_sends_unasked_stays_in_front_of_the_user(wire, oai, active, fresh_tracker, sync):
    _serve_chunks(wire, _chunks(usage_null=False))  # sent whatever the request asked

    async def read_async() -> list[Any]:
        return [c async for c in await oai[1].chat.completions.create(model="gpt-4o", messages=MSG, stream=True)]

    if sync:
        seen = list(oai[0].chat.completions.create(model="gpt-4o", messages=MSG, stream=True))
    else:
        import asyncio

        seen = asyncio.run(read_async())
    assert len(seen) == 3 and seen[-1].usage.prompt_tokens == 7
    (rec,) = fresh_tracker.records()
    assert (rec.input_tokens, rec.output_tokens) == (7, 2)


def test_the_usage_chunk_tokenspy_asked_for_is_hidden(wire, oai, active, fresh_tracker):
    _serve_chunks(wire, _chunks(usage_null=True))
    seen = list(oai[0].chat.completions.create(model="gpt-4o", messages=MSG, stream=True))
    assert [len(c.choices) for c in seen] == [1, 1]
    assert (fresh_tracker.records()[0].input_tokens, fresh_tracker.records()[0].output_tokens) == (7, 2)


# ------------------------------------------------------------------ 1. import before pytest


def test_importing_tokenspy_before_pytest_gives_no_assert_rewrite_warning(tmp_path):
    """As installed from a wheel (an editable install has no package files pytest would mark):
    the package tree and its dist-info with the pytest11 entry point, imported by a
    sitecustomize before pytest starts, under ``-W error``."""
    import shutil

    site = tmp_path / "site"
    shutil.copytree(ROOT / "src" / "tokenspy", site / "tokenspy", ignore=shutil.ignore_patterns("__pycache__"))
    info = site / "tokenspy-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tokenspy\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\ntokenspy = tokenspy.pytest_plugin\n")
    files = [p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()]
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))
    (site / "sitecustomize.py").write_text("import tokenspy\ntokenspy.init()\n")
    (tmp_path / "test_x.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:asyncio", "-p", "no:cacheprovider", "-q",
                           str(tmp_path / "test_x.py")], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert "PytestAssertRewriteWarning" not in proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------ 1b. paid calls that raise


def _chat(finish_reason: str, content: str) -> dict[str, Any]:
    body = fixture_json("openai_chat.json")
    body["choices"][0]["finish_reason"] = finish_reason
    body["choices"][0]["message"]["content"] = content
    return body


@pytest.mark.parametrize("finish_reason, content, error", [
    ("length", '{"answer": "tr', openai.LengthFinishReasonError),
    ("content_filter", "", openai.ContentFilterFinishReasonError),
    ("stop", '{"not_the_answer": 1}', pydantic.ValidationError),
])
def test_parse_that_raises_after_a_billed_response_keeps_its_row(wire, oai, active, fresh_tracker, finish_reason,
                                                                 content, error):
    wire.overrides["/chat/completions"] = _chat(finish_reason, content)
    with pytest.raises(error):
        oai[0].chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Answer)
    (rec,) = fresh_tracker.records()
    usage = fixture_json("openai_chat.json")["usage"]
    assert (rec.input_tokens, rec.output_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])


def test_async_parse_that_raises_keeps_its_row(wire, oai, active, fresh_tracker):
    import asyncio

    wire.overrides["/chat/completions"] = _chat("length", '{"answer": "tr')
    with pytest.raises(openai.LengthFinishReasonError):
        asyncio.run(oai[1].chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Answer))
    assert len(fresh_tracker.records()) == 1


def test_anthropic_parse_with_output_that_does_not_validate_keeps_its_row(wire, active, fresh_tracker):
    body = fixture_json("anthropic_message.json")
    body["content"] = [{"type": "text", "text": '{"not_the_answer": 1}'}]
    wire.overrides["/messages"] = body
    with pytest.raises(pydantic.ValidationError):
        anthropic_clients(wire)[0].messages.parse(model="claude-sonnet-4-5", max_tokens=10, messages=MSG,
                                                  output_format=Answer)
    (rec,) = fresh_tracker.records()
    assert rec.output_tokens == body["usage"]["output_tokens"]


def test_anthropic_middleware_that_resends_makes_one_row_per_http_call(wire, active, fresh_tracker):
    def fallback(request: Any, call_next: Any) -> Any:
        first = call_next(request)
        first.parse()  # a refusal fallback looks at the answer, then asks again
        return call_next(request)

    base, _ = anthropic_clients(wire)
    client = base.with_options(middleware=[fallback])
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MSG)
    assert message.usage.input_tokens > 0
    assert wire.count == 2
    assert len(fresh_tracker.records()) == 2


# ------------------------------------------------------------------ 1c. threads during a test


THREAD_TESTS = f"""
import contextvars, sys, threading
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, {TESTS_DIR!r})
from wire import Wire, openai_clients

MSG = [{{"role": "user", "content": "hi"}}]

def test_threads():
    client = openai_clients(Wire())[0]
    call = lambda: client.chat.completions.create(model="gpt-4o", messages=MSG)
    t = threading.Thread(target=call)
    t.start(); t.join()
    with ThreadPoolExecutor(2) as pool:
        pool.submit(call).result()
    contextvars.Context().run(call)
"""


def test_calls_in_worker_threads_and_fresh_contexts_belong_to_the_running_test(pytester):
    pytester.makepyfile(test_threads=THREAD_TESTS)
    db = pytester.path / "usage.db"
    result = pytester.runpytest_subprocess(f"--tokenspy={db}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert [r[3] for r in rows(db)] == ["test_threads.py::test_threads"] * 3


# ------------------------------------------------------------------ 2. usage at the edge, the writer


def test_huge_token_counts_are_clamped_marked_and_never_kill_the_writer(wire, oai, active, tmp_path):
    tracker = Tracker(persist_path=tmp_path / "u.db")
    set_global_tracker(tracker)
    body = fixture_json("openai_chat.json")
    body["usage"] = {"prompt_tokens": 2**63, "completion_tokens": -5, "total_tokens": 0}
    wire.overrides["/chat/completions"] = body
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
    rec = tracker.records()[0]
    assert (rec.input_tokens, rec.output_tokens, rec.cost_usd, rec.priced) == (10**12, 0, 0.0, False)
    stats = tokenspy.stats()
    assert stats["total_calls"] == 1
    tracker.close()
    assert rows(tmp_path / "u.db", "SELECT input_tokens, cost_usd, priced FROM llm_calls") == [(10**12, 0.0, 0)]


def test_a_row_sqlite_cannot_store_is_dropped_alone_and_the_writer_goes_on(tmp_path):
    tracker = Tracker(persist_path=tmp_path / "u.db")
    good = CallRecord("f", "gpt-4o", "openai", 1, 1, 0.0, 1.0, 0.0)
    tracker.record(good)
    tracker.record(CallRecord("f", "gpt-4o", "openai", 2**63, 1, 0.0, 1.0, 0.0))  # made by hand
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tracker.summary()["total_calls"] == 2  # no OverflowError
    tracker.record(good)
    tracker.record(CallRecord("f", "gpt-4o", "openai", 2**64, 1, 0.0, 1.0, 0.0))
    tracker._store._wake.set()  # the writer thread's turn, not ours
    tracker._store.flush()
    tracker.close()
    assert len(rows(tmp_path / "u.db")) == 2


def test_cost_is_never_nan_or_inf(wire, oai, active, fresh_tracker, monkeypatch):
    price = pricing.lookup("gpt-4o", "openai")
    monkeypatch.setattr(type(price), "cost", lambda self, *a, **k: float("inf"))
    monkeypatch.setattr(type(price), "charge", lambda self, *a, **k: float("inf"))
    oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
    (rec,) = fresh_tracker.records()
    assert rec.cost_usd == 0.0 and not rec.priced


# ------------------------------------------------------------------ 3. DB deleted or replaced


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_db_deleted_or_replaced_while_running_gets_the_later_rows(tmp_path, how):
    db = tmp_path / "u.db"
    tracker = Tracker(persist_path=db)
    rec = CallRecord("f", "gpt-4o", "openai", 1, 1, 0.0, 1.0, 0.0)
    tracker.record(rec)
    tracker.flush()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if how == "replaced":
        store.write_records(tmp_path / "other.db", [rec, rec])
        os.replace(tmp_path / "other.db", db)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker.record(rec)
        tracker.flush()
    assert any("deleted or replaced" in str(w.message) for w in caught)
    tracker.close()
    assert len(rows(db)) == (1 if how == "deleted" else 3)


# ------------------------------------------------------------------ 4. flush, fork children


def test_flush_is_public_api(tmp_path):
    assert "flush" in tokenspy.__all__
    tracker = Tracker(persist_path=tmp_path / "u.db")
    set_global_tracker(tracker)
    tracker.record(CallRecord("f", "gpt-4o", "openai", 1, 1, 0.0, 1.0, 0.0))
    tokenspy.flush()
    assert len(rows(tmp_path / "u.db")) == 1  # written now, not at the writer's next tick
    tracker.close()


def _child_call() -> None:
    openai_clients(Wire())[0].chat.completions.create(model="gpt-4o", messages=MSG)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_multiprocessing_child_writes_its_rows_before_os_exit(tmp_path, active):
    tracker = Tracker(persist_path=tmp_path / "u.db")
    set_global_tracker(tracker)
    tracker.record(CallRecord("parent", "gpt-4o", "openai", 1, 1, 0.0, 1.0, 0.0))
    tracker.flush()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: the point here
        proc = multiprocessing.get_context("fork").Process(target=_child_call)
        proc.start()
        proc.join(60)
    assert proc.exitcode == 0
    tracker.close()
    assert sorted(r[0] for r in rows(tmp_path / "u.db", "SELECT function_name FROM llm_calls")) == [
        "parent", "test_hardening._child_call"]


# ------------------------------------------------------------------ 5. a lock held across exit


def test_exit_with_the_db_locked_is_bounded_and_says_what_was_not_written(tmp_path):
    db = tmp_path / "u.db"
    store.open_writable(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        proc = run_python(f"""
            from tokenspy.record import CallRecord
            from tokenspy.tracker import Tracker
            t = Tracker(persist_path={str(db)!r})
            for _ in range(3):
                t.record(CallRecord("f", "gpt-4o", "openai", 1, 1, 0.0, 1.0, 0.0))
        """, timeout=15)  # unbounded, the exit waits for SQLite's busy timeout (10 s) and more
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert proc.returncode == 0, proc.stderr
    assert "3 call(s) not written" in proc.stderr


# ------------------------------------------------------------------ 13. bounded caches, stats()


def test_caches_that_grow_with_distinct_inputs_are_bounded(active, fresh_tracker, monkeypatch):
    # this test's own caches: full ones would silence the warnings of the tests after it
    monkeypatch.setattr(context, "_code_cache", {})
    monkeypatch.setattr(pricing, "_memo", {})
    monkeypatch.setattr(pricing, "_warned", set())
    monkeypatch.setattr(recorder, "_unpriced_warned", set())
    namespace: dict[str, Any] = {}
    source = "\n".join(f"def f{i}():\n    return user_frame(1)" for i in range(context.CODE_CACHE_MAX + 500))
    exec(compile(source, "generated.py", "exec"), {"user_frame": context.user_frame, "__name__": "gen"}, namespace)
    for fn in namespace.values():
        fn()
    assert len(context._code_cache) <= context.CODE_CACHE_MAX
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(pricing.MEMO_MAX + 500):
            pricing.lookup(f"no-such-model-{i}", "openai")
            pricing.calculate(f"no-such-model-{i}", 1, 1)
            recorder.finish(recorder.begin("openai", f"no-such-model-{i}"), (1, 1))
    assert len(pricing._memo) <= pricing.MEMO_MAX
    assert len(pricing._warned) <= pricing.MEMO_MAX
    assert len(recorder._unpriced_warned) <= recorder._WARNED_MAX


def test_stats_over_many_persisted_records_reads_running_totals_not_rows(tmp_path):
    n, window = 50_000, 100
    tracker = Tracker(persist_path=tmp_path / "u.db", window=window)
    recs = [CallRecord(f"f{i % 7}", "gpt-4o", "openai", 10, 5, 0.001, 1.0, float(i)) for i in range(n)]
    for r in recs:
        tracker.record(r)
    tracker.flush()
    tracemalloc.start()
    try:
        out = tracker.summary()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out["total_calls"] == n and out["total_tokens"] == 15 * n
    assert len(out["calls"]) == window and not out["calls_complete"]
    assert peak < 2_000_000  # the window's dicts, not 50,000 rows
    tracker.close()


# ------------------------------------------------------------------ 1. the process stays as it was


@pytest.mark.parametrize("packed", [False, True])
def test_git_tagging_reads_the_sha_without_importing_gitpython(tmp_path, packed):
    """GitPython's import fills typing's cache with its own ``List[Union[...]]`` orders, which
    equal ones made later then share: the google-genai suite's schema tests saw it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "f").write_text("x")
    git("add", "f")
    git("commit", "-qm", "one")
    if packed:
        git("pack-refs", "--all")
    head = git("rev-parse", "HEAD")
    proc = run_python(f"""
        import os, sys, typing
        os.chdir({str(tmp_path)!r})
        from tokenspy import recorder
        from tokenspy.config import config
        from tokenspy.tracker import get_global_tracker
        config.track_git = True
        recorder.finish(recorder.begin("openai", "gpt-4o"), (1, 1))
        print(get_global_tracker().records()[0].git_commit, "git" in sys.modules)
        print(typing.List[int | str | float | bool].__args__)
    """)
    assert proc.stdout.splitlines() == [f"{head} False", "(int | str | float | bool,)"], proc.stderr
