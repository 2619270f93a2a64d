"""Install and remove the in-process patches of the provider SDKs.

Each provider module exposes ``patch(patcher) -> bool`` (False when its SDK is not installed).
Activation is idempotent and process-wide; nothing but ``deactivate()`` removes the patches.
"""

from __future__ import annotations

import importlib
import threading

from tokenspy.interceptor._patch import Patcher

# provider name -> module implementing ``patch``; order is the order of activation
PROVIDERS: dict[str, str] = {
    "openai": "tokenspy.interceptor.openai",
    "anthropic": "tokenspy.interceptor.anthropic",
    "google": "tokenspy.interceptor.google_genai",
    "google_legacy": "tokenspy.interceptor.google_legacy",
}

_lock = threading.RLock()
_patchers: dict[str, Patcher] = {}
_active = False


def activate() -> list[str]:
    """Patch every installed SDK; returns the providers that are patched (idempotent)."""
    global _active
    with _lock:
        for name, module_name in PROVIDERS.items():
            if name in _patchers:
                continue
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
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
        _active = True
        return list(_patchers)


def deactivate() -> None:
    """Restore every original SDK method."""
    global _active
    with _lock:
        for patcher in reversed(list(_patchers.values())):
            patcher.restore()
        _patchers.clear()
        _active = False


def is_active() -> bool:
    return _active


def patched_providers() -> list[str]:
    return list(_patchers)


def ensure_active() -> None:
    """Activate once, on first use of profile/session/init (cheap when already active)."""
    if not _active:
        activate()
