"""Run a callback right after a module is first imported (a post-import hook).

Activation must not import SDKs the application never imports: importing anthropic and
google-genai into a process that only uses openai costs seconds at activation and, measured with
callgrind, +0.4 % on every later OpenAI call (a bigger heap for the garbage collector to walk).
So a provider whose SDK is not imported yet is patched from here, when the application imports it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Callable, Sequence
from typing import Any

_lock = threading.RLock()
_callbacks: dict[str, Callable[[], None]] = {}
_resolving: set[str] = set()


def is_imported(name: str) -> bool:
    """``name`` is in sys.modules and done executing (not a module half-way through its import)."""
    module = sys.modules.get(name)
    if module is None:
        return False
    spec = getattr(module, "__spec__", None)
    return not getattr(spec, "_initializing", False)


class _Loader(importlib.abc.Loader):
    """The module's own loader, then the callback; puts the original loader back on the module."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        spec = module.__spec__
        if spec is not None and spec.loader is self:
            spec.loader = self._loader
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self._loader
        self._loader.exec_module(module)
        with _lock:
            callback = _callbacks.pop(self._name, None)
            if not _callbacks:
                _uninstall()
        if callback is not None:
            callback()

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, ...
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _callbacks or fullname in _resolving:
            return None
        _resolving.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)  # the finders after us
        finally:
            _resolving.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader, fullname)
        return spec


_finder = _Finder()


def _uninstall() -> None:
    try:
        sys.meta_path.remove(_finder)
    except ValueError:
        pass


def when_imported(name: str, callback: Callable[[], None]) -> None:
    """Call ``callback`` once ``name`` is imported (at once when it already is)."""
    with _lock:
        if not is_imported(name):
            _callbacks[name] = callback
            if _finder not in sys.meta_path:
                sys.meta_path.insert(0, _finder)
            return
    callback()


def cancel_all() -> None:
    with _lock:
        _callbacks.clear()
        _uninstall()
