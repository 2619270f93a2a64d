"""Money per month: ``[tool.tokenspy.traffic]`` maps function or test globs to production calls
per month, and a row's per-call change times its calls per month is its monthly change.

    [tool.tokenspy.traffic]
    "app.summarize" = 30000
    "app.chat.*" = 1_200_000

A test run's cost says little about production; the traffic table turns it into what a reviewer
budgets in. Keys without a matching pattern have no projection, and without a table the report
shows none: never a made-up number. Pure apart from ``read`` (which only reads the file).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fnmatch import fnmatchcase

from tokenspy.ci.model import CostDiff, DiffRow


@dataclass(frozen=True)
class Traffic:
    """Patterns in file order, each with calls per month; an exact name wins over a glob."""

    patterns: tuple[tuple[str, float], ...]
    source: str = ""

    def calls_for(self, key: str) -> float | None:
        for pattern, calls in self.patterns:
            if pattern == key:
                return calls
        for pattern, calls in self.patterns:
            if fnmatchcase(key, pattern):
                return calls
        return None


def parse(table: object, where: str) -> Traffic | None:
    """The ``[tool.tokenspy.traffic]`` table; ValueError naming a bad entry."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ValueError(f"{where}: [tool.tokenspy.traffic] must be a table of pattern = calls per month")
    out = []
    for pattern, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{where}: [tool.tokenspy.traffic] {pattern!r} = {value!r} is not a number of "
                             "calls per month (>= 0)")
        out.append((str(pattern), float(value)))
    return Traffic(tuple(out), where) if out else None


def read(pyproject: str | os.PathLike[str] | None = None) -> Traffic | None:
    """The traffic table of the nearest pyproject.toml (from ``pyproject`` or the cwd), or None."""
    from tokenspy import pyproject as pp

    path, table = pp.tool_table(pyproject)
    return parse(table.get("traffic"), str(path)) if path is not None else None


def per_call(row: DiffRow) -> tuple[float, float]:
    """(baseline, current) cost per call; a side without the key costs 0 per call."""
    return (row.baseline.cost_per_call if row.baseline else 0.0,
            row.current.cost_per_call if row.current else 0.0)


def monthly(row: DiffRow, traffic: Traffic | None, *, absolute: bool = False) -> float | None:
    """The row's monthly cost change at its configured traffic (``absolute``: its monthly cost),
    None when no pattern matches."""
    if traffic is None:
        return None
    calls = traffic.calls_for(row.key)
    if calls is None:
        return None
    base, cur = per_call(row)
    return cur * calls if absolute else (cur - base) * calls


def total_monthly(d: CostDiff, traffic: Traffic | None) -> float | None:
    """The sum over functions with traffic (tests when no function has any); None if none has.
    Without a baseline: the monthly cost, else the monthly change."""
    absolute = not d.has_baseline
    for rows in (d.functions, d.tests):
        values = [m for r in rows if (m := monthly(r, traffic, absolute=absolute)) is not None]
        if values:
            return sum(values)
    return None
