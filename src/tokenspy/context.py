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
from types import CodeType
from typing import TYPE_CHECKING, Any

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


frames: contextvars.ContextVar[tuple[Frame, ...]] = contextvars.ContextVar("tokenspy_frames", default=())
sessions: contextvars.ContextVar[tuple[Session, ...]] = contextvars.ContextVar("tokenspy_sessions", default=())
current_test: contextvars.ContextVar[TestContext | None] = contextvars.ContextVar(
    "tokenspy_test", default=None
)
# Callables that also receive each CallRecord made in this context (track_costs' accounting).
# A collector may return an exception to raise to the caller (e.g. a budget now exceeded).
collectors: contextvars.ContextVar[tuple[Callable[[CallRecord], BaseException | None], ...]] = (
    contextvars.ContextVar("tokenspy_collectors", default=())
)
project: contextvars.ContextVar[str | None] = contextvars.ContextVar("tokenspy_project", default=None)
# The model to record (and price) calls as, whatever the SDK reports (``track_costs(model=...)``).
model_override: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tokenspy_model_override", default=None
)
# Set while a call is already being recorded by an outer layer (e.g. a LangChain handler around
# an SDK call), so that one HTTP call makes one record.
suppressed: contextvars.ContextVar[bool] = contextvars.ContextVar("tokenspy_suppressed", default=False)


class OuterCall:
    """A call begun by a layer above the SDKs (the LangChain handler) that defers to them.

    While it is ``open`` and on ``outer_calls``, an SDK call that begins underneath is the one
    recorded (one record per HTTP call): ``recorder.begin`` sets ``inner``, so that the outer
    layer skips its own record, and gives the SDK call the outer call's ``tracker`` and ``user``
    (the caller of the outer layer, e.g. of ``model.invoke``).
    """

    __slots__ = ("inner", "open", "tracker", "user")

    def __init__(self, tracker: Any = None, user: tuple[str, str, int] | None = None) -> None:
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
_code_cache: dict[int, tuple[CodeType, tuple[str, str, int] | None]] = {}


def _is_library(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in _LIBRARY_PREFIXES)


_COMPREHENSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"})


def _describe(code: CodeType, module: str) -> tuple[str, str, int] | None:
    # comprehensions have their own frame before 3.12: name the function around them instead
    if _is_library(module) or code.co_name in _COMPREHENSIONS:
        return None
    qual = getattr(code, "co_qualname", code.co_name)
    name = qual if module in ("__main__", "") else f"{module}.{qual}"
    from tokenspy.gitinfo import repo_relative

    return name, repo_relative(code.co_filename) or code.co_filename, code.co_firstlineno


def user_frame(skip: int = 2) -> tuple[str, str, int] | None:
    """(module.qualname, file, first line) of the nearest frame outside tokenspy and the SDKs."""
    try:
        f = sys._getframe(skip)
    except ValueError:
        return None
    cache = _code_cache
    while f is not None:
        code = f.f_code
        entry = cache.get(id(code))
        if entry is None or entry[0] is not code:
            entry = cache[id(code)] = (code, _describe(code, f.f_globals.get("__name__") or ""))
        if entry[1] is not None:
            return entry[1]
        f = f.f_back
    return None
