"""Who a call is attributed to: threads, asyncio tasks, nesting, generators, unprofiled code."""

from __future__ import annotations

import asyncio
import threading
import warnings
from pathlib import Path

import pytest

import tokenspy
from tokenspy.recorder import BudgetWarning

MSG = [{"role": "user", "content": "hi"}]
# source locations are stored relative to the git work tree root
HERE = Path(__file__).resolve().relative_to(Path(__file__).resolve().parents[2]).as_posix()


def test_nested_profiles_give_call_stack_outermost_first(oai, fresh_tracker):
    client = oai[0]

    @tokenspy.profile
    def inner():
        client.chat.completions.create(model="gpt-4o", messages=MSG)

    @tokenspy.profile
    def outer():
        client.chat.completions.create(model="gpt-4o", messages=MSG)
        inner()

    outer()
    first, second = fresh_tracker.records()
    assert first.function_name.endswith("outer") and first.call_stack == [first.function_name]
    assert second.function_name.endswith("inner")
    assert [s.rsplit(".", 1)[-1] for s in second.call_stack] == ["outer", "inner"]
    assert second.source_file == HERE and second.source_line == inner.__wrapped__.__code__.co_firstlineno


def test_sixteen_threads_never_mix_up_their_functions(oai, fresh_tracker):
    client = oai[0]
    barrier = threading.Barrier(16)
    funcs = []
    for i in range(16):
        def work(i=i):
            barrier.wait()
            for _ in range(5):
                client.chat.completions.create(model="gpt-4o", messages=MSG)
        work.__qualname__ = f"worker_{i}"
        funcs.append(tokenspy.profile(work))
    threads = [threading.Thread(target=f) for f in funcs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recs = fresh_tracker.records()
    assert len(recs) == 80
    by_fn = {}
    for r in recs:
        by_fn.setdefault(r.function_name, 0)
        by_fn[r.function_name] += 1
        assert r.call_stack == [r.function_name]
    assert by_fn == {f"worker_{i}": 5 for i in range(16)}


def test_asyncio_gather_of_100_profiled_coroutines(oai, fresh_tracker):
    client = oai[1]

    def make(i):
        async def task():
            await asyncio.sleep(0)
            await client.chat.completions.create(model="gpt-4o", messages=MSG)
            await asyncio.sleep(0)
            stream = await client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
            async for _ in stream:
                await asyncio.sleep(0)
        task.__qualname__ = f"task_{i}"
        return tokenspy.profile(task)

    async def main():
        await asyncio.gather(*(make(i)() for i in range(100)))

    asyncio.run(main())
    recs = fresh_tracker.records()
    assert len(recs) == 200
    counts = {}
    for r in recs:
        counts[r.function_name] = counts.get(r.function_name, 0) + 1
    assert counts == {f"task_{i}": 2 for i in range(100)}


def test_task_spawned_inside_profiled_function_is_attributed_to_it(oai, fresh_tracker):
    client = oai[1]

    @tokenspy.profile
    async def parent():
        await asyncio.create_task(client.embeddings.create(model="text-embedding-3-small", input="x"))

    asyncio.run(parent())
    (rec,) = fresh_tracker.records()
    assert rec.function_name.endswith("parent")


def test_generator_frame_is_active_only_while_it_runs(oai, fresh_tracker):
    client = oai[0]

    @tokenspy.profile
    def producer():
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o", messages=MSG)
            yield 1

    @tokenspy.profile
    def consumer():
        for _ in producer():
            # while the consumer handles an item, the producer is suspended: not on the stack
            client.embeddings.create(model="text-embedding-3-small", input="x")

    consumer()
    names = [(r.model, r.call_stack[-1].rsplit(".", 1)[-1], len(r.call_stack)) for r in fresh_tracker.records()]
    assert names == [
        ("gpt-4o", "producer", 2), ("text-embedding-3-small", "consumer", 1),
    ] * 2


def test_generator_send_throw_and_return_value_pass_through():
    @tokenspy.profile
    def echo():
        received = []
        try:
            while True:
                received.append((yield len(received)))
        except KeyError:
            yield "caught"
        return received

    g = echo()
    assert next(g) == 0
    assert g.send("a") == 1
    assert g.throw(KeyError("x")) == "caught"
    with pytest.raises(StopIteration) as stop:
        next(g)
    assert stop.value.value == ["a"]


def test_async_generator_attribution(oai, fresh_tracker):
    client = oai[1]

    @tokenspy.profile
    async def agen():
        for _ in range(3):
            await client.chat.completions.create(model="gpt-4o", messages=MSG)
            yield 1

    async def main():
        return [x async for x in agen()]

    assert asyncio.run(main()) == [1, 1, 1]
    assert [r.function_name.rsplit(".", 1)[-1] for r in fresh_tracker.records()] == ["agen"] * 3


def test_unprofiled_call_is_attributed_to_nearest_user_function(oai, fresh_tracker, active):
    def helper_that_calls_the_sdk():
        oai[0].chat.completions.create(model="gpt-4o", messages=MSG)

    helper_that_calls_the_sdk()
    (rec,) = fresh_tracker.records()
    assert rec.function_name == f"{__name__}.{helper_that_calls_the_sdk.__qualname__}"
    assert rec.source_file == HERE
    assert rec.function_name != "<unknown>"


def test_functools_wraps_kept():
    @tokenspy.profile(budget_usd=1.0)
    def documented(x: int) -> int:
        """Doc."""
        return x

    assert documented.__name__ == "documented" and documented.__doc__ == "Doc."
    assert documented(3) == 3


def test_budget_raise_is_per_invocation(oai, fresh_tracker):
    client = oai[0]

    @tokenspy.profile(budget_usd=0.006, on_exceeded="raise")
    def two_calls():
        client.chat.completions.create(model="gpt-4o", messages=MSG)  # $0.00472
        client.chat.completions.create(model="gpt-4o", messages=MSG)  # over: raises here
        raise AssertionError("not reached")

    @tokenspy.profile(budget_usd=0.006, on_exceeded="raise")
    def one_call():
        client.chat.completions.create(model="gpt-4o", messages=MSG)
        return "ok"

    # earlier spending elsewhere never counts against a new invocation
    for _ in range(3):
        assert one_call() == "ok"
    with pytest.raises(tokenspy.BudgetExceededError) as info:
        two_calls()
    assert isinstance(info.value, BaseException) and not isinstance(info.value, Exception)
    assert info.value.budget == 0.006
    assert info.value.spent == pytest.approx(2 * 0.00472)
    assert len(fresh_tracker.records()) == 5  # the call that went over was paid, so it is recorded


def test_budget_warn_mode_warns_once_and_returns(oai):
    client = oai[0]

    @tokenspy.profile(budget_usd=0.001)
    def spender():
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o", messages=MSG)
        return "done"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert spender() == "done"
    assert len([w for w in caught if issubclass(w.category, BudgetWarning)]) == 1


def test_budget_exceeded_in_stream_raises_at_end_of_stream(oai):
    client = oai[0]

    @tokenspy.profile(budget_usd=0.001, on_exceeded="raise")
    def streamer():
        chunks = []
        for chunk in client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True):
            chunks.append(chunk)
        return chunks

    with pytest.raises(tokenspy.BudgetExceededError):
        streamer()


def test_budget_exceeded_in_async_function(oai):
    client = oai[1]

    @tokenspy.profile(budget_usd=0.001, on_exceeded="raise")
    async def spender():
        await client.chat.completions.create(model="gpt-4o", messages=MSG)

    with pytest.raises(tokenspy.BudgetExceededError):
        asyncio.run(spender())


def test_profile_rejects_bad_arguments():
    with pytest.raises(ValueError, match="on_exceeded"):
        tokenspy.profile(on_exceeded="explode")
    with pytest.raises(ValueError, match="budget_usd"):
        tokenspy.profile(budget_usd=-1)


def test_sessions_nest_and_see_every_call(oai, fresh_tracker):
    client = oai[0]

    @tokenspy.profile
    def earlier():
        client.chat.completions.create(model="gpt-4o", messages=MSG)

    earlier()  # a profiled call before the session must not hide later ones from it
    with tokenspy.session("outer") as outer:
        client.chat.completions.create(model="gpt-4o", messages=MSG)
        with tokenspy.session("inner") as inner:
            earlier()
            client.embeddings.create(model="text-embedding-3-small", input="x")
    assert (outer.calls, inner.calls) == (3, 2)
    assert outer.tokens == 1500 * 2 + 8
    assert outer.cost == pytest.approx(2 * 0.00472 + 8 * 0.02 / 1e6)
    assert outer.cost_str == f"${outer.cost:.4f}"
    assert [r.session_id for r in fresh_tracker.records()] == [None, "outer", "inner", "inner"]
    summary = inner.summary()
    assert summary["total_calls"] == 2 and set(summary) >= {"by_function", "by_model", "calls"}
    # exiting a session never unpatches anything for others
    assert tokenspy.interceptor.is_active()
    client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert len(fresh_tracker.records()) == 5


def test_async_session(oai):
    client = oai[1]

    async def main():
        async with tokenspy.session("aio") as s:
            await client.chat.completions.create(model="gpt-4o", messages=MSG)
        return s

    assert asyncio.run(main()).calls == 1
