"""Per-context attribution state: active profiled invocations, sessions, test id.

Everything lives in ``contextvars`` so that threads and asyncio tasks never see each other's
state (the original used a thread-local stack, which mixed up concurrent tasks). The stacks are
tuples: a task or a ``contextvars.copy_context()`` started inside a profiled function keeps
pointing at the same Frame objects, so its calls count towards that invocation's budget.
"""

from __future__ import annotations

import contextvars
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from tokenspy.record import CallRecord
    from tokenspy.session import Session


class Frame:
    """One running invocation of a ``@profile``-decorated function."""

    __slots__ = ("budget", "exceeded", "line", "name", "on_exceeded", "raised", "source", "spent")

    def __init__(self, name: str, source: str | None, line: int | None, budget: float | None,
                 on_exceeded: str) -> None:
        self.name = name
        self.source = source
        self.line = line
        self.budget = budget
        self.on_exceeded = on_exceeded
        self.spent = 0.0
        self.exceeded = False
        self.raised = False  # the BudgetExceededError already reached the user


@dataclass(frozen=True, slots=True)
class TestContext:
    """The test a call belongs to (set by the pytest plugin)."""

    test_id: str
    source_file: str | None = None
    source_line: int | None = None
    phase: str = "call"


class Scope(NamedTuple):
    """Everything a call is attributed to, in one immutable value: the recorder reads one
    ContextVar per call instead of one per field. Writers replace the whole scope (through the
    field views below) and put the previous one back with the token, as with separate vars."""

    frames: tuple[Frame, ...] = ()
    sessions: tuple[Session, ...] = ()
    current_test: TestContext | None = None
    # Callables that also receive each CallRecord made in this context (track_costs'
    # accounting). A collector may return an exception to raise to the caller (e.g. a budget
    # now exceeded).
    collectors: tuple[Callable[[CallRecord], BaseException | None], ...] = ()
    project: str | None = None
    # The model to record (and price) calls as, whatever the SDK reports (``track_costs(model=...)``).
    model_override: str | None = None
    # Set while a call is already being recorded by an outer layer, so that one HTTP call makes
    # one record.
    suppressed: bool = False
    # Derived, kept up to date by ScopeField: a call made here must be booked at once (a
    # profiled function has a budget, or collectors want each record), not later in a batch.
    eager: bool = False


def _eager(frames: tuple[Frame, ...], collectors: tuple[Any, ...]) -> bool:
    return bool(collectors) or any(f.budget is not None for f in frames)


def _with(s: tuple[Any, ...], i: int, value: Any) -> Scope:
    """``s`` with field ``i`` replaced (and ``eager`` derived again)."""
    fields = [*s[:i], value, *s[i + 1:]]
    fields[7] = _eager(fields[0], fields[3])
    new = _new_scope(Scope, fields)
    # the default scope itself once everything is back to it: the plain-call path
    # (interceptor.openai_plain) tells it by identity
    return _DEFAULT if new == _DEFAULT else new


_DEFAULT = Scope()
scope: contextvars.ContextVar[Scope] = contextvars.ContextVar("tokenspy_scope", default=_DEFAULT)
_new_scope = tuple.__new__


class ScopeField:
    """One field of the scope, used like a ContextVar: ``get()``, ``set(value) -> token``,
    ``reset(token)``. Setting replaces the whole scope; resetting puts back this field's value
    from before that ``set`` and keeps the others as they are now, exactly as separate vars
    would (set/reset pairs of different fields need not nest: a pytest fixture's session
    outlives the setup phase that the plugin resets)."""

    __slots__ = ("index", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.index = Scope._fields.index(name)

    def get(self) -> Any:
        return scope.get()[self.index]

    def set(self, value: Any) -> contextvars.Token[Scope]:
        s = scope.get()
        i = self.index
        return scope.set(_with(s, i, value))

    def reset(self, token: contextvars.Token[Scope]) -> None:
        now = scope.get()
        scope.reset(token)  # the ContextVar's own checks: same context, token used once
        old = token.old_value
        value = (_DEFAULT if old is contextvars.Token.MISSING else old)[self.index]
        i = self.index
        if now[i] is not value:
            scope.set(_with(now, i, value))
        elif scope.get() is not now:
            scope.set(now)

    def __repr__(self) -> str:
        return f"<tokenspy scope field {self.name!r}>"


frames = ScopeField("frames")
sessions = ScopeField("sessions")
current_test = ScopeField("current_test")
collectors = ScopeField("collectors")
project = ScopeField("project")
model_override = ScopeField("model_override")
suppressed = ScopeField("suppressed")


# The caller of an unprofiled call: (module.qualname, file, first line, the JSON text of the
# one-name call stack it is recorded with).
UserFrame = tuple[str, str, int, str]


class OuterCall:
    """A call begun by a layer above the SDKs (the LangChain handler) that defers to them.

    While it is ``open`` and on ``outer_calls``, an SDK call that begins underneath is the one
    recorded (one record per HTTP call): ``recorder.begin`` sets ``inner``, so that the outer
    layer skips its own record, and gives the SDK call the outer call's ``tracker`` and ``user``
    (the caller of the outer layer, e.g. of ``model.invoke``).
    """

    __slots__ = ("inner", "open", "tracker", "user")

    def __init__(self, tracker: Any = None, user: UserFrame | None = None) -> None:
        self.inner = False
        self.open = True
        self.tracker = tracker
        self.user = user


outer_calls: contextvars.ContextVar[tuple[OuterCall, ...]] = contextvars.ContextVar(
    "tokenspy_outer_calls", default=()
)


# Modules whose frames are never "user code" when attributing an unprofiled call.
_LIBRARY_PREFIXES = (
    "tokenspy", "openai", "anthropic", "google.genai", "google.generativeai", "google.ai",
    "httpx", "httpx2", "httpcore", "langchain", "langgraph", "langsmith", "pydantic", "asyncio",
    "langchain_core", "langchain_openai", "langchain_anthropic", "langchain_google_genai",
    "langchain_google_vertexai", "langchain_community", "langchain_classic", "langgraph_sdk",
    "concurrent", "threading", "functools", "contextlib", "contextvars", "typing_extensions",
    "anyio", "runpy", "_pytest", "pluggy", "importlib",
)
# Keyed by id(code), not by the code object: hashing a code object hashes its bytecode and
# constants on every lookup (measured: ~0.6 µs a frame, most of the walk). The entry keeps the
# code object, so its id cannot be reused while the entry lives.
_code_cache: dict[int, tuple[CodeType, UserFrame | None]] = {}


def _is_library(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in _LIBRARY_PREFIXES)


_COMPREHENSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"})


def _describe(code: CodeType, module: str) -> UserFrame | None:
    # comprehensions have their own frame before 3.12: name the function around them instead
    if _is_library(module) or code.co_name in _COMPREHENSIONS:
        return None
    qual = getattr(code, "co_qualname", code.co_name)
    name = qual if module in ("__main__", "") else f"{module}.{qual}"
    from tokenspy.gitinfo import repo_relative
    from tokenspy.record import stack_json

    return name, repo_relative(code.co_filename) or code.co_filename, code.co_firstlineno, stack_json((name,))


# Source files of library modules. The walk skips their frames with one set lookup each
# (several SDK frames lie between the interceptor and the caller on every call), before the
# per-code cache. Files with made-up names ("<string>": generated dataclass and namedtuple
# methods, exec'd code) are shared by modules of all kinds and never go in.
_library_files: set[str] = set()


def _code_entry(f: FrameType, code: CodeType) -> tuple[CodeType, UserFrame | None]:
    """The ``_code_cache`` entry of a frame's code, noting a library module's file on the way."""
    module = f.f_globals.get("__name__") or ""
    if _is_library(module) and not code.co_filename.startswith("<"):
        _library_files.add(code.co_filename)
    return code, _describe(code, module)


def _load_speedups() -> Any:
    """tokenspy._speedups (C, built by setup.py where it can be), unless TOKENSPY_PURE_PYTHON is
    set; None without it."""
    if os.environ.get("TOKENSPY_PURE_PYTHON"):
        return None
    try:
        from tokenspy import _speedups  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _speedups


speedups = _load_speedups()
# c_walk(skip, _library_files, _code_cache): what the Python walk below returns, found without
# making frame objects, or WALK_MISS where a frame's code is not in the caches yet (then the
# Python walk runs and fills them). None where the C walk is not built (CPython 3.11 only).
c_walk: Callable[[int, set[str], dict[int, Any]], Any] | None = getattr(speedups, "user_frame", None)
WALK_MISS: object = speedups.MISS if speedups is not None else object()


def user_frame(skip: int = 2) -> UserFrame | None:
    """(module.qualname, file, first line, call stack JSON) of the nearest frame outside
    tokenspy and the SDKs."""
    if c_walk is not None:
        user = c_walk(skip, _library_files, _code_cache)  # a C function: no frame of its own
        if user is not WALK_MISS:
            return user  # type: ignore[no-any-return]
    return py_user_frame(skip + 1)


def py_user_frame(skip: int = 2) -> UserFrame | None:
    """``user_frame`` in Python: the walk that fills the caches ``c_walk`` reads."""
    try:
        f = sys._getframe(skip)
    except ValueError:
        return None
    cache = _code_cache
    library = _library_files
    while f is not None:
        code = f.f_code
        if code.co_filename in library:
            f = f.f_back
            continue
        entry = cache.get(id(code))
        if entry is None or entry[0] is not code:
            entry = cache[id(code)] = _code_entry(f, code)
        if entry[1] is not None:
            return entry[1]
        f = f.f_back
    return None
