"""Install and remove the in-process patches of the provider SDKs.

Each provider module exposes ``patch(patcher) -> bool`` (False when its SDK is not installed).
Activation is idempotent and process-wide; nothing but ``deactivate()`` removes the patches.
An SDK the application has not imported yet is not imported by activation: it is patched when the
application imports it (``_hook``), so activation costs nothing for SDKs a process never uses.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading

from tokenspy.interceptor import _hook
from tokenspy.interceptor._patch import Patcher

# provider name -> module implementing ``patch``; order is the order of activation
PROVIDERS: dict[str, str] = {
    "openai": "tokenspy.interceptor.openai",
    "anthropic": "tokenspy.interceptor.anthropic",
    "google": "tokenspy.interceptor.google_genai",
    "google_legacy": "tokenspy.interceptor.google_legacy",
}
# provider name -> the SDK module whose import triggers its patch
SDK_MODULES: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google.genai",
    "google_legacy": "google.generativeai",
}

_lock = threading.RLock()
_patchers: dict[str, Patcher] = {}
_armed: set[str] = set()  # installed SDKs not imported yet: patched by the import hook
_active = False


def _installed(module_name: str) -> bool:
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


def _patch_now(name: str) -> None:
    """Patch one provider whose SDK is imported (called with or without ``_lock`` held)."""
    with _lock:
        if name in _patchers or not _active:
            return
        try:
            module = importlib.import_module(PROVIDERS[name])
        except ImportError:
            return
        patcher = Patcher()
        try:
            ok = module.patch(patcher)
        except ImportError:
            ok = False
        except Exception as exc:  # a new SDK version we do not understand: never break the app
            patcher.restore()
            from tokenspy.recorder import internal_error

            internal_error(exc)
            ok = False
        if ok:
            _patchers[name] = patcher
        else:
            patcher.restore()


def activate() -> list[str]:
    """Patch every installed SDK; returns the providers covered (idempotent).

    SDKs already imported are patched now; an installed SDK that is not imported yet is patched
    as soon as the application imports it (and is listed: its calls will be recorded)."""
    global _active
    with _lock:
        _active = True
        covered = []
        for name, sdk in SDK_MODULES.items():
            if name not in _patchers:
                if _hook.is_imported(sdk):
                    _patch_now(name)
                elif name not in _armed and _installed(sdk):
                    _armed.add(name)
                    _hook.when_imported(sdk, lambda name=name: _on_import(name))
            if name in _patchers or name in _armed:
                covered.append(name)
        return covered


def _on_import(name: str) -> None:
    with _lock:
        _armed.discard(name)
    _patch_now(name)


def deactivate() -> None:
    """Restore every original SDK method."""
    global _active
    with _lock:
        _hook.cancel_all()
        _armed.clear()
        for patcher in reversed(list(_patchers.values())):
            patcher.restore()
        _patchers.clear()
        _active = False


def is_active() -> bool:
    return _active


def patched_providers() -> list[str]:
    """Providers whose SDK is patched now (an SDK not imported yet is not)."""
    return list(_patchers)


def ensure_active() -> None:
    """Activate once, on first use of profile/session/init (cheap when already active)."""
    if not _active:
        activate()
