"""Local rate limits: requests and tokens per minute, per project, in this process.

A sliding 60-second window. An admitted invocation reserves one request at admission (so that
concurrent invocations cannot all pass before any of them is recorded); its first LLM call uses
that reservation and each further call adds a request at its time. Tokens are counted as calls
complete. The check is made before the decorated function runs:

- requests in the last 60 s ≥ ``rate_limit`` → ``LocalRateLimitError("rpm", ...)``, retry when the
  oldest of them leaves the window;
- tokens of the calls in the last 60 s ≥ ``tpm_limit`` → ``LocalRateLimitError("tpm", ...)``,
  retry when enough of them have left the window to be under the limit.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable

from tokenspy.errors import LocalRateLimitError

WINDOW = 60.0


class _Window:
    __slots__ = ("requests", "token_sum", "tokens")

    def __init__(self) -> None:
        self.requests: deque[float] = deque()
        self.tokens: deque[tuple[float, int]] = deque()
        self.token_sum = 0

    def prune(self, now: float) -> None:
        cutoff = now - WINDOW
        requests = self.requests
        while requests and requests[0] <= cutoff:
            requests.popleft()
        tokens = self.tokens
        while tokens and tokens[0][0] <= cutoff:
            self.token_sum -= tokens.popleft()[1]


class RateLimiter:
    """Per-project sliding windows. ``clock`` (monotonic seconds) is replaceable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def _window(self, project: str) -> _Window:
        w = self._windows.get(project)
        if w is None:
            w = self._windows[project] = _Window()
        return w

    def admit(self, project: str, rpm: int | None = None, tpm: int | None = None) -> None:
        """Check the limits and reserve one request, or raise LocalRateLimitError."""
        with self._lock:
            now = self.clock()
            w = self._window(project)
            w.prune(now)
            if rpm is not None and len(w.requests) >= rpm:
                # the oldest request that must leave for the count to drop under the limit
                oldest = w.requests[len(w.requests) - rpm]
                raise LocalRateLimitError("rpm", rpm, max(0.0, oldest + WINDOW - now))
            if tpm is not None and w.token_sum >= tpm:
                remaining = w.token_sum
                retry = 0.0
                for t, n in w.tokens:
                    remaining -= n
                    if remaining < tpm:
                        retry = t + WINDOW - now
                        break
                raise LocalRateLimitError("tpm", tpm, max(0.0, retry))
            w.requests.append(now)

    def record(self, project: str, tokens: int, reserved: bool) -> None:
        """A call completed: count its tokens, and a request unless it used the reservation."""
        with self._lock:
            now = self.clock()
            w = self._window(project)
            if not reserved:
                w.requests.append(now)
            if tokens:
                w.tokens.append((now, tokens))
                w.token_sum += tokens
            w.prune(now)

    def usage(self, project: str) -> tuple[int, int]:
        """(requests, tokens) of ``project`` in the current window."""
        with self._lock:
            w = self._window(project)
            w.prune(self.clock())
            return len(w.requests), w.token_sum

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()


limiter = RateLimiter()


def _after_fork_in_child() -> None:
    # limits are per process: a forked child starts with empty windows and a free lock
    limiter._lock = threading.Lock()
    limiter._windows = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
