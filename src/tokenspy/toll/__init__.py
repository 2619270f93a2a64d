"""llm-toll's API on tokenspy's core: ``track_costs`` with budgets, reset windows, local rate
limits, a store and a per-call reporter.

    from tokenspy import track_costs, set_store, SQLiteStore

    set_store(SQLiteStore(db_path="/var/lib/app/usage.db"))

    @track_costs(project="chatbot", max_budget=5.00, reset="monthly", rate_limit=60)
    def chat(prompt): ...
"""

from __future__ import annotations

from tokenspy.errors import BudgetExceededError, LocalRateLimitError, PricingMatrixOutdatedWarning
from tokenspy.toll.decorator import get_reporter, get_store, set_reporter, set_store, track_costs
from tokenspy.toll.limits import RateLimiter, limiter
from tokenspy.toll.reporter import CostReporter
from tokenspy.toll.sqlite import Spend, SQLiteStore

__all__ = [
    "BudgetExceededError",
    "CostReporter",
    "LocalRateLimitError",
    "PricingMatrixOutdatedWarning",
    "RateLimiter",
    "SQLiteStore",
    "Spend",
    "get_reporter",
    "get_store",
    "limiter",
    "set_reporter",
    "set_store",
    "track_costs",
]
