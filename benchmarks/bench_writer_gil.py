"""What the writer thread takes from the threads making LLM calls: the GIL time it holds per row.

bench_core.py's paired samples share the writer's work between the client with tokenspy and the
one without, so its figure leaves it out. Here a pure-Python loop on the main thread (an app
busy between calls) is timed alone and while the writer writes a queue of rows; the difference
per row is what the writer's GIL time costs the app. The rest of the writer's work (SQLite's
inserts and roll-up) runs with the GIL released, on another core.

    python benchmarks/bench_writer_gil.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

from tokenspy.record import CallRecord  # noqa: E402
from tokenspy.store import Store  # noqa: E402

LOOP = 3_000_000
ROWS = 20_000


def busy(n: int) -> float:
    start = time.perf_counter()
    x = 0
    for i in range(n):
        x += i
    return time.perf_counter() - start


def main() -> None:
    rec = CallRecord("f", "gpt-4o", "openai", 1200, 300, 0.0047, 800.0, time.time(), call_stack=["f"],
                     cached_input_tokens=1024, run_id="r", source_file="app.py", source_line=1)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "u.db")
        store.interval = 1e9  # written when woken below, not on the timer
        store.add(rec)
        store.flush()  # open + schema outside the timing
        alone = min(busy(LOOP) for _ in range(5))
        stolen = []
        for _ in range(5):
            for _ in range(ROWS):
                store.add(rec)
            store._wake.set()
            during = busy(LOOP)
            written = ROWS - len(store._queue)  # the rows written while the loop ran
            store.flush()
            if written:
                stolen.append((during - alone) / written * 1e6)
        store.close()
    print(f"writer's GIL time taken from a busy thread: {statistics.median(stolen):.2f} µs a row "
          f"(median of {len(stolen)} × {ROWS:,} rows; the loop alone: {alone * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
