"""Per-context attribution state: active profiled invocations, sessions, test id.

Everything lives in ``contextvars`` so that threads and asyncio tasks never see each other's
state (the original used a thread-local stack, which mixed up concurrent tasks). The stacks are
tuples: a task or a ``contextvars.copy_context()`` started inside a profiled function keeps
pointing at the same Frame objects, so its calls count towards that invocation's budget.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any, NamedTuple

from tokenspy.gitinfo import repo_relative

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


def _with(s: Scope, i: int, value: Any) -> Scope:
    """``s`` with field ``i`` replaced."""
    return Scope(*s[:i], value, *s[i + 1:])


_DEFAULT = Scope()
scope: contextvars.ContextVar[Scope] = contextvars.ContextVar("tokenspy_scope", default=_DEFAULT)


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
        return scope.set(_with(scope.get(), self.index, value))

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


# The test pytest is running in this process and its collectors (set by the pytest plugin while
# a test phase runs; pytest runs one test at a time per process): the fallback of a call whose
# context has no test, made in a worker thread or a fresh ``contextvars.Context()``.
running_test: tuple[TestContext, tuple[Callable[[CallRecord], BaseException | None], ...]] | None = None


# The caller of an unprofiled call: (module.qualname, file, first line).
UserFrame = tuple[str, "str | None", int]


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
_COMPREHENSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"})
# What a code object says of its frame: keyed by id(code) (hashing a code object hashes its
# bytecode). The entry holds the code object, so no other object can have that id while the
# entry lives: an id found here is that code object. Bounded: a program that generates functions
# must not grow it forever; when full it is dropped whole and refilled by the next walks.
_code_cache: dict[int, tuple[UserFrame | None, CodeType]] = {}
CODE_CACHE_MAX = 4096


def is_library(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in _LIBRARY_PREFIXES)


def _describe(code: CodeType, module: str) -> UserFrame | None:
    # comprehensions have their own frame before 3.12: name the function around them instead
    if is_library(module) or code.co_name in _COMPREHENSIONS:
        return None
    qual = getattr(code, "co_qualname", code.co_name)
    name = qual if module in ("__main__", "") else f"{module}.{qual}"
    return name, repo_relative(code.co_filename) or code.co_filename, code.co_firstlineno


def user_frame(skip: int = 2) -> UserFrame | None:
    """(module.qualname, file, first line) of the nearest frame outside tokenspy and the SDKs,
    starting ``skip`` frames above this function's caller."""
    try:
        f: FrameType | None = sys._getframe(skip)
    except ValueError:
        return None
    cache = _code_cache
    while f is not None:
        entry = cache.get(id(f.f_code))
        if entry is None:
            code = f.f_code
            if len(cache) >= CODE_CACHE_MAX:
                cache.clear()
            entry = cache[id(code)] = (_describe(code, f.f_globals.get("__name__") or ""), code)
        if entry[0] is not None:
            return entry[0]
        f = f.f_back
    return None
