"""``stats()`` after many persisted calls (issue 19, item 13): time and peak memory of one
``stats()`` once N records went through ``Tracker.record`` with persistence on and a small
window. Totals come from running aggregates, so neither depends on N. Run:

    python benchmarks/bench_stats.py [--records 1000000] [--window 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

from tokenspy.record import CallRecord  # noqa: E402
from tokenspy.tracker import Tracker  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--window", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tracker = Tracker(persist_path=Path(tmp) / "usage.db", window=args.window)
        start = time.perf_counter()
        for i in range(args.records):
            tracker.record(CallRecord(f"app.f{i % 50}", "gpt-4o", "openai", 1200, 300, 0.006, 500.0, float(i)))
        tracker.flush()
        fill = time.perf_counter() - start
        tracemalloc.start()
        start = time.perf_counter()
        out = tracker.summary()
        took = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert out["total_calls"] == args.records and len(out["calls"]) == args.window
        tracker.close()
    print(f"{args.records:,} records recorded and written in {fill:.1f} s")
    print(f"stats() over them: {took * 1000:.1f} ms, peak {peak / 2**20:.2f} MB allocated "
          f"(window {args.window:,}; the issue's figure before running totals: 77 s, 1.19 GB)")


if __name__ == "__main__":
    main()
