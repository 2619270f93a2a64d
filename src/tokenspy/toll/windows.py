"""Budget windows: calendar periods in UTC, cut short by ``tokenspy budget reset``.

A window is identified by ``(project, period, start)``. ``start`` is the later of the calendar
start of the period holding the moment (midnight UTC; Monday 00:00 UTC, the ISO week; the 1st of
the month) and the project's latest reset at or before that moment. ``period`` ``"all"`` (no
``reset=``) has no calendar start: it runs from the latest reset, or from the beginning.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

RESETS = ("daily", "weekly", "monthly")
ALL = "all"
PERIODS = (ALL, *RESETS)  # every spend is added to the current window of each of these

_UTC = timezone.utc


def check_reset(reset: object) -> str:
    """The period of a ``reset=`` argument; ValueError for anything but the three periods."""
    if reset is None:
        return ALL
    if isinstance(reset, str) and reset in RESETS:
        return reset
    raise ValueError(f"reset must be None, 'daily', 'weekly' or 'monthly', not {reset!r}")


_DAY = 86400.0
_starts: dict[int, tuple[float, float, float]] = {}  # day number -> (daily, weekly, monthly) starts


def _day_starts(day: int) -> tuple[float, float, float]:
    try:
        return _starts[day]
    except KeyError:
        pass
    d = datetime.fromtimestamp(day * _DAY, _UTC)
    midnight = datetime(d.year, d.month, d.day, tzinfo=_UTC)
    got = (
        midnight.timestamp(),
        (midnight - timedelta(days=d.weekday())).timestamp(),
        datetime(d.year, d.month, 1, tzinfo=_UTC).timestamp(),
    )
    if len(_starts) > 4096:
        _starts.clear()
    _starts[day] = got
    return got


_INDEX = {"daily": 0, "weekly": 1, "monthly": 2}


def calendar_start(period: str, ts: float) -> float:
    """Unix time at which the calendar ``period`` holding ``ts`` began (0.0 for ``"all"``)."""
    if period == ALL:
        return 0.0
    try:
        index = _INDEX[period]
    except KeyError:
        raise ValueError(f"unknown budget period {period!r}") from None
    return _day_starts(math.floor(ts / _DAY))[index]


def window_start(period: str, ts: float, reset_at: float | None) -> float:
    """Start of the window of ``period`` holding ``ts``, given the latest reset at or before it."""
    start = calendar_start(period, ts)
    if reset_at is not None and reset_at > start:
        return reset_at
    return start


def describe(period: str) -> str:
    return {ALL: "all time", "daily": "today", "weekly": "this week", "monthly": "this month"}[period]
