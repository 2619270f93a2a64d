"""``CostReporter``: one line per call made under ``track_costs``."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from typing import TextIO

from tokenspy.record import CallRecord
from tokenspy.toll.sqlite import Spend
from tokenspy.toll.windows import ALL, describe

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_CYAN = "\x1b[36m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_RED = "\x1b[31m"


class CostReporter:
    """Writes one line per call: function, model, tokens, cost, and the project's spend in its
    window (against the budget, if any).

    ``stream`` defaults to ``sys.stderr`` as it is at the time of each line (so that pytest's
    capture, or a later redirection, applies). Colour only when the stream is a TTY and the
    ``NO_COLOR`` environment variable is unset or empty (https://no-color.org).
    """

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = bool(enabled)
        self.stream = stream

    def __repr__(self) -> str:
        return f"CostReporter(enabled={self.enabled}, stream={self.stream!r})"

    def _colour(self, stream: TextIO) -> bool:
        if os.environ.get("NO_COLOR"):
            return False
        isatty = getattr(stream, "isatty", None)
        try:
            return bool(isatty and isatty())
        except (ValueError, OSError):  # closed stream
            return False

    def format(self, rec: CallRecord, spend: Spend, budget: float | None, colour: bool = False) -> str:
        def c(code: str, text: str) -> str:
            return f"{code}{text}{_RESET}" if colour else text

        cost = f"${rec.cost_usd:.6f}" if rec.priced else "unpriced"
        tokens = f"{rec.input_tokens:,} in + {rec.output_tokens:,} out tokens"
        if rec.cached_input_tokens:
            tokens += f" ({rec.cached_input_tokens:,} cached)"
        spent = spend.spent_usd
        if spend.period == ALL and spend.window_start > 0:
            since = datetime.fromtimestamp(spend.window_start, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            window = f"since reset {since}"
        else:
            window = describe(spend.period)
        if budget is None:
            total = f"${spent:.6f} {window}"
        else:
            share = spent / budget if budget > 0 else float("inf")
            tone = _RED if share > 1 else _YELLOW if share >= 0.8 else _GREEN
            total = c(tone, f"${spent:.6f} of ${budget:.2f}") + f" {window}"
        return (
            f"{c(_DIM, 'tokenspy:')} {rec.function_name} | {rec.model} | {tokens} | "
            f"{c(_CYAN, cost)} | project {spend.project}: {total}"
        )

    def report(self, rec: CallRecord, spend: Spend, budget: float | None) -> None:
        """Write the line of one call; ``spend`` is its project's total in the window checked."""
        if not self.enabled:
            return
        stream = self.stream if self.stream is not None else sys.stderr
        if stream is None:  # pythonw: no stderr
            return
        stream.write(self.format(rec, spend, budget, self._colour(stream)) + "\n")
        flush = getattr(stream, "flush", None)
        if flush is not None:
            flush()
