"""``CostReporter``: one line per call made under ``track_costs``."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from tokenspy.record import CallRecord
from tokenspy.toll.windows import describe

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

    def format(self, rec: CallRecord, project: str, spent: float, budget: float | None,
               period: str, colour: bool = False) -> str:
        def c(code: str, text: str) -> str:
            return f"{code}{text}{_RESET}" if colour else text

        cost = f"${rec.cost_usd:.6f}" if rec.priced else "unpriced"
        tokens = f"{rec.input_tokens:,} in + {rec.output_tokens:,} out tokens"
        if rec.cached_input_tokens:
            tokens += f" ({rec.cached_input_tokens:,} cached)"
        if budget is None:
            spend = f"${spent:.6f} {describe(period)}"
        else:
            share = spent / budget if budget > 0 else float("inf")
            tone = _RED if share > 1 else _YELLOW if share >= 0.8 else _GREEN
            spend = c(tone, f"${spent:.6f} of ${budget:.2f}") + f" {describe(period)}"
        return (
            f"{c(_DIM, 'tokenspy:')} {rec.function_name} · {rec.model} · {tokens} · "
            f"{c(_CYAN, cost)} · project {project}: {spend}"
        )

    def report(self, rec: CallRecord, project: str, spent: float, budget: float | None, period: str) -> None:
        if not self.enabled:
            return
        stream = self.stream if self.stream is not None else sys.stderr
        if stream is None:  # pythonw: no stderr
            return
        stream.write(self.format(rec, project, spent, budget, period, self._colour(stream)) + "\n")
        flush = getattr(stream, "flush", None)
        if flush is not None:
            flush()
