"""The one path of every recorded call: ``begin`` when the request starts, ``finish`` when its
usage is known.

``begin`` captures the attribution (profiled functions, sessions, test, collectors: one read of
the context) and the caller, so a stream consumed elsewhere later is still the caller's.
``finish`` prices the usage, makes one CallRecord and hands it to its tracker (which persists
it), the sessions and collectors of the call, and charges the budgets of the profiled
invocations. Nothing here may break the user's call: see ``internal_error`` and ``warn``.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from tokenspy import context, pricing, sinks, usage_source
from tokenspy.config import config
from tokenspy.errors import BudgetExceededError, PricingMatrixOutdatedWarning, TokenspyWarning, safe_warn
from tokenspy.gitinfo import current_sha
from tokenspy.record import CallRecord, Usage, clean_usage
from tokenspy.tracker import Tracker, get_global_tracker

__all__ = ["BudgetWarning", "Pending", "Usage", "begin", "finish", "internal_error", "raise_budget"]


UNKNOWN_MODEL = "unknown"  # neither the response nor the request named a model


class BudgetWarning(UserWarning):
    """A ``@profile(budget_usd=...)`` invocation spent more than its budget (on_exceeded="warn")."""


class Pending:
    """One call in flight: who made it, when, and what the request asked for."""

    __slots__ = ("done", "injected", "model", "options", "provider", "request", "scope", "sinks", "stream",
                 "t0", "tracker", "ts", "user")

    def __init__(self, provider: str, model: str | None, scope: context.Scope,
                 user: context.UserFrame | None, request: usage_source.Request | None = None) -> None:
        self.provider = provider
        self.model = model  # the model the request named
        self.scope = scope
        self.user = user
        self.request = request  # request mode: what to count (see tokenspy.usage_source)
        self.done = False
        self.injected = False  # the interceptor asked the stream for a usage chunk
        self.stream = False
        self.options: Any = None  # request options the interceptor replaced
        self.tracker: Tracker | None = None  # None: the global tracker
        # what each sink took from the request-time context (the current OTel span): tokenspy.sinks
        self.sinks = sinks.capture() if sinks.active else None
        self.ts = time.time()
        self.t0 = time.perf_counter()

    def again(self) -> Pending:
        """The same call sent again (middleware that resends inside one request): a row of its own."""
        p = Pending(self.provider, self.model, self.scope, self.user, self.request)
        p.injected, p.stream, p.options, p.tracker = self.injected, self.stream, self.options, self.tracker
        return p


def request_mode() -> bool:
    """Whether calls are counted from their requests (interceptors then pass ``request``)."""
    return config.usage == usage_source.REQUEST


def begin(provider: str, model: str | None, depth: int = 2,
          request: usage_source.Request | None = None) -> Pending | None:
    """Start a call; None when an outer layer records it.

    ``depth``: the walk for the caller starts that many frames above ``begin``'s caller's
    caller (2: the caller of the function that called ``begin``). ``request``: in request mode,
    what the call's usage is counted from."""
    s = context.scope.get()
    if s.suppressed:
        return None
    running = context.running_test
    if running is not None and s.current_test is None:
        # a worker thread or a fresh Context() during a test: the process's running test
        s = s._replace(current_test=running[0], collectors=(*s.collectors, *running[1]))
    # Only a call made outside every profiled function needs its caller found on the stack.
    user = None if s.frames else context.user_frame(depth)
    p = Pending(provider, model, s, user, request)  # callers pass one only in request mode
    for call in context.outer_calls.get():
        if call.open:  # an outer layer's call (LangChain): recorded here, skipped there
            call.inner = True
            p.tracker = call.tracker
            if call.user is not None:
                p.user = call.user
    return p


def finish(p: Pending, usage: Usage | tuple[int, ...] | None, model: str | None = None,
           answer: Any = None) -> BaseException | None:
    """Record the call once. Returns the budget error to raise, if a raising budget is now spent.

    ``usage`` and ``model``: what the response reported; ``answer``: the response itself (or
    the text a stream delivered), which request mode counts the output tokens of."""
    if p.done:
        return None
    p.done = True
    duration_ms = (time.perf_counter() - p.t0) * 1000.0
    source, ceiling, priceable = usage_source.RESPONSE, None, True
    if p.request is not None:
        try:
            counted = usage_source.count(p.provider, p.request, answer, p.model)
            # the model the request asked for, never the one a mock's response names
            usage, model, source = counted.usage, counted.model or p.model, counted.source
            ceiling, priceable = counted.max_output_tokens, counted.priceable
        except Exception as exc:  # counted from the response instead, and said once
            internal_error(exc)
    u, changed = clean_usage(usage)
    if changed:  # recorded, clamped, with priced=False: its cost is not known
        warn(f"tokenspy: {p.provider} reported token counts that are not sane ({usage!r}); "
             "recorded as clamped to 0..10**12 with cost 0 and priced=False", TokenspyWarning)
    s = p.scope
    # the model the response names, else the request's; "unknown" only when neither says
    model = s.model_override or model or p.model or UNKNOWN_MODEL
    price = pricing.lookup(model, p.provider) if priceable and not changed else None
    cost, max_cost = 0.0, None
    if price is None:
        if model != UNKNOWN_MODEL and not changed:
            _warn_unpriced(model, p, priceable)
    else:
        cost = price.charge(u, p.ts)
        if ceiling is not None:
            max_cost = price.cost(u.input_tokens, max(ceiling, u.output_tokens), timestamp=p.ts)
        if not (math.isfinite(cost) and (max_cost is None or math.isfinite(max_cost))):
            price, cost, max_cost = None, 0.0, None  # a price table that yields NaN/inf
    name, source_file, line, stack = _attribution(p)
    sessions = s.sessions
    rec = CallRecord(
        name, model, p.provider, u.input_tokens, u.output_tokens, cost, duration_ms, p.ts,
        sessions[-1].id if sessions else None, current_sha() if config.track_git else None, stack,
        u.cached_input_tokens, u.cache_write_tokens, u.reasoning_tokens, price is not None,
        s.current_test.test_id if s.current_test is not None else None, source_file, line, config.run_id,
        s.project, source, ceiling, max_cost,
    )
    (p.tracker or get_global_tracker()).record(rec)
    if sinks.active:
        try:
            sinks.send(rec, p.sinks, p.model)
        except Exception as exc:  # an exporter's bug must not lose the record or break the call
            internal_error(exc)
    for session in sessions:
        session._add(rec)
    error: BaseException | None = None
    for collect in s.collectors:
        try:
            found = collect(rec)
        except Exception as exc:  # a collector's bug must not lose the record or break the call
            internal_error(exc)
            found = None
        if found is not None and error is None:
            error = found
    for f in s.frames:
        f.spent += cost
        if f.budget is not None and f.spent > f.budget and not f.exceeded:
            f.exceeded = True
            if f.on_exceeded == "raise":
                if error is None:
                    error = BudgetExceededError(f.spent, f.budget)
                    error.__dict__["_tokenspy_frame"] = f
            else:
                warn(f"tokenspy: {f.name} spent ${f.spent:.6f}, over its budget of ${f.budget:.6f}",
                     BudgetWarning)
    return error


def _attribution(p: Pending) -> tuple[str, str | None, int | None, list[str]]:
    """(function name, source file, line, call stack) of the call."""
    frames = p.scope.frames
    if frames:  # the innermost profiled function, and the profiled ones around it
        top = frames[-1]
        return top.name, top.source, top.line, [f.name for f in frames]
    user = p.user
    test = p.scope.current_test
    if test is None:
        if user is None:
            return "<unknown>", None, None, ["<unknown>"]
        return user[0], user[1], user[2], [user[0]]
    # the function that made the call, where it is defined (an annotation on a dearer function
    # lands there); the test keeps its own location under its id
    name, source, line = user if user is not None else (test.test_id, test.source_file, test.source_line)
    return name, source, line, [name] if test.phase == "call" else [f"<{test.phase}>", name]


def raise_budget(error: BaseException | None) -> None:
    """Raise a budget error returned by ``finish`` (marking it as delivered to the user)."""
    if error is not None:
        frame = error.__dict__.get("_tokenspy_frame")
        if frame is not None:
            frame.raised = True
        raise error


def warn(message: str, category: type[Warning], stacklevel: int | None = None) -> None:
    """Warn at the user's line of code; never raise out of the user's call, whatever the
    warnings filter (``-W error`` turns a warning into an exception)."""
    try:
        if stacklevel is None:
            stacklevel = _user_stacklevel()
    except Exception:
        stacklevel = 1
    safe_warn(message, category, stacklevel + 1)


def _user_stacklevel() -> int:
    """The stacklevel of ``warn``'s caller's nearest frame outside tokenspy and the SDKs."""
    f = sys._getframe(2)
    level = 1
    while f is not None and context.is_library(f.f_globals.get("__name__") or ""):
        f = f.f_back
        level += 1
    return level if f is not None else 1


_unpriced_warned: set[str] = set()
_WARNED_MAX = 1024  # distinct model names warned about; past it, no more warnings


def _warn_unpriced(model: str, p: Pending, known_name: bool) -> None:
    if model in _unpriced_warned or len(_unpriced_warned) >= _WARNED_MAX:
        return
    _unpriced_warned.add(model)
    fix = ("Add it under [tool.tokenspy.prices] in pyproject.toml." if known_name else
           f'It is an Azure OpenAI deployment: map it to its model under [tool.tokenspy.deployments] '
           f'("{model}" = "gpt-4o") in pyproject.toml.')
    warn(f"tokenspy: no price known for model {model!r} ({p.provider}); its tokens are recorded "
         f"with cost 0 and priced=False. {fix}", PricingMatrixOutdatedWarning)


_internal_warned = False


def internal_error(exc: BaseException) -> None:
    """A bug or surprise inside tokenspy: say so once, never disturb the user's call."""
    global _internal_warned
    if _internal_warned:
        return
    _internal_warned = True
    warn(f"tokenspy: internal error while recording an LLM call ({type(exc).__name__}: {exc}); "
         "the call's result is returned unchanged. Further errors of this kind are not reported.",
         TokenspyWarning)
