"""Number formatting shared by the Markdown, text and annotation renderers (deterministic)."""

from __future__ import annotations

import math

from tokenspy.ci.model import DiffRow, Usage

CHANGE_LABEL = {
    "new": "new",
    "removed": "removed",
    "increased": "increased",
    "decreased": "decreased",
    "unchanged": "unchanged",
}


def usd(x: float) -> str:
    a = abs(x)
    if a < 5e-13:
        return "$0"
    # Thresholds on the rounded value, so that 0.99999 prints as $1.00, not $1.0000.
    digits = 2 if a >= 0.995 else 4 if a >= 0.009995 else 6
    return f"{'-' if x < 0 else ''}${a:,.{digits}f}"


def signed_usd(x: float) -> str:
    return ("+" if x >= 0 else "") + usd(x) if abs(x) >= 5e-13 else "$0"


def num(x: float) -> str:
    """Token / call counts: integers as such, per-run means with one decimal."""
    if abs(x - round(x)) < 1e-9:
        return f"{round(x):,}"
    return f"{x:,.1f}"


def signed_num(x: float) -> str:
    return ("+" if x > 0 else "") + num(x)


def pct(row: DiffRow) -> str:
    if row.delta_pct is None:
        return "new" if row.delta_usd > 0 else "—"
    p = row.delta_pct
    if math.isinf(p):
        return "∞"
    return f"{'+' if p >= 0 else ''}{p:.1f}%"


def pair(row: DiffRow, get: str, fmt=num) -> str:
    """``baseline → current`` when the value changed, else the single value."""
    b = getattr(row.baseline, get) if row.baseline is not None else None
    c = getattr(row.current, get) if row.current is not None else None
    if b is None and c is None:
        return "—"
    if b is None:
        return fmt(c)
    if c is None:
        return f"{fmt(b)} → —"
    if fmt(b) == fmt(c):
        return fmt(c)
    return f"{fmt(b)} → {fmt(c)}"


def per_call(u: Usage | None) -> str:
    return "—" if u is None or not u.calls else usd(u.cost_per_call)
