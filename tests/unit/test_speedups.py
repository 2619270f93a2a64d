"""The C caller walk (tokenspy._speedups) names the caller the Python walk names, on every kind of
stack, and tokenspy runs without it (TOKENSPY_PURE_PYTHON, or where it is not built)."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import walk_helpers

from tokenspy import context

needs_c = pytest.mark.skipif(context.c_walk is None, reason="the C walk is not built here")
TESTS = Path(__file__).resolve().parents[1]


def both(skip: int = 0):
    """(C walk, Python walk) from the caller's frame, ``skip`` frames up. The Python walk runs
    first: it fills the caches the C walk reads (a miss there would be MISS)."""
    py = context.py_user_frame(skip + 2)
    c = context.c_walk(skip + 1, context._library_files, context._code_cache)
    return c, py


@pytest.fixture
def helpers_are_a_library():
    """walk_helpers' frames count as a library's, as an SDK's do."""
    context._library_files.add(walk_helpers.__file__)
    yield
    context._library_files.discard(walk_helpers.__file__)


def test_built_on_cpython_3_11():
    if platform.python_implementation() != "CPython" or sys.version_info[:2] != (3, 11):
        pytest.skip("the C walk reads CPython 3.11's frame records")
    if os.environ.get("TOKENSPY_PURE_PYTHON"):
        pytest.skip("TOKENSPY_PURE_PYTHON is set")
    assert context.c_walk is not None, "tokenspy._speedups was not built (setup.py, a C compiler)"


@needs_c
def test_the_calling_function():
    def caller():
        return both()

    c, py = caller()
    assert c == py
    assert c[0].endswith("test_the_calling_function.<locals>.caller")
    assert c[1].endswith("test_speedups.py")


@needs_c
@pytest.mark.parametrize("depth", [0, 5, 40])  # 40: more frames than the C walk remembers
def test_library_frames_are_passed(helpers_are_a_library, depth):
    def leaf():
        return both(skip=1)  # starts in walk_helpers, as a walk starts in the SDK

    def app():
        return walk_helpers.through(depth, leaf)

    for _ in range(3):  # the second and third answers come from the remembered stack (but at 40)
        c, py = app()
        assert c == py
        assert c[0].endswith("test_library_frames_are_passed.<locals>.app")


@needs_c
def test_alternating_call_sites_each_get_their_own(helpers_are_a_library):
    def leaf():
        return both(skip=1)

    def site_a(depth):
        return walk_helpers.through(depth, leaf)

    def site_b(depth):
        return walk_helpers.through(depth, leaf)

    for site, depth in [(site_a, 3), (site_b, 3), (site_a, 3), (site_a, 4), (site_b, 2), (site_a, 3)]:
        c, py = site(depth)
        assert c == py
        assert c[0].endswith(site.__name__)


@needs_c
def test_generators_and_coroutines():
    def gen():
        yield both()
        yield both(skip=1)

    got = list(gen())
    for c, py in got:
        assert c == py
    assert got[0][0][0].endswith("gen")
    assert got[1][0][0].endswith("test_generators_and_coroutines")

    async def coro():
        await asyncio.sleep(0)
        return both(), both(skip=1)

    here, above = asyncio.run(coro())
    assert here[0] == here[1]
    assert here[0][0].endswith("coro")
    assert above[0] == above[1]  # through the event loop's frames


@needs_c
def test_no_user_frame_above():
    out = []

    def target():
        out.append(both(skip=1))  # above: threading's frames only
        out.append(both(skip=1))

    t = threading.Thread(target=target)
    t.start()
    t.join()
    assert out == [(None, None), (None, None)]
    assert context.c_walk(10_000, context._library_files, context._code_cache) is None
    assert context.py_user_frame(10_000) is None


@needs_c
def test_a_code_not_seen_yet_is_left_to_the_python_walk():
    fresh = {}
    assert context.c_walk(0, set(), fresh) is context.WALK_MISS
    with pytest.raises(TypeError):
        context.c_walk(0, [], fresh)


def test_pure_python_walk_attributes_sdk_calls():
    """TOKENSPY_PURE_PYTHON=1: no C walk, and a call is still named after its caller."""
    script = textwrap.dedent(
        """
        from tokenspy import context, interceptor
        from tokenspy.tracker import get_global_tracker
        from wire import Wire, openai_clients

        assert context.c_walk is None
        interceptor.activate()
        client = openai_clients(Wire(keep=False))[0]

        def summarize():
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

        summarize()
        summarize()
        print(",".join(r.function_name for r in get_global_tracker().records()))
        """
    )
    env = {**os.environ, "TOKENSPY_PURE_PYTHON": "1", "PYTHONPATH": str(TESTS)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "summarize,summarize"


def test_the_plain_call_tests_pass_on_the_python_path_too():
    """tests/integration/test_plain_path.py (the fast path makes the general path's records),
    run with TOKENSPY_PURE_PYTHON=1: the Python request of interceptor.openai_plain, not the C one."""
    env = {**os.environ, "TOKENSPY_PURE_PYTHON": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", str(TESTS / "integration" / "test_plain_path.py")],
        env=env, capture_output=True, text=True, timeout=300, cwd=TESTS.parent,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "skipped" not in out.stdout
