"""Cost over commits: the total (or one key's) cost per commit of a DB that carries history.

The default branch's artifact DB keeps the runs of its last commits (``tokenspy.ci.history``);
the report shows the last ``POINTS`` of them plus this run as a Mermaid ``xychart-beta`` chart
(GitHub renders it in comments and summaries) and a one-line Unicode sparkline (the fallback
where Mermaid is not rendered, and what ``tokenspy trend`` prints). Only reads.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from fnmatch import fnmatchcase

from tokenspy import runs, store

POINTS = 30  # default-branch commits shown
BARS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Point:
    label: str  # short SHA, or e.g. "PR #7"
    cost_usd: float
    commit: str | None = None


@dataclass(frozen=True)
class Trend:
    points: tuple[Point, ...]
    title: str = "LLM cost per test run"

    def with_point(self, point: Point) -> Trend:
        return Trend((*self.points, point), self.title)


def commits(path: str) -> list[str]:
    """The DB's commits, oldest first (by their newest row, or recorded run)."""
    with closing(store.open_readonly(path)) as conn:
        try:
            when: dict[str, float] = {}
            if "git_commit" in store.columns_of(conn):
                for sha, ts in conn.execute("SELECT git_commit, MAX(timestamp) FROM llm_calls "
                                            "WHERE git_commit IS NOT NULL GROUP BY git_commit"):
                    when[sha] = float(ts or 0.0)
            if runs.has_table(conn):
                for sha, ts in conn.execute(f"SELECT git_commit, MAX(started_at) FROM {runs.TABLE} "
                                            "WHERE git_commit IS NOT NULL GROUP BY git_commit"):
                    when[sha] = max(when.get(sha, 0.0), float(ts or 0.0))
        except sqlite3.DatabaseError as exc:
            raise store.DBError(f"{path}: unreadable ({exc})") from None
    return sorted(when, key=lambda c: (when[c], c))


def _key_cost(side, pattern: str | None) -> float:
    if pattern is None:
        return side.info.cost_usd
    for kind in ("function", "test"):
        hits = [s.usage.cost_usd for k, s in side.keys[kind].items() if fnmatchcase(k, pattern)]
        if hits:
            return sum(hits)
    return 0.0


def history(path: str, *, key: str | None = None, limit: int = POINTS, usage: str | None = None) -> Trend:
    """Cost per commit of ``path`` for its last ``limit`` commits (each commit: its latest clean
    code state, as ``compare`` takes it); ``key``: a glob of functions (else tests) to sum."""
    from tokenspy.ci.load import load_sides
    from tokenspy.ci.query import Source

    shas = commits(str(store.check_db_path(path)))[-limit:] if limit > 0 else []
    if not shas:
        return Trend(())
    loaded = load_sides([Source(str(path), sha, clean=True) for sha in shas], usage=usage, pair=False)
    points = tuple(Point(sha[:7], _key_cost(side, key), sha)
                   for sha, side in zip(shas, loaded.sides, strict=True) if side is not None)
    return Trend(points, "LLM cost per test run" + (f" of {key}" if key else ""))


def sparkline(values: list[float]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi - lo <= 1e-15:
        return BARS[0] * len(values)
    return "".join(BARS[min(len(BARS) - 1, int((v - lo) / (hi - lo) * len(BARS)))] for v in values)


_LABEL = re.compile(r"[^A-Za-z0-9 #._-]")


def _label(text: str, width: int = 20) -> str:
    # Inside a Mermaid string: no quote, bracket or newline may reach the chart's grammar.
    return _LABEL.sub("", text)[:width] or "?"


def _y(v: float) -> str:
    return f"{v:.8f}".rstrip("0").rstrip(".") or "0"


def mermaid(trend: Trend) -> str:
    """A fenced ``xychart-beta`` block (x: commits, y: USD)."""
    labels = ", ".join(f'"{_label(p.label)}"' for p in trend.points)
    values = ", ".join(_y(p.cost_usd) for p in trend.points)
    top = max((p.cost_usd for p in trend.points), default=0.0)
    return "\n".join([
        "```mermaid", "xychart-beta", f'  title "{_label(trend.title, 80)}"', f"  x-axis [{labels}]",
        f'  y-axis "USD" 0 --> {_y(top * 1.1 or 1e-6)}', f"  line [{values}]", "```",
    ])


def one_line(trend: Trend) -> str:
    """``▁▂▅█ $0.0010 → $0.0013 (31 points)``: the sparkline with first and last values."""
    from tokenspy.ci.fmt import usd

    vals = [p.cost_usd for p in trend.points]
    if not vals:
        return "no history"
    return f"{sparkline(vals)} {usd(vals[0])} → {usd(vals[-1])} ({len(vals)} point{'s' if len(vals) != 1 else ''})"
