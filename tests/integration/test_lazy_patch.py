"""Activation never imports an SDK the application has not imported: the SDK is patched when the
application imports it. Each test runs in a fresh interpreter, where nothing is imported yet."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = str(Path(__file__).resolve().parents[1])

PRELUDE = f"""
import json, sys
sys.path.insert(0, {TESTS!r})
SDKS = ("openai", "anthropic", "google.genai")
def imported():
    return [m for m in SDKS if m in sys.modules]
"""


def run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_activation_imports_no_sdk_and_patches_each_on_import():
    out = run("""
        import tokenspy
        from tokenspy import interceptor
        from tokenspy.tracker import get_global_tracker
        covered = interceptor.activate()
        after_activate = imported()
        from wire import Wire, anthropic_clients, google_client
        wire = Wire()
        client = anthropic_clients(wire)[0]
        client.messages.create(model="claude-sonnet-4-5", max_tokens=64,
                               messages=[{"role": "user", "content": "hi"}])
        google_client(wire).models.generate_content(model="gemini-2.5-flash", contents="hi")
        import anthropic
        print(json.dumps({
            "covered": covered, "after_activate": after_activate,
            "patched": interceptor.patched_providers(),
            "providers": [r.provider for r in get_global_tracker().records()],
            "loader_restored": type(anthropic.__spec__.loader).__name__,
            "hook_left": any(type(f).__module__.startswith("tokenspy") for f in sys.meta_path),
        }))
    """)
    assert out["after_activate"] == []
    assert {"openai", "anthropic", "google"} <= set(out["covered"])
    assert set(out["patched"]) == {"anthropic", "google"}  # openai was never imported
    assert out["providers"] == ["anthropic", "google"]
    assert out["loader_restored"] == "SourceFileLoader"
    assert out["hook_left"] is True  # still waiting for openai


def test_sdk_imported_before_activation_is_patched_at_once():
    out = run("""
        import openai
        from tokenspy import interceptor
        interceptor.activate()
        print(json.dumps({"patched": interceptor.patched_providers(), "imported": imported()}))
    """)
    assert out["patched"] == ["openai"]
    assert out["imported"] == ["openai"]


def test_deactivate_before_import_leaves_the_sdk_untouched():
    out = run("""
        from tokenspy import interceptor
        interceptor.activate()
        interceptor.deactivate()
        import anthropic
        from anthropic._base_client import SyncAPIClient
        print(json.dumps({
            "patched": interceptor.patched_providers(),
            "wrapped": hasattr(SyncAPIClient.request, "__tokenspy_patch__"),
            "hook_left": any(type(f).__module__.startswith("tokenspy") for f in sys.meta_path),
        }))
    """)
    assert out == {"patched": [], "wrapped": False, "hook_left": False}


def test_profile_activates_lazily_and_records_an_sdk_imported_inside_it():
    out = run("""
        import tokenspy
        from tokenspy.tracker import get_global_tracker

        @tokenspy.profile
        def ask():
            from wire import Wire, openai_clients
            client = openai_clients(Wire())[0]
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

        ask()
        print(json.dumps([(r.function_name, r.model) for r in get_global_tracker().records()]))
    """)
    assert [name for name, _ in out] == ["ask"]
