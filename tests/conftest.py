from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/wire.py and friends

from chromium import browser  # noqa: F401  (the session's headless Chromium, tests/browser)
from tokenspy import context, interceptor
from tokenspy.config import config
from tokenspy.tracker import Tracker, get_global_tracker, set_global_tracker


@pytest.fixture(autouse=True)
def fresh_tracker():
    """Each test gets an empty in-memory global tracker; the previous one is put back after."""
    old = get_global_tracker()
    tracker = Tracker()
    set_global_tracker(tracker)
    saved_git = config.track_git
    yield tracker
    tracker.close()
    set_global_tracker(old)
    config.track_git = saved_git


@pytest.fixture
def active():
    """Interceptor on for the test, restored to its previous state after."""
    was = interceptor.is_active()
    interceptor.activate()
    yield
    if not was:
        interceptor.deactivate()


@pytest.fixture
def wire():
    from wire import Wire

    return Wire()


@pytest.fixture
def oai(wire):
    from wire import openai_clients

    return openai_clients(wire)


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _frames_empty() -> bool:
    return context.frames.get() == () and context.sessions.get() == ()


@pytest.fixture(autouse=True)
def context_is_clean():
    yield
    assert _frames_empty(), "a test left a profiled frame or session on the context"
