"""track_costs benchmarks (issue 7). Prints figures; run: python benchmarks/bench_toll.py

1. Per-invocation cost of ``track_costs`` through the real OpenAI SDK + httpx2.MockTransport:
   an undecorated call vs ``@track_costs`` (no budget) vs ``@track_costs(max_budget=...)``
   (pre-call read + post-call BEGIN IMMEDIATE transaction), interleaved rounds, medians.
2. The SQLiteStore operations alone: ``window`` (pre-call check) and ``add_spend`` (post-call).
3. An async pre-check through ``asyncio.to_thread`` vs inline.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from tokenspy import CostReporter, SQLiteStore, set_reporter, set_store, track_costs  # noqa: E402
from tokenspy.tracker import Tracker, set_global_tracker  # noqa: E402
from wire import Wire, openai_clients  # noqa: E402

MSG = [{"role": "user", "content": "hi"}]


def per_call_us(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def bench_sdk(rounds: int = 7, n: int = 300) -> None:
    client, _ = openai_clients(Wire(keep=False))

    def plain():
        client.chat.completions.create(model="gpt-4o", messages=MSG)

    tracked = track_costs(project="bench")(plain)
    budgeted = track_costs(project="bench-budget", max_budget=1e9, reset="monthly")(plain)
    results: dict[str, list[float]] = {"plain": [], "track_costs": [], "track_costs+budget": []}
    for _ in range(rounds):
        set_global_tracker(Tracker())  # keep the in-memory list from growing across rounds
        results["plain"].append(per_call_us(plain, n))
        results["track_costs"].append(per_call_us(tracked, n))
        results["track_costs+budget"].append(per_call_us(budgeted, n))
    base = statistics.median(results["plain"])
    print("1. per invocation through the OpenAI SDK over MockTransport (median of rounds)")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"   {name:<20} {med:8.1f} us   (+{med - base:6.1f} us)")


def bench_store(n: int = 2000) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = SQLiteStore(Path(d) / "b.db")
        store.add_spend("p", 0.001, 10)
        window = per_call_us(lambda: store.window("p", "monthly"), n)
        add = per_call_us(lambda: store.add_spend("p", 0.001, 10), n)
        store.close()
    print("2. SQLiteStore alone")
    print(f"   window (pre-call check)       {window:7.1f} us")
    print(f"   add_spend (BEGIN IMMEDIATE)   {add:7.1f} us")


def bench_async_precheck(n: int = 500) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = SQLiteStore(Path(d) / "b.db")
        store.add_spend("p", 0.001, 10)

        async def main() -> tuple[float, float]:
            t = time.perf_counter()
            for _ in range(n):
                await asyncio.to_thread(store.window, "p")
            threaded = (time.perf_counter() - t) / n * 1e6
            t = time.perf_counter()
            for _ in range(n):
                store.window("p")
            inline = (time.perf_counter() - t) / n * 1e6
            return threaded, inline

        threaded, inline = asyncio.run(main())
        store.close()
    print("3. async pre-check")
    print(f"   asyncio.to_thread(window)     {threaded:7.1f} us")
    print(f"   inline window                 {inline:7.1f} us")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        set_store(SQLiteStore(Path(d) / "bench.db"))
        set_reporter(CostReporter(enabled=False))
        bench_sdk()
        set_store(None)
    bench_store()
    bench_async_precheck()
