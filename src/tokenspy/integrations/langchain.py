"""LangChain / LangGraph: a callback handler that records every chat-model and LLM run.

Pass it as a callback, or call :func:`install` once to have LangChain add it to every run
(invoke, stream, batch, ainvoke, astream, LangGraph nodes, threads) without passing anything::

    from tokenspy.integrations.langchain import TokenspyCallbackHandler, install

    model.invoke("hi", config={"callbacks": [TokenspyCallbackHandler()]})
    install()  # from now on, every LangChain run is recorded

Each run is started at ``on_chat_model_start`` / ``on_llm_start`` (attribution, sessions, test
and budgets are those of the caller, as for any recorded call) and recorded at ``on_llm_end``
from the message's ``usage_metadata`` (cache reads and writes, reasoning) and model name.
A failed run is not recorded, unless LangChain hands over the usage of what was already
streamed (a stream cut short was paid for).

**One record per HTTP call.** Most LangChain chat models call a provider SDK that tokenspy
patches (``ChatOpenAI`` -> ``openai``, ``ChatAnthropic`` -> ``anthropic``, ...). While a run
is open, the handler puts a :class:`tokenspy.context.OuterCall` on the ``outer_calls``
context variable; an SDK call that begins underneath (in ``_generate``/``_stream``, same
context) marks it, and then the SDK's record is the one kept (exact tokens, one per HTTP
request, retries and tool loops included) and the handler skips the run. The SDK record takes
the handler's tracker and the run's caller as its attribution. Models that call no patched
SDK are recorded by the handler alone. The handler runs inline (``run_inline``) so that, in
async code too, the marker is set in the context the model then runs in.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from tokenspy import context, pricing, recorder
from tokenspy.integrations import _lc_request
from tokenspy.recorder import Pending, Usage

__all__ = ["TokenspyCallbackHandler", "install", "installed_handler", "uninstall"]

PROVIDER = "langchain"
# LangChain's ``ls_provider`` ids -> tokenspy/genai-prices provider ids. Anything else (a custom
# model's class-derived id, say) is recorded as "langchain".
_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google_genai": "google",
    "google_vertexai": "google",
    "google": "google",
    "azure": "azure",
    "azure_openai": "azure",
    "bedrock": "aws",
    "amazon_bedrock": "aws",
    "mistral": "mistral",
    "mistralai": "mistral",
    "groq": "groq",
    "fireworks": "fireworks",
    "together": "together",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "xai": "x-ai",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
}


class _Run:
    __slots__ = ("call", "handler", "model", "p")

    def __init__(self, handler: TokenspyCallbackHandler, p: Pending, call: context.OuterCall,
                 model: str | None) -> None:
        self.handler = handler
        self.p = p
        self.call = call
        self.model = model


# run_id -> the run, shared by all handlers: when two tokenspy handlers see the same run (one
# passed explicitly, one installed globally), the first to start it owns it.
_runs: dict[UUID, _Run] = {}


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _requested_model(serialized: Any, metadata: Any, params: Any) -> str | None:
    return (
        _str(_get(metadata, "ls_model_name"))
        or _str(_get(params, "model"))
        or _str(_get(params, "model_name"))
        or _str(_get(params, "model_id"))
        or _str(_get(params, "_type"))
        or _str(_get(serialized, "name"))
    )


def _provider(metadata: Any) -> str:
    ls = _get(metadata, "ls_provider")
    if isinstance(ls, str):
        return _PROVIDERS.get(ls.lower(), PROVIDER)
    return PROVIDER


def usage_of(um: Any) -> Usage:
    """Usage from LangChain's ``usage_metadata`` (its totals already include cache and reasoning)."""
    inp = _get(um, "input_tokens") or 0
    out = _get(um, "output_tokens") or 0
    itd = _get(um, "input_token_details")
    otd = _get(um, "output_token_details")
    read = _get(itd, "cache_read") or 0
    write = _get(itd, "cache_creation") or 0
    write_1h = _get(itd, "ephemeral_1h_input_tokens") or 0
    reasoning = _get(otd, "reasoning") or 0
    return Usage(max(inp, read + write), out, read, write, min(reasoning, out), min(write_1h, write))


def _from_token_usage(tu: Any) -> Usage | None:
    """``llm_output["token_usage"]`` of completion-style LLMs (OpenAI names or generic ones)."""
    if not isinstance(tu, dict):
        return None
    inp = tu.get("prompt_tokens", tu.get("input_tokens"))
    out = tu.get("completion_tokens", tu.get("output_tokens"))
    if inp is None and out is None:
        return None
    return Usage(inp or 0, out or 0)


def _result(response: Any, run: _Run) -> tuple[str | None, Usage | None]:
    """(model, usage) of an ``LLMResult`` for one run."""
    model = None
    usage = None
    for gens in _get(response, "generations") or ():
        for gen in gens or ():
            message = _get(gen, "message")
            meta = _get(message, "response_metadata")
            model = model or _str(_get(meta, "model_name")) or _str(_get(meta, "model"))
            um = _get(message, "usage_metadata")
            if um and usage is None:
                usage = usage_of(um)
        if usage is not None:
            break
    llm_output = _get(response, "llm_output")
    if isinstance(llm_output, dict):
        model = model or _str(llm_output.get("model_name")) or _str(llm_output.get("model"))
        if usage is None:
            usage = _from_token_usage(llm_output.get("token_usage") or llm_output.get("usage"))
    return model or run.model, usage


def _close(call: context.OuterCall) -> None:
    call.open = False
    current = context.outer_calls.get()
    if call in current:  # same context as the start: tidy up (elsewhere it is inert anyway)
        context.outer_calls.set(tuple(c for c in current if c.open))


class TokenspyCallbackHandler(BaseCallbackHandler):
    """Records each LangChain chat-model/LLM run as a tokenspy call.

    Args:
        tracker: where the records go (default: the global tracker). SDK calls made inside
            this handler's runs go there too.
    """

    run_inline = True  # called in the run's own context, in async code too (see module doc)
    raise_error = True  # so that a raising budget reaches the caller; our own errors never do

    def __init__(self, tracker: Any = None, default_model: str | None = None) -> None:
        super().__init__()
        self.tracker = tracker
        self.default_model = default_model
        self.disabled = False

    # ------------------------------------------------------------------------ start

    def _model(self, serialized: Any, metadata: Any, params: Any) -> str | None:
        """The model a run asked for; the configured default where that has no known price
        (fake and test chat models report their class's type)."""
        model = _requested_model(serialized, metadata, params)
        if self.default_model and (model is None or pricing.lookup(model, _provider(metadata)) is None):
            return self.default_model
        return model

    def _start(self, run_id: UUID, serialized: Any, metadata: Any, kwargs: dict[str, Any],
               messages: Any = None, prompts: Any = None) -> None:
        try:
            if self.disabled or run_id in _runs:
                return
            params = kwargs.get("invocation_params")
            model = self._model(serialized, metadata, params)
            request = None
            if recorder.request_mode():
                provider = _provider(metadata)
                if messages:
                    request = _lc_request.chat_request(provider, model, list(messages[0]), params)
                elif prompts:
                    request = _lc_request.llm_request(provider, model, prompts[:1])
            if (kwargs.get("batch_size") or 1) > 1:
                # ``generate`` with several prompts starts all their runs before running any:
                # the runs open beside this one are its siblings, not calls enclosing it
                token = context.outer_calls.set(())
                try:
                    p = recorder.begin(_provider(metadata), model, 2, request)
                finally:
                    context.outer_calls.reset(token)
            else:
                # an LLM run open here encloses this one (a model whose _generate runs another
                # model): like an SDK call, the inner run is the one recorded
                p = recorder.begin(_provider(metadata), model, 2, request)
            if p is None:  # suppressed: an outer layer records this call
                return
            if self.tracker is not None:
                p.tracker = self.tracker
            call = context.OuterCall(p.tracker, p.user)
            live = tuple(c for c in context.outer_calls.get() if c.open)
            context.outer_calls.set((*live, call))
            _runs[run_id] = _Run(self, p, call, model)
        except Exception as exc:
            recorder.internal_error(exc)

    def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, *, run_id: UUID,
                            parent_run_id: UUID | None = None, tags: list[str] | None = None,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start(run_id, serialized, metadata, kwargs, messages=messages)

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID,
                     parent_run_id: UUID | None = None, tags: list[str] | None = None,
                     metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start(run_id, serialized, metadata, kwargs, prompts=prompts)

    def on_llm_new_token(self, token: str, *, chunk: Any = None, run_id: UUID,
                         parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        # The model's request is under way once it streams: calls made from here on (by the
        # user's loop body between chunks, say) are not this run's, so stop claiming them.
        run = _runs.get(run_id)
        if run is not None and run.call.open and run.handler is self:
            _close(run.call)

    # ------------------------------------------------------------------------ end

    def _take(self, run_id: UUID) -> _Run | None:
        run = _runs.get(run_id)
        if run is None or run.handler is not self:
            return None
        _runs.pop(run_id, None)
        _close(run.call)
        if run.call.inner:  # an SDK call underneath was recorded: that record is this call
            run.p.done = True
            return None
        return run

    def on_llm_end(self, response: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                   **kwargs: Any) -> None:
        error = None
        try:
            run = self._take(run_id)
            if run is not None:
                model, usage = _result(response, run)
                answer = _lc_request.answer_text(response) if run.p.request is not None else None
                error = recorder.finish(run.p, usage, model, answer)
        except Exception as exc:
            recorder.internal_error(exc)
        recorder.raise_budget(error)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None,
                     **kwargs: Any) -> None:
        try:
            run = self._take(run_id)
            if run is None:
                return
            model, usage = _result(kwargs.get("response"), run)
            if usage is None:  # the call failed: nothing to bill
                run.p.done = True
                return
            recorder.finish(run.p, usage, model)  # a stream cut short: what was streamed was paid
        except Exception as exc:
            recorder.internal_error(exc)


# ---------------------------------------------------------------------------- global install

_lock = threading.Lock()
_var: ContextVar[Any] | None = None
_handler: TokenspyCallbackHandler | None = None


def install(tracker: Any = None, default_model: str | None = None) -> TokenspyCallbackHandler:
    """Record every LangChain run from now on, without passing a callback (idempotent).

    Registers a :class:`TokenspyCallbackHandler` with LangChain's configure hook (an
    inheritable handler added to every callback manager). Returns the installed handler; a
    second call returns the same one.
    """
    global _var, _handler
    from langchain_core.tracers.context import register_configure_hook

    with _lock:
        if _handler is not None:
            return _handler
        handler = TokenspyCallbackHandler(tracker, default_model)
        var: ContextVar[Any] = ContextVar("tokenspy_langchain_handler", default=handler)
        register_configure_hook(var, True)
        _var, _handler = var, handler
        return handler


def installed_handler() -> TokenspyCallbackHandler | None:
    """The handler :func:`install` registered, if it is installed."""
    return _handler


def uninstall() -> None:
    """Undo :func:`install` (no-op when not installed)."""
    global _var, _handler
    with _lock:
        if _handler is None:
            return
        _handler.disabled = True  # in case the hook cannot be taken out below
        try:
            from langchain_core.tracers import context as lc_context

            hooks = lc_context._configure_hooks
            for entry in list(hooks):
                if entry[0] is _var:
                    hooks.remove(entry)
        except Exception:  # a LangChain without that (private) list: the handler stays inert
            pass
        _var = _handler = None
