"""The LangChain callback handler: real ``langchain_core`` chat models, every way of running them,
and no double counting when the model calls an SDK that tokenspy patches.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableLambda

import tokenspy
from tokenspy import context, interceptor
from tokenspy.integrations import langchain as tl
from tokenspy.integrations.langchain import TokenspyCallbackHandler
from tokenspy.tracker import Tracker

USAGE = {
    "input_tokens": 1200,
    "output_tokens": 300,
    "total_tokens": 1500,
    "input_token_details": {"cache_read": 1024},
    "output_token_details": {"reasoning": 128},
}
EXPECTED = ("gpt-4o-2024-08-06", 1200, 300, 1024, 128)


class UsageChat(BaseChatModel):
    """A chat model that reports usage the way LangChain's provider packages do."""

    model_name: str = "gpt-4o"
    fail: bool = False

    @property
    def _llm_type(self) -> str:
        return "usage-chat"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "openai"
        params["ls_model_name"] = self.model_name
        return params

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        if self.fail:
            raise RuntimeError("provider down")
        message = AIMessage(content="hello", usage_metadata=USAGE,
                            response_metadata={"model_name": "gpt-4o-2024-08-06"})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for text in ("hel", "lo"):
            yield ChatGenerationChunk(message=AIMessageChunk(content=text))
        # like ChatOpenAI: usage and model name come with the last chunk only
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata=USAGE, response_metadata={"model_name": "gpt-4o-2024-08-06"}))


def _check(tracker: Tracker, n: int = 1, expected: tuple = EXPECTED, provider: str = "openai") -> list:
    recs = tracker.records()
    assert len(recs) == n, [(r.provider, r.model, r.input_tokens) for r in recs]
    for r in recs:
        assert (r.model, r.input_tokens, r.output_tokens, r.cached_input_tokens, r.reasoning_tokens) == expected
        assert r.provider == provider
        assert r.priced and r.cost_usd > 0
    return recs


@pytest.fixture
def handler():
    return TokenspyCallbackHandler()


def test_is_a_real_callback_handler(handler):
    assert isinstance(handler, BaseCallbackHandler)
    assert handler.tracker is None


def test_invoke(handler, fresh_tracker):
    out = UsageChat().invoke("hi", config={"callbacks": [handler]})
    assert out.content == "hello"
    _check(fresh_tracker)


def test_stream(handler, fresh_tracker):
    chunks = list(UsageChat().stream("hi", config={"callbacks": [handler]}))
    assert "".join(c.content for c in chunks) == "hello"
    _check(fresh_tracker)


def test_batch(handler, fresh_tracker):
    outs = UsageChat().batch(["a", "b", "c"], config={"callbacks": [handler]})
    assert [o.content for o in outs] == ["hello"] * 3
    _check(fresh_tracker, 3)


def test_generate_with_several_prompts_records_each(handler, fresh_tracker):
    UsageChat().generate([[HumanMessage("a")], [HumanMessage("b")]], callbacks=[handler])
    _check(fresh_tracker, 2)


def test_ainvoke_astream_abatch(handler, fresh_tracker):
    async def main():
        model = UsageChat()
        cfg = {"callbacks": [handler]}
        await model.ainvoke("hi", config=cfg)
        [c async for c in model.astream("hi", config=cfg)]
        await model.abatch(["a", "b"], config=cfg)

    asyncio.run(main())
    _check(fresh_tracker, 4)


def test_in_a_chain_the_callback_is_inherited(handler, fresh_tracker):
    chain = RunnableLambda(lambda x: f"say {x}") | UsageChat() | RunnableLambda(lambda m: m.content.upper())
    assert chain.invoke("hi", config={"callbacks": [handler]}) == "HELLO"
    _check(fresh_tracker)


def test_cache_write_and_1h_split_and_anthropic_provider(handler, fresh_tracker):
    class ClaudeChat(UsageChat):
        def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
            return {**super()._get_ls_params(stop=stop, **kwargs), "ls_provider": "anthropic"}

        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> ChatResult:
            usage = {"input_tokens": 6156, "output_tokens": 150, "total_tokens": 6306,
                     "input_token_details": {"cache_read": 4096, "cache_creation": 2048,
                                             "ephemeral_5m_input_tokens": 1024,
                                             "ephemeral_1h_input_tokens": 1024}}
            msg = AIMessage(content="x", usage_metadata=usage,
                            response_metadata={"model": "claude-sonnet-4-5-20250929"})
            return ChatResult(generations=[ChatGeneration(message=msg)])

    ClaudeChat().invoke("hi", config={"callbacks": [handler]})
    (r,) = fresh_tracker.records()
    assert (r.provider, r.model) == ("anthropic", "claude-sonnet-4-5-20250929")
    assert (r.input_tokens, r.cached_input_tokens, r.cache_write_tokens, r.output_tokens) == (6156, 4096, 2048, 150)
    # $3 fresh input, $0.30 cache read, $3.75 5m write, $6 1h write, $15 output (per 1M)
    assert r.cost_usd == pytest.approx((12 * 3 + 4096 * 0.30 + 1024 * 3.75 + 1024 * 6 + 150 * 15) / 1e6)


def test_model_without_usage_or_known_provider_is_recorded_as_langchain(handler, fresh_tracker):
    model = GenericFakeChatModel(messages=iter([AIMessage(content="hey")]))
    with pytest.warns(tokenspy.PricingMatrixOutdatedWarning):
        assert model.invoke("hi", config={"callbacks": [handler]}).content == "hey"
    (r,) = fresh_tracker.records()
    assert r.provider == "langchain"
    assert r.model == "generic-fake-chat-model"
    assert (r.input_tokens, r.output_tokens, r.priced) == (0, 0, False)


def test_failed_run_is_not_recorded_and_error_propagates(handler, fresh_tracker):
    with pytest.raises(RuntimeError, match="provider down"):
        UsageChat(fail=True).invoke("hi", config={"callbacks": [handler]})
    assert fresh_tracker.records() == []
    assert context.outer_calls.get() == ()
    assert tl._runs == {}


def test_stream_cut_short_records_what_was_streamed(handler, fresh_tracker):
    class UsageEveryChunk(UsageChat):
        def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
            for _ in range(3):
                yield ChatGenerationChunk(message=AIMessageChunk(
                    content="x", usage_metadata={"input_tokens": 10, "output_tokens": 1, "total_tokens": 11}))

    stream = UsageEveryChunk().stream("hi", config={"callbacks": [handler]})
    next(stream)
    stream.close()
    (r,) = fresh_tracker.records()
    assert (r.input_tokens, r.output_tokens) == (10, 1)


def test_tracker_argument_receives_the_records(fresh_tracker):
    mine = Tracker()
    UsageChat().invoke("hi", config={"callbacks": [TokenspyCallbackHandler(tracker=mine)]})
    assert fresh_tracker.records() == []
    _check(mine)


def test_attribution_profile_session_and_budget(handler, fresh_tracker):
    @tokenspy.profile(budget_usd=1e-9, on_exceeded="raise")
    def summarize() -> str:
        return UsageChat().invoke("hi", config={"callbacks": [handler]}).content

    with tokenspy.session("lc") as s, pytest.raises(tokenspy.BudgetExceededError):
        summarize()
    (r,) = fresh_tracker.records()
    assert r.function_name.endswith("summarize")
    assert r.session_id == "lc"
    assert s.records() == [r]


def test_unprofiled_run_is_attributed_to_the_caller_of_invoke(handler, fresh_tracker):
    def my_pipeline():
        return UsageChat().invoke("hi", config={"callbacks": [handler]})

    my_pipeline()
    (r,) = fresh_tracker.records()
    assert r.function_name == f"{__name__}.{my_pipeline.__qualname__}"


# ---------------------------------------------------------------------------- install()


@pytest.fixture
def installed():
    h = tl.install()
    yield h
    tl.uninstall()


def test_install_records_without_passing_callbacks(installed, fresh_tracker):
    model = UsageChat()
    model.invoke("hi")
    list(model.stream("hi"))
    model.batch(["a", "b"])

    async def main():
        await model.ainvoke("hi")
        [c async for c in model.astream("hi")]

    asyncio.run(main())
    _check(fresh_tracker, 6)


def test_install_is_idempotent_and_uninstall_stops_recording(fresh_tracker):
    first = tl.install()
    try:
        assert tl.install() is first
        assert tl.installed_handler() is first
        UsageChat().invoke("hi")
        _check(fresh_tracker, 1)
    finally:
        tl.uninstall()
    tl.uninstall()  # no-op
    assert tl.installed_handler() is None
    UsageChat().invoke("hi")
    _check(fresh_tracker, 1)


def test_installed_and_explicit_handler_record_once(installed, fresh_tracker):
    mine = Tracker()
    UsageChat().invoke("hi", config={"callbacks": [TokenspyCallbackHandler(tracker=mine)]})
    _check(mine)  # the explicit handler comes first and owns the run
    assert fresh_tracker.records() == []


def test_langgraph_node_is_recorded_when_langgraph_is_installed(installed, fresh_tracker):
    graph_mod = pytest.importorskip("langgraph.graph")
    from typing import TypedDict

    class State(TypedDict):
        text: str

    def node(state: State) -> State:
        return {"text": UsageChat().invoke(state["text"]).content}

    g = graph_mod.StateGraph(State)
    g.add_node("llm", node)
    g.set_entry_point("llm")
    g.set_finish_point("llm")
    assert g.compile().invoke({"text": "hi"}) == {"text": "hello"}
    _check(fresh_tracker)


# ---------------------------------------------------------------------------- no double counting


class OpenAIChat(BaseChatModel):
    """A minimal LangChain wrapper over the real OpenAI SDK, like langchain-openai's ChatOpenAI."""

    client: Any
    aclient: Any = None
    model_name: str = "gpt-4o"
    calls_per_generate: int = 1

    @property
    def _llm_type(self) -> str:
        return "openai-chat-test"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return {**super()._get_ls_params(stop=stop, **kwargs), "ls_provider": "openai",
                "ls_model_name": self.model_name}

    @staticmethod
    def _msgs(messages: list[BaseMessage]) -> list[dict[str, str]]:
        return [{"role": "user", "content": str(m.content)} for m in messages]

    @staticmethod
    def _result(r: Any) -> ChatResult:
        u = r.usage
        usage = {"input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens,
                 "total_tokens": u.total_tokens}
        msg = AIMessage(content=r.choices[0].message.content or "", usage_metadata=usage,
                        response_metadata={"model_name": r.model})
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        for _ in range(self.calls_per_generate):
            r = self.client.chat.completions.create(model=self.model_name, messages=self._msgs(messages))
        return self._result(r)

    async def _agenerate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                         **kwargs: Any) -> ChatResult:
        r = await self.aclient.chat.completions.create(model=self.model_name, messages=self._msgs(messages))
        return self._result(r)

    def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        # like langchain-openai: the SDK stream is closed when LangChain's stream is
        with self.client.chat.completions.create(
                model=self.model_name, messages=self._msgs(messages), stream=True,
                stream_options={"include_usage": True}) as stream:
            for chunk in stream:
                if chunk.usage is not None:
                    u = chunk.usage
                    yield ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata={
                        "input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens,
                        "total_tokens": u.total_tokens}, response_metadata={"model_name": chunk.model}))
                elif chunk.choices:
                    yield ChatGenerationChunk(message=AIMessageChunk(content=chunk.choices[0].delta.content or ""))

    async def _astream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        stream = await self.aclient.chat.completions.create(
            model=self.model_name, messages=self._msgs(messages), stream=True)
        async for chunk in stream:
            if chunk.choices:
                yield ChatGenerationChunk(message=AIMessageChunk(content=chunk.choices[0].delta.content or ""))


# what the SDK interceptor records from the wire fixtures (tests/fixtures/openai_chat*.json/sse)
SDK_CHAT = ("gpt-4o", 1200, 300, 1024, 128)
SDK_STREAM = ("gpt-4o-2024-08-06", 1200, 300, 1024, 128)


@pytest.fixture
def lc_openai(oai):
    return OpenAIChat(client=oai[0], aclient=oai[1])


def test_sdk_backed_model_invoke_makes_one_record_the_sdk_one(lc_openai, handler, wire, fresh_tracker, active):
    @tokenspy.profile
    def answer() -> str:
        return lc_openai.invoke("hi", config={"callbacks": [handler]}).content

    assert answer() == '{"answer": "hi"}'
    assert wire.count == 1
    (r,) = _check(fresh_tracker, 1, SDK_CHAT)  # cached/reasoning known: the SDK's record, not LangChain's
    assert r.function_name.endswith("answer")
    assert context.outer_calls.get() == ()
    assert tl._runs == {}


def test_sdk_backed_model_unprofiled_is_attributed_to_the_caller_of_invoke(lc_openai, handler, fresh_tracker,
                                                                           active):
    def my_pipeline():
        return lc_openai.invoke("hi", config={"callbacks": [handler]})

    my_pipeline()
    (r,) = _check(fresh_tracker, 1, SDK_CHAT)
    assert r.function_name == f"{__name__}.{my_pipeline.__qualname__}"


def test_sdk_backed_model_every_way_of_running_it(lc_openai, installed, wire, fresh_tracker, active):
    lc_openai.invoke("hi")
    list(lc_openai.stream("hi"))
    lc_openai.batch(["a", "b"])
    lc_openai.generate([[HumanMessage("a")], [HumanMessage("b")]])

    async def main():
        await lc_openai.ainvoke("hi")
        [c async for c in lc_openai.astream("hi")]
        await lc_openai.abatch(["a", "b"])

    asyncio.run(main())
    assert wire.count == 10
    recs = fresh_tracker.records()
    assert len(recs) == 10
    assert {r.provider for r in recs} == {"openai"}
    assert all(r.cached_input_tokens == 1024 for r in recs)  # all of them the SDK's records


def test_one_record_per_http_call_inside_one_langchain_run(lc_openai, handler, wire, fresh_tracker, active):
    lc_openai.calls_per_generate = 3  # e.g. a wrapper that retries or refines
    lc_openai.invoke("hi", config={"callbacks": [handler]})
    assert wire.count == 3
    _check(fresh_tracker, 3, SDK_CHAT)


def test_sdk_backed_model_goes_to_the_handlers_tracker(lc_openai, fresh_tracker, active):
    mine = Tracker()
    lc_openai.invoke("hi", config={"callbacks": [TokenspyCallbackHandler(tracker=mine)]})
    assert fresh_tracker.records() == []
    _check(mine, 1, SDK_CHAT)


def test_sdk_not_patched_the_handler_records_instead(lc_openai, handler, fresh_tracker):
    interceptor.deactivate()
    lc_openai.invoke("hi", config={"callbacks": [handler]})
    # LangChain's usage_metadata (no cache details in this wrapper), provider from ls_provider
    _check(fresh_tracker, 1, ("gpt-4o", 1200, 300, 0, 0))


def test_abandoned_sdk_backed_stream_records_once(lc_openai, handler, fresh_tracker, active):
    stream = lc_openai.stream("hi", config={"callbacks": [handler]})
    next(stream)
    stream.close()
    recs = fresh_tracker.records()
    assert len(recs) == 1 and recs[0].provider == "openai"


def test_direct_sdk_call_after_a_langchain_run_is_not_affected(lc_openai, handler, oai, fresh_tracker, active):
    mine = Tracker()
    lc_openai.invoke("hi", config={"callbacks": [TokenspyCallbackHandler(tracker=mine)]})
    oai[0].chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert len(mine.records()) == 1
    assert len(fresh_tracker.records()) == 1  # the direct call went to the global tracker


class WrapperChat(UsageChat):
    """A chat model whose ``_generate`` runs another LangChain chat model."""

    inner: Any = None

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        msg = self.inner.invoke(messages)  # LLM runs are leaves: LangChain gives no child callbacks
        return ChatResult(generations=[ChatGeneration(message=msg)])


def test_model_wrapping_a_model_records_once(handler, fresh_tracker):
    def my_pipeline():
        return WrapperChat(inner=UsageChat()).invoke("hi", config={"callbacks": [handler]})

    assert my_pipeline().content == "hello"
    (r,) = _check(fresh_tracker)
    assert r.function_name == f"{__name__}.{my_pipeline.__qualname__}"


def test_model_wrapping_a_model_records_once_when_installed(installed, fresh_tracker):
    WrapperChat(inner=UsageChat()).invoke("hi")
    _check(fresh_tracker)


def test_calls_made_between_the_chunks_of_a_stream_are_not_the_streams(handler, oai, fresh_tracker, active):
    # the user's loop body runs in the stream's context: its own calls must not be taken for
    # calls the streaming model made
    n = 0
    for _chunk in UsageChat().stream("hi", config={"callbacks": [handler]}):
        n += 1
        oai[0].chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        UsageChat().invoke("moderate", config={"callbacks": [handler]})
    recs = fresh_tracker.records()
    sdk = [r for r in recs if r.cached_input_tokens == 1024 and r.model == "gpt-4o"]
    lc = [r for r in recs if r.model == "gpt-4o-2024-08-06"]
    assert n >= 3
    assert len(sdk) == n  # one per chunk
    assert len(lc) == n + 1  # the invokes in the loop, and the stream itself


def test_completion_llm_token_usage_from_llm_output(handler, fresh_tracker):
    from langchain_core.language_models import BaseLLM
    from langchain_core.outputs import Generation, LLMResult

    class InstructLLM(BaseLLM):
        @property
        def _llm_type(self) -> str:
            return "instruct-test"

        def _generate(self, prompts: list[str], stop: Any = None, run_manager: Any = None,
                      **kwargs: Any) -> LLMResult:
            return LLMResult(
                generations=[[Generation(text="ok")] for _ in prompts],
                llm_output={"token_usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
                            "model_name": "gpt-3.5-turbo-instruct"})

    assert InstructLLM().invoke("hi", config={"callbacks": [handler]}) == "ok"
    (r,) = fresh_tracker.records()
    assert (r.provider, r.model, r.input_tokens, r.output_tokens) == ("langchain", "gpt-3.5-turbo-instruct", 5, 1)
    assert r.priced and r.cost_usd > 0


# ---------------------------------------------------------------------------- request mode


@pytest.fixture
def request_mode():
    tokenspy.init(usage="request")
    yield
    tokenspy.init()


def test_request_mode_counts_the_messages_not_the_reported_usage(handler, fresh_tracker, request_mode):
    from tokenspy.tokens import count_request, count_text

    UsageChat().invoke("hi there", config={"callbacks": [handler]})
    UsageChat().invoke("hi there, " * 50, config={"callbacks": [handler]})
    short, long = fresh_tracker.records()
    # the model asked for (ls_model_name), never the one the response metadata names
    assert (short.model, short.usage_source) == ("gpt-4o", "request")
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi there"}]}
    assert short.input_tokens == count_request("openai", "chat", body).input_tokens
    assert short.output_tokens == count_text("openai", "gpt-4o", "hello")
    assert long.input_tokens > short.input_tokens and long.cost_usd > short.cost_usd
    assert (short.cached_input_tokens, short.reasoning_tokens) == (0, 0)


def test_request_mode_prices_a_fake_chat_model_under_a_configured_default(fresh_tracker, request_mode):
    handler = TokenspyCallbackHandler(default_model="gpt-4o-mini")
    short = GenericFakeChatModel(messages=iter([AIMessage(content="ok")]))
    chatty = GenericFakeChatModel(messages=iter([AIMessage(content="ok, and a much longer answer " * 10)]))
    short.invoke("hi", config={"callbacks": [handler]})
    chatty.invoke("hi", config={"callbacks": [handler]})
    a, b = fresh_tracker.records()
    assert (a.model, a.priced, a.usage_source) == ("gpt-4o-mini", True, "request_approx")
    assert a.input_tokens > 0 and b.output_tokens > a.output_tokens and b.cost_usd > a.cost_usd


def test_request_mode_sdk_backed_model_is_counted_once_by_the_sdk(lc_openai, handler, wire, fresh_tracker,
                                                                 active, request_mode):
    lc_openai.invoke("hi", config={"callbacks": [handler]})
    (r,) = fresh_tracker.records()
    assert r.usage_source == "request" and r.provider == "openai"
