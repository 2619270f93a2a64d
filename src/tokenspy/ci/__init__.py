"""CI gate: diff LLM spend between two DBs or two commits, annotate, summarize, gate.

``from tokenspy.ci import annotate_cost_diff, compare_commits, CostDiff``. Submodules load on
first use, so importing this package costs nothing until a diff runs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenspy.ci.api import annotate_cost_diff, compare_commits
    from tokenspy.ci.combine import combine
    from tokenspy.ci.markdown import render_markdown
    from tokenspy.ci.model import CostDiff, DiffRow, Usage
    from tokenspy.ci.thresholds import Thresholds

_LAZY = {
    "annotate_cost_diff": "tokenspy.ci.api",
    "compare_commits": "tokenspy.ci.api",
    "combine": "tokenspy.ci.combine",
    "render_markdown": "tokenspy.ci.markdown",
    "CostDiff": "tokenspy.ci.model",
    "DiffRow": "tokenspy.ci.model",
    "Usage": "tokenspy.ci.model",
    "Thresholds": "tokenspy.ci.thresholds",
}

__all__ = [
    "CostDiff", "DiffRow", "Thresholds", "Usage", "annotate_cost_diff", "combine", "compare_commits",
    "render_markdown",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenspy.ci' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
