"""``track_costs``: llm-toll's decorator, on tokenspy's recording core.

Each invocation of a decorated function is admitted (budget, then rate limits) before its body
runs, then pushes a collector on ``context.collectors`` while its body runs. The SDK interceptors
capture that collector when a request starts and call it once the call's usage is known (for a
stream: when it ends or is closed, possibly after the function returned), with the call's
CallRecord, already priced and recorded by the core. The collector logs the call to the store,
adds its cost to the project's windows in one ``BEGIN IMMEDIATE`` transaction and returns a
``BudgetExceededError`` when the budget is now exceeded, which the interceptor raises right
after that call (at the end of the stream for streams).

Nested decorated invocations share one collector (a chain), so a call is logged and counted
once per project, however deep the nesting.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import numbers
import os
import threading
import types
from collections.abc import Callable
from typing import Any, TypeVar, overload

from tokenspy import context, recorder
from tokenspy.context import Frame
from tokenspy.errors import BudgetExceededError
from tokenspy.record import CallRecord
from tokenspy.recorder import Usage
from tokenspy.toll.limits import limiter
from tokenspy.toll.reporter import CostReporter
from tokenspy.toll.sqlite import SQLiteStore
from tokenspy.toll.windows import check_reset

F = TypeVar("F", bound=Callable[..., Any])

# ----------------------------------------------------------------------------- store, reporter

_state_lock = threading.Lock()
_store: SQLiteStore | None = None
_default_store: SQLiteStore | None = None
_reporter: CostReporter | None = None
_default_reporter = CostReporter()


def set_store(store: SQLiteStore | None) -> None:
    """Use ``store`` for every later track_costs call; ``None`` goes back to the default
    ``SQLiteStore()`` (``~/.tokenspy/usage.db``)."""
    global _store
    if store is not None and not isinstance(store, SQLiteStore):
        raise TypeError(f"set_store() takes a SQLiteStore or None, not {type(store).__name__}")
    with _state_lock:
        old, _store = _store, store
    if old is not None and old is not store:
        old.flush()


def get_store() -> SQLiteStore:
    """The store track_costs uses now."""
    global _default_store
    store = _store
    if store is not None:
        return store
    with _state_lock:
        if _default_store is None:
            _default_store = SQLiteStore()
        return _default_store


def set_reporter(reporter: CostReporter | None) -> None:
    """Use ``reporter`` for the per-call lines; ``None`` goes back to the default
    (``CostReporter()``: enabled, to ``sys.stderr``)."""
    global _reporter
    if reporter is not None and not isinstance(reporter, CostReporter):
        raise TypeError(f"set_reporter() takes a CostReporter or None, not {type(reporter).__name__}")
    _reporter = reporter


def get_reporter() -> CostReporter:
    r = _reporter
    return r if r is not None else _default_reporter


# ----------------------------------------------------------------------------- invocations


class _Config:
    """What one decoration asked for."""

    __slots__ = ("budget", "extract", "line", "model", "name", "period", "project", "rpm", "source", "tpm")

    def __init__(self, name: str, source: str | None, line: int | None, project: str, model: str | None,
                 budget: float | None, period: str, rpm: int | None, tpm: int | None,
                 extract: Callable[[Any], Any] | None) -> None:
        self.name = name
        self.source = source
        self.line = line
        self.project = project
        self.model = model
        self.budget = budget
        self.period = period
        self.rpm = rpm
        self.tpm = tpm
        self.extract = extract


class _Invocation:
    """One running invocation: its config, attribution frame and the calls it saw."""

    __slots__ = ("calls", "cfg", "frame")

    def __init__(self, cfg: _Config) -> None:
        self.cfg = cfg
        self.frame = Frame(cfg.name, cfg.source, cfg.line, None, "warn")
        self.calls = 0


_count_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _count_lock, _state_lock
    _count_lock = threading.Lock()
    _state_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Chain:
    """The collector of the track_costs invocations enclosing a call (outermost first)."""

    __slots__ = ("invs",)

    def __init__(self, invs: tuple[_Invocation, ...]) -> None:
        self.invs = invs

    def __call__(self, rec: CallRecord) -> BaseException | None:
        return _account(self.invs, rec)


def _account(invs: tuple[_Invocation, ...], rec: CallRecord) -> BaseException | None:
    """One call made under ``invs``: count it, store it, check the budgets (post-call)."""
    tokens = rec.input_tokens + rec.output_tokens
    reserved: dict[str, bool] = {}
    with _count_lock:
        for inv in invs:
            project = inv.cfg.project
            reserved[project] = reserved.get(project, False) or inv.calls == 0
            inv.calls += 1
    for project, used in reserved.items():
        limiter.record(project, tokens, used)
    store = get_store()
    store.log(rec)
    spends = {
        project: store.add_spend(project, rec.cost_usd, tokens, at=rec.timestamp) for project in reserved
    }
    inner = invs[-1].cfg
    try:
        get_reporter().report(rec, spends[inner.project][inner.period], inner.budget)
    except Exception as exc:  # a closed stream must not cost the budget check
        recorder.internal_error(exc)
    for inv in reversed(invs):
        cfg = inv.cfg
        if cfg.budget is not None:
            spent = spends[cfg.project][cfg.period].spent_usd
            if spent > cfg.budget:
                return BudgetExceededError(spent, cfg.budget, cfg.project)
    return None


_frames = context.frames
_collectors = context.collectors
_project = context.project
_override = context.model_override

_Tokens = tuple[Any, Any, Any, Any]


def _enter(inv: _Invocation) -> _Tokens:
    """Put ``inv`` on the context: attribution frame, collector chain, project, model."""
    current = _collectors.get()
    chain = None
    rest = []
    for c in current:
        if type(c) is _Chain:
            chain = c
        else:
            rest.append(c)
    invs = (*chain.invs, inv) if chain is not None else (inv,)
    cfg = inv.cfg
    return (
        _frames.set((*_frames.get(), inv.frame)),
        _collectors.set((*rest, _Chain(invs))),
        _project.set(cfg.project),
        _override.set(cfg.model) if cfg.model is not None else None,
    )


def _exit(tokens: _Tokens) -> None:
    if tokens[3] is not None:
        _override.reset(tokens[3])
    _project.reset(tokens[2])
    _collectors.reset(tokens[1])
    _frames.reset(tokens[0])


def _admit(cfg: _Config) -> None:
    """Pre-call checks: the budget (nothing is sent once it is spent), then the rate limits."""
    if cfg.budget is not None:
        spend = get_store().window(cfg.project, None if cfg.period == "all" else cfg.period)
        if spend.spent_usd >= cfg.budget:
            raise BudgetExceededError(spend.spent_usd, cfg.budget, cfg.project)
    limiter.admit(cfg.project, cfg.rpm, cfg.tpm)


async def _aadmit(cfg: _Config) -> None:
    if cfg.budget is not None:
        store = get_store()
        reset = None if cfg.period == "all" else cfg.period
        if store.is_open():
            # a read in WAL mode never waits for writers: ~7 us inline, vs ~100 us via a thread
            spend = store.window(cfg.project, reset)
        else:
            # opening may create and migrate the DB, waiting for other processes: off the loop
            spend = await asyncio.to_thread(store.window, cfg.project, reset)
        if spend.spent_usd >= cfg.budget:
            raise BudgetExceededError(spend.spent_usd, cfg.budget, cfg.project)
    limiter.admit(cfg.project, cfg.rpm, cfg.tpm)


# ----------------------------------------------------------------------------- extract_usage

_SDK_PACKAGES = ("openai", "anthropic", "google")


def _guess_provider(model: str) -> str:
    m = model.lower().removeprefix("models/")
    head, sep, _ = m.partition("/")
    if sep and head in ("openai", "anthropic", "google", "mistral", "groq", "deepseek"):
        return head
    if m.startswith(("gpt-", "o1", "o3", "o4", "chatgpt", "text-embedding", "davinci", "babbage")):
        return "openai"
    if m.startswith("claude"):
        return "anthropic"
    if m.startswith(("gemini", "gemma")):
        return "google"
    return "unknown"


def _validate_usage(cfg: _Config, got: Any) -> tuple[str, int, int]:
    def fail(kind: type[Exception], why: str) -> Exception:
        return kind(
            f"track_costs: extract_usage of {cfg.name}() must return (model: str, input_tokens: int >= 0, "
            f"output_tokens: int >= 0); {why}: {got!r}"
        )

    if not isinstance(got, tuple) or len(got) != 3:
        raise fail(TypeError, "got")
    model, inp, out = got
    if not isinstance(model, str):
        raise fail(TypeError, "the model is not a str")
    if not model.strip():
        raise fail(ValueError, "the model is empty")
    counts = []
    for what, value in (("input_tokens", inp), ("output_tokens", out)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise fail(TypeError, f"{what} is not an int")
        if value < 0:
            raise fail(ValueError, f"{what} is negative")
        counts.append(int(value))
    return model, counts[0], counts[1]


def _extract(inv: _Invocation, value: Any) -> None:
    """No call was seen: ask the user's extractor, validate, record through the core."""
    cfg = inv.cfg
    model, inp, out = _validate_usage(cfg, cfg.extract(value))  # type: ignore[misc]
    tokens = _enter(inv)
    try:
        p = recorder.begin(_guess_provider(model), model)
        error = recorder.finish(p, Usage(inp, out), model) if p is not None else None
    finally:
        _exit(tokens)
    recorder.raise_budget(error)


# ----------------------------------------------------------------------------- return values

_MISSING = object()


def _is_sdk_object(value: Any) -> bool:
    return type(value).__module__.partition(".")[0] in _SDK_PACKAGES


def _bind_deferred(inv: _Invocation, obj: Any) -> None:
    """SDK stream managers (``messages.stream()``, ``chat.completions.stream()``...) send their
    request on ``__enter__``/``__aenter__``, after the function returned: make that request run
    in the invocation's context, so that it is counted. The object itself is left as it is."""
    try:
        attrs = vars(obj)
    except TypeError:
        return
    for key, value in list(attrs.items()):
        if not key.endswith("__api_request"):
            continue
        if inspect.isawaitable(value):
            attrs[key] = _await_in(inv, value)
        elif callable(value):
            attrs[key] = _call_in(inv, value)


def _call_in(inv: _Invocation, request: Callable[[], Any]) -> Callable[[], Any]:
    def api_request() -> Any:
        tokens = _enter(inv)
        try:
            return request()
        finally:
            _exit(tokens)

    return api_request


async def _await_in(inv: _Invocation, awaitable: Any) -> Any:
    tokens = _enter(inv)
    try:
        value = await awaitable
    finally:
        _exit(tokens)
    return _after(inv, value)


def _after(inv: _Invocation, result: Any) -> Any:
    """What the decorated function returned: passed on as it is, except plain generators and
    coroutines, which are passed on as a generator or coroutine of the same kind that runs
    the original inside the invocation (so that the calls they make are counted)."""
    if isinstance(result, types.GeneratorType):
        return _drive(inv, result)
    if isinstance(result, types.AsyncGeneratorType):
        return _adrive(inv, result)
    if isinstance(result, types.CoroutineType):
        return _await_in(inv, result)
    if _is_sdk_object(result):  # streams, stream managers, responses: the interceptor records them
        _bind_deferred(inv, result)
        return result
    if inv.calls == 0 and inv.cfg.extract is not None:
        _extract(inv, result)
    return result


def _drive(inv: _Invocation, gen: Any) -> Any:
    """Run a generator step by step inside the invocation; same items, send/throw/close."""
    method = gen.send
    arg: Any = None
    last: Any = _MISSING
    while True:
        tokens = _enter(inv)
        try:
            item = method(arg)
        except StopIteration as stop:
            value = stop.value
            break
        finally:
            _exit(tokens)
        last = item
        try:
            arg = yield item
            method = gen.send
        except GeneratorExit:
            tokens = _enter(inv)
            try:
                gen.close()
            finally:
                _exit(tokens)
            raise
        except BaseException as exc:
            method = gen.throw
            arg = exc
    if inv.calls == 0 and inv.cfg.extract is not None and last is not _MISSING:
        _extract(inv, last)
    return value


async def _astep(inv: _Invocation, method: Callable[[Any], Any], arg: Any) -> Any:
    tokens = _enter(inv)
    try:
        return await method(arg)
    finally:
        _exit(tokens)


async def _adrive(inv: _Invocation, gen: Any) -> Any:
    """The async counterpart of ``_drive``."""
    method = gen.asend
    arg: Any = None
    last: Any = _MISSING
    while True:
        try:
            item = await _astep(inv, method, arg)
        except StopAsyncIteration:
            break
        last = item
        try:
            arg = yield item
            method = gen.asend
        except GeneratorExit:
            await _astep(inv, lambda _: gen.aclose(), None)
            raise
        except BaseException as exc:
            method = gen.athrow
            arg = exc
    if inv.calls == 0 and inv.cfg.extract is not None and last is not _MISSING:
        _extract(inv, last)


# ----------------------------------------------------------------------------- the decorator


def _wrap(fn: Callable[..., Any], cfg: _Config) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
            await _aadmit(cfg)
            inv = _Invocation(cfg)
            gen = fn(*args, **kwargs)
            method = gen.asend
            arg: Any = None
            last: Any = _MISSING
            while True:
                try:
                    item = await _astep(inv, method, arg)
                except StopAsyncIteration:
                    break
                last = item
                try:
                    arg = yield item
                    method = gen.asend
                except GeneratorExit:
                    await _astep(inv, lambda _: gen.aclose(), None)
                    raise
                except BaseException as exc:
                    method = gen.athrow
                    arg = exc
            if inv.calls == 0 and cfg.extract is not None and last is not _MISSING:
                _extract(inv, last)

        return agen_wrapper

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            _admit(cfg)
            return (yield from _drive(_Invocation(cfg), fn(*args, **kwargs)))

        return gen_wrapper

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            await _aadmit(cfg)
            inv = _Invocation(cfg)
            tokens = _enter(inv)
            try:
                result = await fn(*args, **kwargs)
            finally:
                _exit(tokens)
            return _after(inv, result)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _admit(cfg)
        inv = _Invocation(cfg)
        tokens = _enter(inv)
        try:
            result = fn(*args, **kwargs)
        finally:
            _exit(tokens)
        return _after(inv, result)

    return wrapper


def _positive_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"track_costs: {name} must be an int (per minute) or None, not {value!r}")
    if value < 1:
        raise ValueError(f"track_costs: {name} must be at least 1, not {value!r}")
    return int(value)


def _config(fn: Callable[..., Any], project: Any, model: Any, max_budget: Any, reset: Any,
            rate_limit: Any, tpm_limit: Any, extract_usage: Any) -> _Config:
    if not isinstance(project, str):
        raise TypeError(f"track_costs: project must be a str, not {project!r}")
    if not project:
        raise ValueError("track_costs: project must not be empty")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise TypeError(f"track_costs: model must be a non-empty str or None, not {model!r}")
    budget: float | None = None
    if max_budget is not None:
        if isinstance(max_budget, bool) or not isinstance(max_budget, numbers.Real):
            raise TypeError(f"track_costs: max_budget must be a number of USD or None, not {max_budget!r}")
        budget = float(max_budget)
        if not math.isfinite(budget) or budget < 0:
            raise ValueError(f"track_costs: max_budget must be a finite number >= 0, not {max_budget!r}")
    try:
        period = check_reset(reset)
    except ValueError as exc:
        raise ValueError(f"track_costs: {exc}") from None
    if extract_usage is not None and not callable(extract_usage):
        raise TypeError(f"track_costs: extract_usage must be callable or None, not {extract_usage!r}")
    from tokenspy.profile import _source_of

    name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
    source, line = _source_of(fn)
    return _Config(name, source, line, project, model, budget, period,
                   _positive_int("rate_limit", rate_limit), _positive_int("tpm_limit", tpm_limit),
                   extract_usage)


@overload
def track_costs(fn: F) -> F: ...
@overload
def track_costs(
    *, project: str = "default", model: str | None = None, max_budget: float | None = None,
    reset: str | None = None, rate_limit: int | None = None, tpm_limit: int | None = None,
    extract_usage: Callable[[Any], tuple[str, int, int]] | None = None,
) -> Callable[[F], F]: ...


def track_costs(
    fn: F | None = None,
    *,
    project: str = "default",
    model: str | None = None,
    max_budget: float | None = None,
    reset: str | None = None,
    rate_limit: int | None = None,
    tpm_limit: int | None = None,
    extract_usage: Callable[[Any], tuple[str, int, int]] | None = None,
) -> F | Callable[[F], F]:
    """Track the cost of every LLM call made inside the decorated function, per ``project``,
    enforce a budget in USD (``max_budget``, optionally per ``reset`` window: "daily", "weekly",
    "monthly", calendar UTC) and local rate limits (``rate_limit`` requests and ``tpm_limit``
    tokens per minute). Works on functions, coroutines, generators and async generators, and
    on functions returning streams; returns what the function returns.
    """
    from tokenspy.interceptor import ensure_active

    def decorate(f: F) -> F:
        if not callable(f):
            raise TypeError(f"track_costs decorates a function, not {f!r} (pass options by keyword)")
        cfg = _config(f, project, model, max_budget, reset, rate_limit, tpm_limit, extract_usage)
        ensure_active()
        return _wrap(f, cfg)  # type: ignore[return-value]

    if fn is not None:
        return decorate(fn)
    return decorate
