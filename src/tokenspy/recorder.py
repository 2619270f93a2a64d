"""The hot path shared by every provider: capture attribution at request time, price and record
when the usage is known.

``begin`` runs when the SDK request starts (so attribution is that of the caller, even if a
stream is consumed elsewhere later); ``finish`` runs once when the usage is known. Both are
kept small: they run on every LLM call.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
import time
import warnings
from typing import Any, NamedTuple

from tokenspy import context, pricing
from tokenspy import record as _rows
from tokenspy import tracker as _tracker_module
from tokenspy.config import config
from tokenspy.config import on_change as _config_hooks
from tokenspy.errors import BudgetExceededError, PricingMatrixOutdatedWarning, TokenspyWarning
from tokenspy.record import _stack_json as _stack_cache
from tokenspy.record import from_row as _from_row
from tokenspy.record import stack_json as _stack_json
from tokenspy.tracker import Tracker as _Tracker
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
        "done", "injected", "model", "options", "provider", "scope", "stream", "t0", "t1", "tracker",
        "user",
    )

    def __init__(self, provider: str, model: str | None, scope: context.Scope | None = None) -> None:
        self.provider = provider
        self.model = model
        # captured now, in one read: a stream may end (and be recorded) after the caller's
        # context is gone
        self.scope = s = _scope_get() if scope is None else scope
        # Walking the stack is only needed when no profiled function names the caller.
        self.user = context.user_frame(3) if not s[0] else None
        self.t0 = _perf()
        self.done = False
        self.injected = False
        self.stream = False
        self.options = None
        self.tracker = None  # None: the global tracker

    # the attribution captured at the start of the call
    @property
    def frames(self) -> tuple[context.Frame, ...]:
        return self.scope.frames

    @property
    def sessions(self) -> tuple[Any, ...]:
        return self.scope.sessions

    @property
    def test(self) -> context.TestContext | None:
        return self.scope.current_test

    @property
    def collectors(self) -> tuple[Any, ...]:
        return self.scope.collectors

    @property
    def project(self) -> str | None:
        return self.scope.project

    @property
    def override(self) -> str | None:
        return self.scope.model_override  # track_costs(model=...)


_scope_get = context.scope.get
_DEFAULT_SCOPE = context._DEFAULT
_outer_get = context.outer_calls.get


_new_pending = object.__new__
_getframe = sys._getframe
_code_cache = context._code_cache
_library_files = context._library_files
_code_entry = context._code_entry
_c_walk = context.c_walk
_c_book_plain = getattr(context.speedups, "book_plain", None)
_WALK_MISS = context.WALK_MISS


def begin(provider: str, model: str | None, depth: int = 2) -> Pending | None:
    """Start a call; None when recording is suppressed (an outer layer records it).

    ``depth``: the stack walk for the caller starts that many frames up (2: begin's caller); a
    caller that knows the frames above it are tokenspy's passes more, so they are not walked."""
    s = _scope_get()
    if s[6]:  # suppressed
        return None
    # Pending.__init__ inlined: one Python frame fewer on every call
    p = _new_pending(Pending)
    p.provider = provider
    p.model = model
    p.scope = s  # captured now: a stream may end (and be recorded) after the context is gone
    # Walking the stack is only needed when no profiled function names the caller.
    # context.user_frame(depth) inlined: one Python call fewer on every call
    user = None
    # the C walk when built (no frame objects made); the Python one on its misses, which fill
    # the caches it reads
    if not s[0] and (_c_walk is None or (user := _c_walk(depth - 1, _library_files, _code_cache)) is _WALK_MISS):
        user = None
        try:
            f = _getframe(depth - 1)  # depth counts from inside user_frame, one frame deeper
        except ValueError:
            f = None
        cache = _code_cache
        library = _library_files
        while f is not None:
            code = f.f_code
            if code.co_filename in library:  # the SDK's own frames: one set lookup each
                f = f.f_back
                continue
            entry = cache.get(id(code))
            if entry is None or entry[0] is not code:
                entry = cache[id(code)] = _code_entry(f, code)
            user = entry[1]
            if user is not None:
                break
            f = f.f_back
    p.user = user
    p.t0 = _perf()  # the wall-clock time is derived from it when the call is booked (_book)
    p.done = p.injected = p.stream = False
    p.options = p.tracker = None
    outer = _outer_get()
    if outer:
        for call in outer:
            if call.open:  # this call is the outer layer's: it records it, the outer one skips
                call.inner = True
                p.tracker = call.tracker
                if call.user is not None:
                    p.user = call.user
    return p


def started(provider: str, model: str | None, scope: context.Scope, user: context.UserFrame | None,
            t0: float) -> Pending:
    """The Pending ``begin`` would have made for a call started at ``t0`` (for a caller that did
    begin's work itself: interceptor.openai_plain)."""
    p = _new_pending(Pending)
    p.provider = provider
    p.model = model
    p.scope = scope
    p.user = user
    p.t0 = t0
    p.done = p.injected = p.stream = False
    p.options = p.tracker = None
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
    frames = p.scope[0]
    where = p.user or ((frames[-1].name, frames[-1].source, frames[-1].line) if frames else None)
    if where and where[1]:
        warnings.warn_explicit(msg, PricingMatrixOutdatedWarning, where[1], where[2] or 0)
    else:
        warnings.warn(msg, PricingMatrixOutdatedWarning, stacklevel=4)


_last_price: tuple[Any, ...] = (None, None, None, None, None)
_UNKNOWN_STACK = _stack_json(("<unknown>",))
_UNKNOWN_USER = ("<unknown>", None, None, _UNKNOWN_STACK)

# The (model, provider) whose calls ``finish`` may leave to ``settle``: one booked before with
# a known price while the global tracker is a plain Tracker. A call of any other model is booked
# at once, so that its price lookup (and an unknown model's warning) happens in the caller's
# context. Reset whenever the prices or the global tracker change.
_defer_model: str | None = None
_defer_provider: str | None = None
_pending = _rows.pending
_wall_offset = _now() - _perf()  # time.time() - time.perf_counter(), see _book
# Where the C request (tokenspy._speedups.PlainRequest) books a plain call at once instead of
# deferring it, when nothing is deferred before it: see _publish. None: it defers.
_c_book: tuple[Any, ...] | None = None
_settle_lock = threading.RLock()
SETTLE_AT = 256  # deferred calls that make ``finish`` book the batch itself


def finish(p: Pending, usage: Usage | None, model: str | None = None) -> BaseException | None:
    """Record the call once. Returns the budget error to raise, if a raising budget is now spent.

    A plain call is only noted here and booked by ``settle`` with the next batch (see
    tokenspy.record): nothing it would have decided now can depend on it."""
    if p.done:
        return None
    p.done = True
    p.t1 = t1 = _perf()
    s = p.scope
    provider = p.provider
    if model == _defer_model and provider is _defer_provider and p.tracker is None and not s[7] \
            and usage is not None:
        # A tuple of strings, numbers and tuples of them (None for the default scope), which
        # the garbage collector soon stops tracking, rather than the Pending: a call waits here
        # across several collections, and tracked objects that do are promoted to the oldest
        # generation, whose growth is what triggers full collections of the app.
        _pending.append((usage, None if s is _DEFAULT_SCOPE else s, p.user, p.t0, t1, model, provider, p.model))
        if len(_pending) >= SETTLE_AT:
            settle()
        return None
    return _book_now(p, usage, model)


def _book_now(p: Pending, usage: Usage | None, model: str | None) -> BaseException | None:
    with _settle_lock:
        if _pending:
            _settle()  # the calls before this one first: records stay in call order
        global _wall_offset
        _wall_offset = _now() - _perf()
        return _book(p, usage, model, p.t1)


def settle() -> None:
    """Book every deferred call, oldest first (readers call this through record.settle)."""
    with _settle_lock:
        _settle()


def _settle() -> None:
    """Book the deferred calls (holding _settle_lock). Most are booked by the loop below, which
    is ``_book`` for what every deferred call shares (the global Tracker, the model priced last,
    an untiered price, no git tag); any other goes through ``_book`` itself."""
    global _wall_offset, _c_book
    _c_book = None  # while this runs, calls go to pending, after the ones it books
    off = _wall_offset = _now() - _perf()
    pop = _pending.popleft
    tracker = _tracker_module._global
    last = _last_price
    price = last[4]
    fast = (type(tracker) is _Tracker and price is not None and price._flat is not None
            and last[1] is pricing.lookup and last[0] == pricing.generation and not config.track_git)
    if fast:
        add = tracker._records.append  # type: ignore[union-attr]
        store = tracker._store  # type: ignore[union-attr]
        queue = store._queue.append if store is not None else None
        v0, v1, v2, _, v4, v5, v6 = price._flat[:7]
        model, provider, run_id = last[2], last[3], config.run_id
    book_plain = _c_book_plain if fast else None
    while _pending:
        if book_plain is not None:
            # the loop below for its common entry, in C; it stops where the loop is needed
            try:
                book_plain(_pending, pop, tracker._records, queue, model, provider, run_id,  # type: ignore[union-attr]
                           price._flat, off, _UNKNOWN_USER)
            except Exception as exc:
                internal_error(exc)
                book_plain = None
            if not _pending:
                break
        try:
            entry = pop()
        except IndexError:  # another thread took the last one
            break
        try:
            usage, s, user, t0, t1, rmodel, rprovider, _ = entry
            if s is None:
                s = _DEFAULT_SCOPE
            if not fast or s[0] or s[2] is not None or s[5] or rmodel != model or rprovider != provider:
                _book_entry(entry)
                continue
            tin, tout, tcached, twrite, treason, twrite1h = usage
            if twrite1h or tcached + twrite > tin or treason > tout or tcached < 0 or twrite < 0 \
                    or treason < 0:
                _book_entry(entry)
                continue
            name, source, line, stack = user if user is not None else _UNKNOWN_USER
            sessions = s[1]
            project = s[4]
            row = (
                name, model, provider, tin, tout,
                ((tin - tcached - twrite) * v0 + tcached * v1 + twrite * v2 + (tout - treason) * v4
                 + treason * v5) / 1e6 + v6,
                (t1 - t0) * 1000.0, t0 + off, sessions[-1]._row_id if sessions else 0, 0,
                stack, tcached, twrite, treason, 1, 0, source, line, run_id,
                0 if project is None else project,
            )
            add(row)
            if queue is not None:
                queue(row)
            for x in sessions:
                x._add(row)
        except Exception as exc:  # never lose the rest of the batch to one bad call
            internal_error(exc)
    if fast and store is not None:
        if store._thread is None:
            store._start()
        elif len(store._queue) >= store.wake_at:
            store._wake.set()
    if fast and not _pending:
        _publish(tracker, store, model, provider, run_id, price._flat)


def _publish(tracker: _Tracker, store: Any, model: str, provider: str, run_id: str, flat: tuple[Any, ...]) -> None:
    """Let the C request book a plain call at once, as the loop of ``_settle`` books a deferred
    one (``_c_book``; the same row, made by the same C code as book_plain's). A deferred call
    leaves an entry (two tuples, two floats) that lives until the batch reads it back and frees
    it; booked at once into a Rows, it leaves nothing but the row's values, so a plain call
    keeps no object of its own alive (what mattered, measured through the SDK: see _speedups.Rows). Calls
    booked in Python stay deferred.

    What ``_settle`` checked (the global tracker, the model and price, no git tag) holds until
    the deferral is forgotten (``_forget_deferral``) or the tracker's rows or store change
    (``record.targets_changed``); both unpublish. The C request books at once only when
    nothing is pending, so calls stay in order."""
    global _c_book
    if _c_book_plain is None or len(flat) < 7 or any(type(x) is not float for x in flat[:7]):
        return
    queue = store._queue if store is not None else None
    _c_book = (
        tracker._records, queue, queue.append if queue is not None else None,
        store.wake_at if store is not None else 0, store._wake.set if store is not None else None,
        model, provider, run_id, struct.pack("7d", *flat[:7]), _UNKNOWN_USER,
    )


def _unpublish() -> None:
    global _c_book
    _c_book = None


def _book_entry(entry: tuple[Any, ...]) -> None:
    """``_book`` a deferred call (an entry of record.pending, see finish)."""
    usage, s, user, t0, t1, model, provider, requested = entry
    p = _new_pending(Pending)
    p.provider = provider
    p.model = requested
    p.scope = _DEFAULT_SCOPE if s is None else s
    p.user = user
    p.t0 = t0
    p.tracker = None  # deferred calls are the global tracker's
    _book(p, usage, model, t1)


def _forget_deferral() -> None:
    """Book what is deferred and defer nothing until a call is booked again (prices or the
    global tracker are about to change)."""
    global _defer_model, _defer_provider, _c_book
    settle()
    _defer_model = _defer_provider = None
    _c_book = None


def _book(p: Pending, usage: Usage | None, model: str | None, t1: float) -> BaseException | None:
    """Make the call's row, price it, give it to its tracker, store, sessions and collectors,
    charge the profiled invocations' budgets. Returns the budget error to raise, if any."""
    global _defer_model, _defer_provider
    t0 = p.t0
    duration_ms = (t1 - t0) * 1000.0
    # time.time() of the start, from the perf_counter reading taken then: one clock read fewer
    # per call. The two clocks run at the same (NTP-disciplined) rate; their offset is read
    # again for every batch, so only a step of the wall clock between a call and its booking
    # (a second at most while the writer runs) would shift it.
    ts = t0 + _wall_offset
    response_model = model
    # one tuple unpack instead of a dozen namedtuple attribute reads
    tin, tout, tcached, twrite, treason, twrite1h = usage or _ZERO
    if tcached + twrite > tin or treason > tout:
        tin, tout, tcached, twrite, treason, twrite1h = _consistent(usage)  # type: ignore[arg-type]
    frames, sessions, test, collectors, project, override, _, _ = p.scope
    model = override or model or p.model or "unknown"
    # the last lookup again (a process mostly calls one model): no key tuple, no dict lookup
    global _last_price
    last = _last_price
    lookup = pricing.lookup
    if last[2] == model and last[3] == p.provider and last[1] is lookup and last[0] == pricing.generation:
        price = last[4]
    else:
        generation = pricing.generation
        price = lookup(model, p.provider)
        if pricing.generation != generation:
            # the first lookup loaded [tool.tokenspy.prices]: tagged with the generation before,
            # this price would never match again, and every deferred call would take the slow way
            generation = pricing.generation
            price = lookup(model, p.provider)
        _last_price = (generation, lookup, model, p.provider, price)
    if price is None:
        cost = 0.0
        priced = 0
        _warn_unpriced(model, p)
    else:
        vec = price._flat
        if vec is not None and not twrite1h and tcached >= 0 and twrite >= 0 and treason >= 0:
            # ModelPrice.cost inlined for an untiered price, the common case: the same terms in
            # the same order (its 1h cache-write term is +0.0 here), so the same float. The
            # totals are at least their parts (made so above), as cost() checks.
            cost = (
                (tin - tcached - twrite) * vec[0]
                + tcached * vec[1]
                + twrite * vec[2]
                + (tout - treason) * vec[4]
                + treason * vec[5]
            ) / 1e6 + vec[6]
        else:
            cost = price.cost(tin, tout, tcached, twrite, treason, twrite1h, ts)
        priced = 1
    if frames:
        top = frames[-1]
        name, source, line = top.name, top.source, top.line
        names = (name,) if len(frames) == 1 else tuple([f.name for f in frames])
        stack = _stack_cache.get(names) or _stack_json(names)
    else:
        user = p.user
        if test is None:
            if user is not None:
                name, source, line, stack = user
            else:
                name, source, line, stack = "<unknown>", None, None, _UNKNOWN_STACK
        else:
            name = user[0] if user is not None else test.test_id
            # per-test data points at the test, whatever helper or fixture made the call
            if test.source_file is not None:
                source, line = test.source_file, test.source_line
            elif user is not None:
                source, line = user[1], user[2]
            else:
                source = line = None
            stack = _stack_json((name,) if test.phase == "call" else (f"<{test.phase}>", name))
    # a row (tokenspy.record), not a CallRecord: see there why
    row = (
        name, model, p.provider, tin, tout, cost, duration_ms, ts,
        sessions[-1]._row_id if sessions else 0,  # 0: None in a row (tokenspy.record)
        (_git_sha() or 0) if config.track_git else 0,
        stack, tcached, twrite, treason, priced,
        test.test_id if test is not None else 0, source, line, config.run_id,
        0 if project is None else project,
    )
    tracker = p.tracker
    if tracker is None:
        tracker = _tracker_module._global or get_global_tracker()
    if type(tracker) is _Tracker:  # Tracker.record and Store.add inlined: two calls fewer
        tracker._records.append(row)
        store = tracker._store
        if store is not None:
            q = store._queue
            q.append(row)
            if store._thread is None:
                store._start()
            elif len(q) >= store.wake_at:
                store._wake.set()
        if price is not None and p.tracker is None and response_model is not None and not override \
                and response_model == model and tracker is _tracker_module._global \
                and not config.track_git:
            # later calls of this model may be deferred (see finish); not while tagging calls
            # with the git commit, which must be the one checked out when the call is made
            _defer_model, _defer_provider = response_model, p.provider
    else:
        tracker.record(_from_row(row))
    for s in sessions:
        s._add(row)
    error: BaseException | None = None
    rec = _from_row(row) if collectors else None
    for collect in collectors:
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
    u = Usage(*u)  # an adapter may give a plain tuple in Usage's order
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


_rows.settler = settle
_rows.unpublish = _unpublish
pricing.on_change.append(_forget_deferral)
_tracker_module.on_change.append(_forget_deferral)
_config_hooks.append(_forget_deferral)


def _after_fork_in_child() -> None:
    # the parent books what was deferred before the fork (see below); a child books only its own
    global _settle_lock, _c_book
    _settle_lock = threading.RLock()
    _pending.clear()
    _c_book = None  # the parent's store queue: see Store._after_fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=settle, after_in_child=_after_fork_in_child)
