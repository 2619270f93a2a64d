"""Reversible attribute patches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Patcher:
    """Replaces attributes and remembers the originals so they can be put back exactly."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def patch(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name]  # the class's own attribute, not an inherited one
        wrapper = make(original)
        try:
            wrapper.__wrapped__ = original
            wrapper.__tokenspy_patch__ = True
        except (AttributeError, TypeError):
            pass
        setattr(owner, name, wrapper)
        self._saved.append((owner, name, original))

    def restore(self) -> None:
        while self._saved:
            owner, name, original = self._saved.pop()
            setattr(owner, name, original)
