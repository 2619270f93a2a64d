"""tokenspy: see, diff and gate what your LLM calls cost.

Heavy pieces (SDK patches, pricing data, git, the CI chain, reports) load on first use, so that
``import tokenspy`` stays cheap.

PYTEST_DONT_REWRITE: pytest marks the packages of every pytest11 distribution for assertion
rewriting; an app (or sitecustomize) that imported tokenspy before pytest started would get a
PytestAssertRewriteWarning, an error under ``filterwarnings = error``. tokenspy has no test
assertions to rewrite.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tokenspy.errors import BudgetExceededError, LocalRateLimitError, PricingMatrixOutdatedWarning
from tokenspy.profile import profile
from tokenspy.record import CallRecord
from tokenspy.session import Session, session
from tokenspy.version import __version__ as __version__

if TYPE_CHECKING:
    from tokenspy.api import flush, init, report, reset, stats
    from tokenspy.toll import CostReporter, SQLiteStore, set_reporter, set_store, track_costs


_LAZY = {
    "flush": "tokenspy.api",
    "init": "tokenspy.api",
    "report": "tokenspy.api",
    "reset": "tokenspy.api",
    "stats": "tokenspy.api",
    "track_costs": "tokenspy.toll",
    "set_store": "tokenspy.toll",
    "SQLiteStore": "tokenspy.toll",
    "set_reporter": "tokenspy.toll",
    "CostReporter": "tokenspy.toll",
}

__all__ = [
    "BudgetExceededError",
    "CallRecord",
    "CostReporter",
    "LocalRateLimitError",
    "PricingMatrixOutdatedWarning",
    "SQLiteStore",
    "Session",
    "flush",
    "init",
    "profile",
    "report",
    "reset",
    "session",
    "set_reporter",
    "set_store",
    "stats",
    "track_costs",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenspy' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
