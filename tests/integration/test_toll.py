"""track_costs end to end: real OpenAI / Anthropic / Google clients over ``httpx2.MockTransport``
(tests/wire.py counts the requests that reach the "provider"), a real SQLiteStore in a tmp dir.

The budget is enforced on what is sent: once it is spent the request count stops growing. Every
stream shape of seed 004 returns what the function returned (or a generator of the same kind).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import sqlite3
import threading
import time
import types
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest

import tokenspy
from tokenspy import (
    BudgetExceededError,
    CostReporter,
    LocalRateLimitError,
    PricingMatrixOutdatedWarning,
    SQLiteStore,
    cli,
    pricing,
    set_reporter,
    set_store,
    track_costs,
)
from tokenspy.toll import decorator as toll_decorator
from tokenspy.toll import limiter

MSG = [{"role": "user", "content": "hi"}]
UTC = timezone.utc


@pytest.fixture(autouse=True)
def store(tmp_path, active):
    """A fresh SQLiteStore in tmp (never ~/.tokenspy), no reporter output, empty rate windows."""
    s = SQLiteStore(tmp_path / "toll.db")
    set_store(s)
    set_reporter(CostReporter(enabled=False))
    limiter.clear()
    yield s
    set_store(None)
    set_reporter(None)
    s.close()
    limiter.clear()


@pytest.fixture
def anth(wire):
    from wire import anthropic_clients

    return anthropic_clients(wire)


@pytest.fixture
def google(wire):
    from wire import google_client

    return google_client(wire)


def llm_rows(db: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM llm_calls ORDER BY id").fetchall()
    finally:
        conn.close()


def cost_of(records) -> float:
    return sum(r.cost_usd for r in records)


CHAT_COST = pricing.calculate("gpt-4o", 1200, 300, cached_input_tokens=1024, reasoning_tokens=128,
                              provider="openai")
CLAUDE_COST = pricing.calculate("claude-sonnet-4-5-20250929", 12 + 2048 + 4096, 150,
                                cached_input_tokens=4096, cache_write_tokens=2048, provider="anthropic")


# ----------------------------------------------------------------------------- budgets


def test_budget_stops_sending_once_spent(oai, wire, store, fresh_tracker):
    client = oai[0]

    @track_costs(project="bot", max_budget=CHAT_COST * 2.5)
    def chat():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    chat()
    chat()
    assert wire.count == 2
    # the third call is sent (2 calls spent < 2.5), paid, recorded, then raises: now exceeded
    with pytest.raises(BudgetExceededError) as info:
        chat()
    assert wire.count == 3
    err = info.value
    assert err.project == "bot"
    assert err.budget == pytest.approx(CHAT_COST * 2.5)
    assert err.spent == pytest.approx(CHAT_COST * 3)
    # from now on nothing is sent, however many times it is called
    for _ in range(20):
        with pytest.raises(BudgetExceededError) as info:
            chat()
        assert info.value.spent == pytest.approx(CHAT_COST * 3)
    assert wire.count == 3
    # every call that was paid for is recorded: stats, the store's window and its llm_calls
    assert tokenspy.stats()["total_calls"] == 3
    assert cost_of(fresh_tracker.records()) == pytest.approx(CHAT_COST * 3)
    assert {r.project for r in fresh_tracker.records()} == {"bot"}
    assert store.window("bot").calls == 3
    store.flush()
    rows = llm_rows(store.db_path)
    assert len(rows) == 3
    assert {(r["project"], r["function_name"], r["model"]) for r in rows} == {
        ("bot", chat.__qualname__, "gpt-4o")
    }
    assert sum(r["cached_input_tokens"] for r in rows) == 3 * 1024  # cached tokens kept and priced
    assert pricing.calculate("gpt-4o", 1200, 300, provider="openai") > CHAT_COST  # at the cache rate


def test_spent_exactly_the_budget_is_not_exceeded_but_nothing_more_is_sent(oai, wire):
    client = oai[0]

    @track_costs(project="exact", max_budget=CHAT_COST * 2)
    def chat():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    chat()
    chat()  # spent == budget: the result (paid within budget) is returned
    with pytest.raises(BudgetExceededError):
        chat()
    assert wire.count == 2


def test_budget_with_anthropic_create_and_stream(anth, wire, store):
    client = anth[0]

    @track_costs(project="claude", max_budget=CLAUDE_COST * 1.5)
    def ask():
        return client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSG)

    @track_costs(project="claude", max_budget=CLAUDE_COST * 1.5)
    def ask_stream():
        return client.messages.stream(model="claude-sonnet-4-6", max_tokens=10, messages=MSG)

    ask()
    # sent (1 call spent < 1.5), paid: exceeded at the end of the stream
    with ask_stream() as s, pytest.raises(BudgetExceededError):
        s.get_final_message()
    assert wire.count == 2
    with pytest.raises(BudgetExceededError):
        ask_stream()
    with pytest.raises(BudgetExceededError):
        ask()
    assert wire.count == 2
    assert store.window("claude").spent_usd == pytest.approx(CLAUDE_COST * 2)


async def test_async_budget_stops_sending(oai, wire, store):
    aclient = oai[1]

    @track_costs(project="async", max_budget=CHAT_COST * 1.5)
    async def chat():
        return await aclient.chat.completions.create(model="gpt-4o", messages=MSG)

    await chat()
    with pytest.raises(BudgetExceededError):
        await chat()
    for _ in range(5):
        with pytest.raises(BudgetExceededError):
            await chat()
    assert wire.count == 2
    assert store.window("async").calls == 2


def test_several_calls_in_one_invocation_stop_at_the_one_that_exceeds(oai, wire, store):
    client = oai[0]

    @track_costs(project="loop", max_budget=CHAT_COST * 2.5)
    def agent():
        for _ in range(10):
            client.chat.completions.create(model="gpt-4o", messages=MSG)

    with pytest.raises(BudgetExceededError):
        agent()
    assert wire.count == 3
    assert store.window("loop").calls == 3


def test_threads_overshoot_by_at_most_the_calls_in_flight(oai, wire, store):
    client = oai[0]
    allowed = 11  # calls a single caller could make: 10 spent < 10.5, the 11th exceeds
    threads_n = 8

    @track_costs(project="threads", max_budget=CHAT_COST * 10.5)
    def chat():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    def worker():
        for _ in range(20):
            with contextlib.suppress(BudgetExceededError):
                chat()

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed <= wire.count <= allowed + threads_n - 1
    assert store.window("threads").calls == wire.count  # nothing paid goes unrecorded


# ----------------------------------------------------------------------------- windows


def _at(days_ago: float) -> float:
    return time.time() - days_ago * 86400


def test_daily_window_counts_only_today(oai, wire, store):
    client = oai[0]
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC).timestamp()
    store.add_spend("daily", 100.0, at=midnight - 1)  # yesterday, a second before midnight

    @track_costs(project="daily", max_budget=1.0, reset="daily")
    def today():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    @track_costs(project="daily", max_budget=1.0)  # no reset: all the project's spend counts
    def ever():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    today()
    with pytest.raises(BudgetExceededError) as info:
        ever()
    assert info.value.spent == pytest.approx(100.0 + CHAT_COST)
    store.add_spend("daily", 5.0, at=midnight)  # today
    with pytest.raises(BudgetExceededError):
        today()
    assert wire.count == 1


def test_weekly_window_starts_monday_utc(oai, wire, store):
    client = oai[0]
    now = datetime.now(UTC)
    monday = (datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=now.weekday())).timestamp()
    store.add_spend("weekly", 100.0, at=monday - 1)  # last Sunday 23:59:59

    @track_costs(project="weekly", max_budget=1.0, reset="weekly")
    def chat():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    chat()
    store.add_spend("weekly", 100.0, at=monday)
    with pytest.raises(BudgetExceededError):
        chat()
    assert wire.count == 1


def test_monthly_window_is_honoured(oai, wire, store):
    client = oai[0]
    now = datetime.now(UTC)
    first = datetime(now.year, now.month, 1, tzinfo=UTC).timestamp()
    store.add_spend("monthly", 100.0, at=first - 1)  # last month

    @track_costs(project="monthly", max_budget=1.0, reset="monthly")
    def chat():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    chat()
    chat()
    assert wire.count == 2
    assert store.window("monthly", "monthly").spent_usd == pytest.approx(2 * CHAT_COST)
    store.add_spend("monthly", 1.0, at=first)
    with pytest.raises(BudgetExceededError):
        chat()
    assert wire.count == 2


def test_cli_reset_starts_a_new_window_and_keeps_history(oai, wire, store, capsys):
    client = oai[0]

    @track_costs(project="resettable", max_budget=CHAT_COST * 0.5, reset="monthly")
    def chat():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    with pytest.raises(BudgetExceededError):
        chat()
    with pytest.raises(BudgetExceededError):
        chat()
    assert wire.count == 1
    assert cli.main(["budget", "reset", "--project", "resettable", "--db", str(store.db_path)]) == 0
    assert "new budget window" in capsys.readouterr().out
    with pytest.raises(BudgetExceededError):  # sent again: a new window
        chat()
    assert wire.count == 2
    store.flush()
    assert len(llm_rows(store.db_path)) == 2  # history kept
    conn = sqlite3.connect(store.db_path)
    total = conn.execute("SELECT SUM(spent_usd) FROM budget_spend WHERE project='resettable' "
                         "AND period='monthly'").fetchone()[0]
    conn.close()
    assert total == pytest.approx(2 * CHAT_COST)  # the old window keeps its total


# ----------------------------------------------------------------------------- rate limits


class Clock:
    def __init__(self) -> None:
        self.t = 5000.0

    def __call__(self) -> float:
        return self.t


def test_rpm_limit_refuses_before_sending(oai, wire, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(limiter, "clock", clock)
    client = oai[0]

    @track_costs(project="rpm", rate_limit=2)
    def chat():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    chat()
    clock.t += 30
    chat()
    with pytest.raises(LocalRateLimitError) as info:
        chat()
    assert (info.value.limit_type, info.value.limit_value) == ("rpm", 2)
    assert info.value.retry_after == pytest.approx(30.0)
    assert wire.count == 2
    clock.t += 30
    chat()
    assert wire.count == 3


def test_tpm_limit_counts_the_tokens_of_calls_made(oai, wire, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(limiter, "clock", clock)
    client = oai[0]

    @track_costs(project="tpm", tpm_limit=2000)
    def chat():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    chat()  # 1,500 tokens
    clock.t += 1
    chat()  # 1,500 < 2,000 before the call: allowed
    clock.t += 1
    with pytest.raises(LocalRateLimitError) as info:
        chat()
    assert info.value.limit_type == "tpm"
    assert info.value.retry_after == pytest.approx(58.0)  # the first call's tokens leave at +60
    assert wire.count == 2


# ----------------------------------------------------------------------------- extract_usage, model


def test_extract_usage_records_calls_the_interceptor_cannot_see(wire, store, fresh_tracker):
    http = httpx2.Client(transport=httpx2.MockTransport(wire))  # a custom HTTP client: no SDK

    def usage(body):
        return body["model"], body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]

    @track_costs(project="custom", extract_usage=usage, max_budget=1.0)
    def raw_chat():
        return http.post("https://api.openai.test/v1/chat/completions",
                         json={"model": "gpt-4o-mini", "messages": MSG}).json()

    body = raw_chat()
    assert body["model"] == "gpt-4o-mini"
    (rec,) = fresh_tracker.records()
    assert (rec.model, rec.provider, rec.input_tokens, rec.output_tokens) == ("gpt-4o-mini", "openai", 1200, 300)
    assert rec.function_name == raw_chat.__qualname__ and rec.project == "custom"
    assert rec.cost_usd == pytest.approx(pricing.calculate("gpt-4o-mini", 1200, 300))
    assert store.window("custom").spent_usd == pytest.approx(rec.cost_usd)
    store.flush()
    assert [r["model"] for r in llm_rows(store.db_path)] == ["gpt-4o-mini"]


@pytest.mark.parametrize(
    ("value", "error", "why"),
    [
        (("gpt-4o", -1, 3), ValueError, "input_tokens is negative"),
        (("gpt-4o", 3, -1), ValueError, "output_tokens is negative"),
        (("gpt-4o", True, 3), TypeError, "input_tokens is not an int"),
        (("gpt-4o", 1.0, 3), TypeError, "input_tokens is not an int"),
        (("gpt-4o", 1, "3"), TypeError, "output_tokens is not an int"),
        ((4, 1, 3), TypeError, "model is not a str"),
        (("", 1, 3), ValueError, "model is empty"),
        (["gpt-4o", 1, 3], TypeError, "got"),
        (("gpt-4o", 1), TypeError, "got"),
        (None, TypeError, "got"),
    ],
)
def test_extract_usage_results_are_validated_before_anything_is_stored(value, error, why, store,
                                                                       fresh_tracker):
    @track_costs(project="bad-extract", extract_usage=lambda _r: value)
    def handmade():
        return {"anything": 1}

    with pytest.raises(error, match="handmade") as info:
        handmade()
    assert why in str(info.value)
    assert fresh_tracker.records() == []
    assert store.window("bad-extract").calls == 0
    store.flush()
    assert not store.db_path.exists() or llm_rows(store.db_path) == []


def test_extract_usage_is_not_used_when_the_sdk_call_was_seen(oai, fresh_tracker):
    client = oai[0]
    seen = []

    @track_costs(extract_usage=lambda r: seen.append(r) or ("gpt-4o", 1, 1))
    def chat():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    chat()
    assert seen == []
    assert len(fresh_tracker.records()) == 1


def test_model_override_sets_the_recorded_model_and_its_price(oai, store, fresh_tracker):
    client = oai[0]

    @track_costs(project="override", model="gpt-4o-mini")
    def chat():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    chat()
    (rec,) = fresh_tracker.records()
    assert rec.model == "gpt-4o-mini"
    expected = pricing.calculate("gpt-4o-mini", 1200, 300, cached_input_tokens=1024, reasoning_tokens=128)
    assert rec.cost_usd == pytest.approx(expected)
    assert store.window("override").spent_usd == pytest.approx(expected)


def test_unknown_model_warns_once_at_the_users_line(oai):
    client = oai[0]
    model = f"no-such-model-{uuid.uuid4().hex[:8]}"

    @track_costs(project="unpriced", model=model)
    def chat():
        line = inspect.currentframe().f_lineno + 1
        client.chat.completions.create(model="gpt-4o", messages=MSG)
        return line

    with pytest.warns(PricingMatrixOutdatedWarning) as caught:
        line = chat()
    (w,) = [w for w in caught if model in str(w.message)]
    assert (w.filename, w.lineno) == (__file__, line)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chat()  # once per model


# ----------------------------------------------------------------------------- stream shapes


def test_sync_function_returning_an_sdk_stream_returns_that_stream(oai, wire, store):
    client = oai[0]
    made = []

    @track_costs(project="s1")
    def stream():
        s = client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
        made.append(s)
        return s

    s = stream()
    assert s is made[0] and isinstance(s, openai.Stream)
    assert isinstance(s.response, httpx2.Response)
    with s:
        first = next(s)
        rest = list(s)
    assert first.choices[0].delta is not None and len(rest) >= 1
    w = store.window("s1")
    assert (w.calls, w.tokens) == (1, 1500)


def test_closing_a_returned_stream_early_still_counts_the_call(oai, wire, store):
    client = oai[0]

    @track_costs(project="s2", max_budget=CHAT_COST * 0.5)
    def stream():
        return client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)

    s = stream()
    next(s)
    s.close()  # records the call with what was seen (close itself never raises: it runs in cleanups)
    assert store.window("s2").calls == 1
    assert wire.count == 1


async def test_coroutine_returning_an_async_stream_returns_that_stream(oai, store):
    aclient = oai[1]
    made = []

    @track_costs(project="s3")
    async def stream():
        s = await aclient.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
        made.append(s)
        return s

    s = await stream()
    assert s is made[0] and isinstance(s, openai.AsyncStream)
    assert isinstance(s.response, httpx2.Response)
    async with s:
        first = await s.__anext__()
        rest = [c async for c in s]
    assert first is not None and rest
    assert store.window("s3").calls == 1


def test_generator_function_yields_the_same_chunks(oai, store):
    client = oai[0]

    def plain():
        with client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True) as stream:
            yield from stream

    expected = [c.model_dump() for c in plain()]
    tracked = track_costs(project="s4")(plain)
    gen = tracked()
    assert inspect.isgeneratorfunction(tracked) and isinstance(gen, types.GeneratorType)
    assert [c.model_dump() for c in gen] == expected
    assert store.window("s4").calls == 1

    gen = tracked()
    next(gen)
    gen.close()  # closes the inner generator, whose `with` closes the stream: the call is recorded
    assert store.window("s4").calls == 2


def test_generator_function_is_admitted_before_its_body_runs(oai, wire, store):
    client = oai[0]
    store.add_spend("gen-budget", 1.0)
    ran = []

    @track_costs(project="gen-budget", max_budget=0.5)
    def chunks():
        ran.append(1)
        yield from client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)

    gen = chunks()  # a generator: nothing runs until it is iterated
    with pytest.raises(BudgetExceededError):
        next(gen)
    assert ran == [] and wire.count == 0


def test_extract_usage_on_a_generator_reads_its_last_item(store, fresh_tracker):
    @track_costs(project="gen-extract", extract_usage=lambda last: (last["model"], last["in"], last["out"]))
    def chunks():
        yield {"text": "Hel"}
        yield {"text": "lo", "model": "gpt-4o-mini", "in": 10, "out": 2}

    assert [c["text"] for c in chunks()] == ["Hel", "lo"]
    (rec,) = fresh_tracker.records()
    assert (rec.model, rec.input_tokens, rec.output_tokens, rec.project) == ("gpt-4o-mini", 10, 2, "gen-extract")
    assert store.window("gen-extract").calls == 1


def test_generator_send_and_return_value_pass_through():
    @track_costs(project="s5")
    def echo():
        got = yield 1
        got = yield got * 10
        return got

    gen = echo()
    assert next(gen) == 1
    assert gen.send(4) == 40
    with pytest.raises(StopIteration) as stop:
        gen.send(7)
    assert stop.value.value == 7


async def test_async_generator_function_yields_the_same_chunks(oai, store):
    aclient = oai[1]

    async def plain():
        async with await aclient.chat.completions.create(model="gpt-4o", messages=MSG, stream=True) as s:
            async for chunk in s:
                yield chunk

    expected = [c.model_dump() async for c in plain()]
    tracked = track_costs(project="s6")(plain)
    assert inspect.isasyncgenfunction(tracked)
    assert [c.model_dump() async for c in tracked()] == expected
    assert store.window("s6").calls == 1
    agen = tracked()
    await agen.__anext__()
    await agen.aclose()
    assert store.window("s6").calls == 2


def test_function_returning_a_plain_generator_counts_its_lazy_calls(oai, wire, store):
    client = oai[0]

    @track_costs(project="s7", max_budget=CHAT_COST * 0.5)
    def lazy():
        def gen():  # the request is made only when the caller iterates, after lazy() returned
            yield from client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)

        return gen()

    g = lazy()
    assert isinstance(g, types.GeneratorType)
    assert wire.count == 0
    with pytest.raises(BudgetExceededError):  # raised at the end of the stream, after its chunks
        for _ in g:
            pass
    assert wire.count == 1 and store.window("s7").calls == 1
    with pytest.raises(BudgetExceededError):
        lazy()
    assert wire.count == 1


async def test_function_returning_an_async_generator_or_coroutine(oai, store):
    aclient = oai[1]

    @track_costs(project="s8")
    def agen():
        async def inner():
            stream = await aclient.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
            async for c in stream:
                yield c

        return inner()

    @track_costs(project="s8")
    def coro():
        return aclient.chat.completions.create(model="gpt-4o", messages=MSG)  # not awaited here

    g = agen()
    assert isinstance(g, types.AsyncGeneratorType)
    assert len([c async for c in g]) >= 1
    c = coro()
    assert inspect.iscoroutine(c)
    assert (await c).usage.prompt_tokens == 1200
    assert store.window("s8").calls == 2


def test_google_stream_generator(google, store):
    @track_costs(project="gemini")
    def stream():
        return google.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")

    chunks = list(stream())
    assert chunks and chunks[-1].usage_metadata is not None
    assert store.window("gemini").calls == 1


def test_anthropic_stream_manager_is_returned_as_is_and_counted(anth, store):
    client = anth[0]
    made = []

    @track_costs(project="mgr")
    def stream():
        m = client.messages.stream(model="claude-sonnet-4-6", max_tokens=10, messages=MSG)
        made.append(m)
        return m

    m = stream()
    assert m is made[0] and isinstance(m, anthropic.lib.streaming.MessageStreamManager)
    with m as s:  # the request is sent here, after stream() returned
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text and final.usage.output_tokens == 150
    w = store.window("mgr")
    assert w.calls == 1 and w.spent_usd == pytest.approx(CLAUDE_COST)


async def test_async_anthropic_stream_and_manager(anth, store):
    aclient = anth[1]

    @track_costs(project="amgr")
    def manager():
        return aclient.messages.stream(model="claude-sonnet-4-6", max_tokens=10, messages=MSG)

    @track_costs(project="amgr")
    async def raw():
        return await aclient.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSG,
                                             stream=True)

    async with manager() as s:
        text = [t async for t in s.text_stream]
    assert text
    s = await raw()
    assert isinstance(s, anthropic.AsyncStream)
    events = [e.type async for e in s]
    assert events[0] == "message_start"
    w = store.window("amgr")
    assert w.calls == 2 and w.spent_usd == pytest.approx(2 * CLAUDE_COST)


def test_openai_stream_helper_manager(oai, store):
    client = oai[0]

    @track_costs(project="helper")
    def stream():
        return client.chat.completions.stream(model="gpt-4o", messages=MSG)

    with stream() as s:
        kinds = [e.type for e in s]
        final = s.get_final_completion()
    assert "content.delta" in kinds and final.choices[0].message.content
    assert store.window("helper").calls == 1


# ----------------------------------------------------------------------------- stores, reporter


def test_same_db_as_the_persisted_tracker_is_written_once(oai, tmp_path, fresh_tracker):
    client = oai[0]
    tokenspy.init(persist=True, persist_dir=tmp_path / "core")
    try:
        store = SQLiteStore(tmp_path / "core" / "usage.db")
        set_store(store)

        @track_costs(project="shared")
        def chat():
            return client.chat.completions.create(model="gpt-4o", messages=MSG)

        chat()
        chat()
        tokenspy.stats()  # flushes the tracker
        store.flush()
        assert len(llm_rows(store.db_path)) == 2
        assert store.window("shared").calls == 2
        store.close()
    finally:
        tokenspy.init(persist=False)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_shares_the_budget(oai, wire, store):
    client = oai[0]

    @track_costs(project="fork", max_budget=CHAT_COST * 1.5)
    def chat():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    chat()  # the parent's connection is open
    pid = os.fork()
    if pid == 0:  # the child: its own connection, same DB
        code = 1
        try:
            chat()
        except BudgetExceededError:
            code = 0 if wire.count == 2 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.window("fork").calls == 2  # the child's call counts in the parent's budget
    with pytest.raises(BudgetExceededError):
        chat()
    assert wire.count == 1  # (the child's request went to its own copy of the wire)


def test_set_store_none_goes_back_to_the_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(toll_decorator, "_default_store", None)
    custom = SQLiteStore(tmp_path / "custom.db")
    set_store(custom)
    assert toll_decorator.get_store() is custom
    set_store(None)
    assert toll_decorator.get_store().db_path == tmp_path / ".tokenspy" / "usage.db"
    assert SQLiteStore().db_path == tmp_path / ".tokenspy" / "usage.db"
    with pytest.raises(TypeError):
        set_store("/tmp/x.db")  # type: ignore[arg-type]


def test_reporter_prints_one_line_per_call(oai):
    client = oai[0]
    out = io.StringIO()
    set_reporter(CostReporter(stream=out))

    @track_costs(project="shown", max_budget=1.0, reset="daily")
    def chat():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    chat()
    chat()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert all(chat.__qualname__ in line and "gpt-4o" in line and "project shown" in line for line in lines)
    assert f"${2 * CHAT_COST:.6f} of $1.00 today" in lines[1]
    assert "\x1b[" not in out.getvalue()


def test_default_reporter_writes_to_stderr(oai, capsys):
    client = oai[0]
    set_reporter(None)

    @track_costs(project="stderr")
    def chat():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    chat()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "project stderr" in captured.err


def test_nested_invocations_log_a_call_once_and_count_it_for_each_project(oai, store, fresh_tracker):
    client = oai[0]

    @track_costs(project="inner")
    def inner():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    @track_costs(project="outer", max_budget=CHAT_COST * 1.5)
    def outer():
        inner()
        inner()

    with pytest.raises(BudgetExceededError) as info:
        outer()
    assert info.value.project == "outer"
    store.flush()
    assert len(llm_rows(store.db_path)) == 2
    assert store.window("inner").calls == 2 and store.window("outer").calls == 2
    assert [r.project for r in fresh_tracker.records()] == ["inner", "inner"]
    assert [r.function_name for r in fresh_tracker.records()] == [inner.__qualname__] * 2


def test_same_project_nested_counts_once(oai, store):
    client = oai[0]

    @track_costs(project="same")
    def inner():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    @track_costs(project="same")
    def outer():
        return inner()

    outer()
    assert store.window("same").calls == 1


def test_calls_show_in_stats_and_reports(oai, fresh_tracker):
    client = oai[0]

    @track_costs(project="report")
    def summarize():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    summarize()
    s = tokenspy.stats()
    assert s["total_calls"] == 1
    assert list(s["by_function"]) == [summarize.__qualname__]
    assert s["calls"][0]["project"] == "report"


# ----------------------------------------------------------------------------- CLI


def test_cli_budget_shows_spend_per_project_and_window(oai, store, capsys):
    client = oai[0]

    @track_costs(project="cli-a", reset="daily")
    def a():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    @track_costs(project="cli-b")
    def b():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    a()
    a()
    b()
    store.close()
    before = store.db_path.stat().st_mtime_ns, store.db_path.stat().st_size
    assert cli.main(["budget", "--db", str(store.db_path)]) == 0
    out = capsys.readouterr().out
    assert "cli-a" in out and "cli-b" in out
    for label in ("all time", "this month", "this week", "today"):
        assert label in out
    assert f"${2 * CHAT_COST:,.6f}" in out and f"${CHAT_COST:,.6f}" in out
    assert cli.main(["budget", "--project", "cli-b", "--db", str(store.db_path)]) == 0
    out = capsys.readouterr().out
    assert "cli-b" in out and "cli-a" not in out
    assert cli.main(["budget", "--project", "nobody", "--db", str(store.db_path)]) == 0
    assert "no track_costs spend recorded for project 'nobody'" in capsys.readouterr().out
    assert (store.db_path.stat().st_mtime_ns, store.db_path.stat().st_size) == before


def test_cli_budget_never_creates_a_db(tmp_path, capsys):
    missing = tmp_path / "nope.db"
    assert cli.main(["budget", "--db", str(missing)]) == 2
    assert cli.main(["budget", "reset", "--project", "x", "--db", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count(str(missing)) == 2 and err.count("\n") == 2
    assert not missing.exists()
    assert cli.main(["budget", "reset", "--project", "", "--db", str(missing)]) == 2


def test_cli_budget_on_a_core_db_without_budget_tables(tmp_path, capsys):
    from tokenspy.record import CallRecord
    from tokenspy.store import write_records

    db = tmp_path / "core.db"
    write_records(db, [CallRecord("f", "gpt-4o", "openai", 1, 1, 0.1, 1.0, 0.0)])
    conn = sqlite3.connect(db)  # an older DB: as a v2 tokenspy wrote it
    conn.execute("DROP TABLE budget_spend")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    assert cli.main(["budget", "--db", str(db)]) == 0
    assert "no track_costs spend recorded" in capsys.readouterr().out
    # an older DB migrates on first write
    s = SQLiteStore(db)
    s.add_spend("p", 1.0)
    assert s.window("p").spent_usd == 1.0
    s.close()
