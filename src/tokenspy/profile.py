"""``@tokenspy.profile``: attribute every LLM call made inside a function to it."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any, Literal, TypeVar, overload

from tokenspy import context
from tokenspy.context import Frame
from tokenspy.errors import BudgetExceededError

F = TypeVar("F", bound=Callable[..., Any])
OnExceeded = Literal["warn", "raise"]


def _source_of(fn: Callable[..., Any]) -> tuple[str | None, int | None]:
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None:
        return None, None
    from tokenspy.gitinfo import repo_relative

    return repo_relative(os.path.abspath(code.co_filename)), code.co_firstlineno


def _check(frame: Frame) -> None:
    """At the end of an invocation, raise if a raising budget was spent but not yet raised."""
    over = frame.budget is not None and frame.spent > frame.budget
    if over and frame.on_exceeded == "raise" and not frame.raised:
        frame.raised = True
        raise BudgetExceededError(frame.spent, frame.budget)


def _wrap(fn: Callable[..., Any], budget: float | None, on_exceeded: OnExceeded) -> Callable[..., Any]:
    from tokenspy.interceptor import ensure_active

    ensure_active()
    name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
    source, line = _source_of(fn)
    frames = context.frames

    def new_frame() -> Frame:
        return Frame(name, source, line, budget, on_exceeded)

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
            frame = new_frame()
            gen = fn(*args, **kwargs)
            sent: Any = None
            while True:
                # The frame is on the stack only while the generator body runs, never while the
                # consumer handles a yielded value.
                token = frames.set((*frames.get(), frame))
                try:
                    item = await gen.asend(sent)
                except StopAsyncIteration:
                    break
                finally:
                    frames.reset(token)
                try:
                    sent = yield item
                except GeneratorExit:
                    await gen.aclose()
                    raise
                except BaseException as exc:
                    token = frames.set((*frames.get(), frame))
                    try:
                        item = await gen.athrow(exc)
                    except StopAsyncIteration:
                        break
                    finally:
                        frames.reset(token)
                    sent = yield item
            _check(frame)

        return agen_wrapper

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            frame = new_frame()
            gen = fn(*args, **kwargs)
            method = gen.send
            arg: Any = None
            while True:
                token = frames.set((*frames.get(), frame))
                try:
                    item = method(arg)
                except StopIteration as stop:
                    frames.reset(token)
                    _check(frame)
                    return stop.value
                except BaseException:
                    frames.reset(token)
                    raise
                frames.reset(token)
                try:
                    arg = yield item
                    method = gen.send
                except GeneratorExit:
                    gen.close()
                    raise
                except BaseException as exc:
                    method = gen.throw
                    arg = exc

        return gen_wrapper

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            frame = new_frame()
            token = frames.set((*frames.get(), frame))
            try:
                result = await fn(*args, **kwargs)
            finally:
                frames.reset(token)
            _check(frame)
            return result

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        frame = new_frame()
        token = frames.set((*frames.get(), frame))
        try:
            result = fn(*args, **kwargs)
        finally:
            frames.reset(token)
        _check(frame)
        return result

    return wrapper


@overload
def profile(fn: F) -> F: ...
@overload
def profile(*, budget_usd: float | None = None, on_exceeded: OnExceeded = "warn") -> Callable[[F], F]: ...


def profile(
    fn: F | None = None, *, budget_usd: float | None = None, on_exceeded: OnExceeded = "warn"
) -> F | Callable[[F], F]:
    """Attribute all LLM calls made inside the decorated function (sync, async, generator or
    async generator) to it; optionally enforce a per-invocation budget in USD."""
    if on_exceeded not in ("warn", "raise"):
        raise ValueError(f"on_exceeded must be 'warn' or 'raise', not {on_exceeded!r}")
    if budget_usd is not None and (not isinstance(budget_usd, (int, float)) or budget_usd < 0):
        raise ValueError(f"budget_usd must be a non-negative number, not {budget_usd!r}")
    if fn is not None:
        return _wrap(fn, budget_usd, on_exceeded)  # type: ignore[return-value]

    def decorator(f: F) -> F:
        return _wrap(f, budget_usd, on_exceeded)  # type: ignore[return-value]

    return decorator
