"""The hot path shared by every provider: capture attribution at request time, price and record
when the usage is known.

``begin`` runs when the SDK request starts (so attribution is that of the caller, even if a
stream is consumed elsewhere later); ``finish`` runs once when the usage is known. Both are
kept small: they run on every LLM call.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import NamedTuple

from tokenspy import context, pricing
from tokenspy.config import config
from tokenspy.errors import BudgetExceededError, PricingMatrixOutdatedWarning, TokenspyWarning
from tokenspy.record import CallRecord
from tokenspy.tracker import get_global_tracker

_perf = time.perf_counter
_now = time.time


class Usage(NamedTuple):
    """Token counts of one call, with the CallRecord semantics (totals include their parts)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0


_ZERO = Usage()


class BudgetWarning(UserWarning):
    """A ``@profile(budget_usd=...)`` invocation spent more than its budget (on_exceeded="warn")."""


class Pending:
    """One call in flight: who made it, when, and (once known) what it used."""

    __slots__ = (
        "collectors", "done", "frames", "injected", "model", "options", "override", "project", "provider",
        "sessions", "stream", "t0", "test", "tracker", "ts", "user",
    )

    def __init__(self, provider: str, model: str | None) -> None:
        self.provider = provider
        self.model = model
        self.frames = context.frames.get()
        self.sessions = context.sessions.get()
        self.test = context.current_test.get()
        self.collectors = context.collectors.get()
        # captured now: a stream may end (and be recorded) after the caller's context is gone
        self.project = context.project.get()
        self.override = context.model_override.get()  # track_costs(model=...)
        # Walking the stack is only needed when no profiled function names the caller.
        self.user = context.user_frame(3) if not self.frames else None
        self.t0 = _perf()
        self.ts = _now()
        self.done = False
        self.injected = False
        self.stream = False
        self.options = None
        self.tracker = None  # None: the global tracker


def begin(provider: str, model: str | None) -> Pending | None:
    """Start a call; None when recording is suppressed (an outer layer records it)."""
    if context.suppressed.get():
        return None
    p = Pending(provider, model)
    outer = context.outer_calls.get()
    if outer:
        for call in outer:
            if call.open:  # this call is the outer layer's: it records it, the outer one skips
                call.inner = True
                p.tracker = call.tracker
                if call.user is not None:
                    p.user = call.user
    return p


_unpriced_warned: set[str] = set()


def _warn_unpriced(model: str, p: Pending) -> None:
    if model in _unpriced_warned:
        return
    _unpriced_warned.add(model)
    msg = (
        f"tokenspy: no price known for model {model!r} ({p.provider}); its tokens are recorded "
        "with cost 0 and priced=False. Add it under [tool.tokenspy.prices] in pyproject.toml."
    )
    # Point at the line of user code that made (or is reading) the call: the nearest live frame
    # outside tokenspy and the SDKs, with its current line.
    f = sys._getframe(0)  # stacklevel 1
    level = 1
    while f is not None:
        if not context._is_library(f.f_globals.get("__name__") or ""):
            warnings.warn(msg, PricingMatrixOutdatedWarning, stacklevel=level)
            return
        f = f.f_back
        level += 1
    where = p.user or ((p.frames[-1].name, p.frames[-1].source, p.frames[-1].line) if p.frames else None)
    if where and where[1]:
        warnings.warn_explicit(msg, PricingMatrixOutdatedWarning, where[1], where[2] or 0)
    else:
        warnings.warn(msg, PricingMatrixOutdatedWarning, stacklevel=4)


def finish(p: Pending, usage: Usage | None, model: str | None = None) -> BaseException | None:
    """Record the call once. Returns the budget error to raise, if a raising budget is now spent."""
    if p.done:
        return None
    p.done = True
    duration_ms = (_perf() - p.t0) * 1000.0
    u = usage or _ZERO
    if u[2] + u[3] > u[0] or u[4] > u[1]:
        u = _consistent(u)
    # one tuple unpack instead of a dozen namedtuple attribute reads: this runs on every call
    tin, tout, tcached, twrite, treason, twrite1h = u
    model = p.override or model or p.model or "unknown"
    price = pricing.lookup(model, p.provider)
    if price is None:
        cost = 0.0
        priced = False
        _warn_unpriced(model, p)
    else:
        cost = price.cost(tin, tout, tcached, twrite, treason, twrite1h, p.ts)
        priced = True
    frames = p.frames
    test = p.test
    if frames:
        top = frames[-1]
        name, source, line = top.name, top.source, top.line
        stack = [f.name for f in frames]
    else:
        user = p.user
        if user is not None:
            name, source, line = user
        else:
            name, source, line = (test.test_id if test is not None else "<unknown>"), None, None
        if test is not None:
            # per-test data points at the test, whatever helper or fixture made the call
            if test.source_file is not None:
                source, line = test.source_file, test.source_line
            stack = [name] if test.phase == "call" else [f"<{test.phase}>", name]
        else:
            stack = [name]
    sessions = p.sessions
    rec = CallRecord(
        name, model, p.provider, tin, tout, cost, duration_ms, p.ts,
        sessions[-1].name if sessions else None,
        _git_sha() if config.track_git else None,
        stack, tcached, twrite, treason, priced,
        test.test_id if test is not None else None, source, line, config.run_id,
        p.project,
    )
    (p.tracker if p.tracker is not None else get_global_tracker()).record(rec)
    for s in sessions:
        s._add(rec)
    error: BaseException | None = None
    for collect in p.collectors:
        try:
            found = collect(rec)
        except Exception as exc:  # a collector's bug must not lose the record or break the call
            internal_error(exc)
            found = None
        if found is not None and error is None:
            error = found
    for f in frames:
        f.spent += cost
        if f.budget is not None and f.spent > f.budget and not f.exceeded:
            f.exceeded = True
            if f.on_exceeded == "raise":
                if error is None:
                    error = BudgetExceededError(f.spent, f.budget)
                    error.__dict__["_tokenspy_frame"] = f
            else:
                warnings.warn(
                    f"tokenspy: {f.name} spent ${f.spent:.6f}, over its budget of ${f.budget:.6f}",
                    BudgetWarning, stacklevel=3,
                )
    return error


def _consistent(u: Usage) -> Usage:
    """Totals never smaller than their parts (a provider that reports parts outside the total)."""
    return u._replace(
        input_tokens=max(u.input_tokens, u.cached_input_tokens + u.cache_write_tokens),
        output_tokens=max(u.output_tokens, u.reasoning_tokens),
    )


def raise_budget(error: BaseException | None) -> None:
    """Raise a budget error returned by ``finish`` (marking it as delivered to the user)."""
    if error is not None:
        frame = error.__dict__.get("_tokenspy_frame")
        if frame is not None:
            frame.raised = True
        raise error


def _git_sha() -> str | None:
    from tokenspy.gitinfo import current_sha

    return current_sha()


_internal_warned = False


def internal_error(exc: BaseException) -> None:
    """A bug or surprise inside tokenspy: say so once, never disturb the user's call."""
    global _internal_warned
    if _internal_warned:
        return
    _internal_warned = True
    warnings.warn(
        f"tokenspy: internal error while recording an LLM call ({type(exc).__name__}: {exc}); "
        "the call's result is returned unchanged. Further errors of this kind are not reported.",
        TokenspyWarning,
        stacklevel=3,
    )
