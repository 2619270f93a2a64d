"""What the conformance suites share: what a user can observe of a result, and running one SDK
path with tokenspy off, then on."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pydantic

from tokenspy import interceptor


def dump(obj: Any) -> Any:
    """What the user can observe of a result, as plain data."""
    if isinstance(obj, pydantic.BaseModel):
        return (type(obj).__name__, obj.model_dump(warnings=False))
    if isinstance(obj, (list, tuple)):
        return [dump(x) for x in obj]
    return obj


def off_then_on(path: Callable[[Any], Any], client: Any, tracker: Any) -> tuple[Any, Any]:
    """``path(client)`` without tokenspy (checking it records nothing), then with it; returns
    both results. Coroutine functions are run with ``asyncio.run``. Leaves tokenspy off."""

    def call() -> Any:
        return asyncio.run(path(client)) if inspect.iscoroutinefunction(path) else path(client)

    interceptor.deactivate()
    without = call()
    assert tracker.records() == []
    interceptor.activate()
    try:
        with_ = call()
    finally:
        interceptor.deactivate()
    return without, with_
