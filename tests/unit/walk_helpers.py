"""Frames for tests/unit/test_speedups.py that the tests mark as a library's (by their file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def through(depth: int, fn: Callable[[], Any]) -> Any:
    """``fn()`` called ``depth`` frames of this module deep."""
    if depth <= 0:
        return fn()
    return through(depth - 1, fn)
