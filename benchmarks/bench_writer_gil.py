"""What the writer thread takes from the threads making LLM calls: the GIL time it holds per row.

bench_core.py's paired samples share the writer's work between the client with tokenspy and the
one without, so its figure leaves it out. Here a pure-Python loop on the main thread (an app
busy between calls) is timed alone and while the writer writes a queue of rows; the difference
per row is what the writer's GIL time costs the app. The rest of the writer's work (SQLite's
inserts and roll-up) runs with the GIL released, on another core.

    python benchmarks/bench_writer_gil.py [--row JSON]

A batch whose rows all come from one call site (one function, model and run: the usual batch of
an app, and bench_core's) binds the strings they share once a statement; without ``--row`` this
also prints the figure for rows from two places in turn, which bind every field.

Measured in a fresh process: in a process that has just made thousands of SDK calls the same
loop loses about half as much per row (0.4 µs instead of 0.8 µs here), a difference this does
not explain, so the higher figure is the one counted.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

from tokenspy.record import CallRecord, row_of  # noqa: E402
from tokenspy.store import Store  # noqa: E402

LOOP = 3_000_000
ROWS = 20_000


def busy(n: int) -> float:
    start = time.perf_counter()
    x = 0
    for i in range(n):
        x += i
    return time.perf_counter() - start


def writer_gil_us(rec: CallRecord | tuple[object, ...], rows: int = ROWS, loop: int = LOOP, rounds: int = 7,
                  other: CallRecord | tuple[object, ...] | None = None) -> float:
    """µs of a busy thread's time a row written by the writer thread takes: the median of
    ``rounds`` rounds, each timing the loop alone and then while the writer writes, after one
    round not counted (the first statements of a connection are prepared in it). With
    ``other``, rows alternate between the two: calls from two places, which the writer cannot
    write as a batch of one call site (store._insert_uniform)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "u.db")
        store.interval = 1e9  # written when woken below, not on the timer
        store.add(rec)
        store.flush()  # open + schema outside the timing
        stolen = []
        for i in range(rounds + 1):
            alone = min(busy(loop) for _ in range(2))
            for k in range(rows):
                store.add(rec if other is None or k % 2 else other)
            store._wake.set()
            during = busy(loop)
            written = rows - len(store._queue)  # the rows written while the loop ran
            store.flush()
            if written and i:
                stolen.append((during - alone) / written * 1e6)
        store.close()
    return statistics.median(stolen)


def main() -> None:
    if sys.argv[1:2] == ["--row"]:  # a row of bench_core's run (JSON), in this fresh process
        rec: CallRecord | tuple[object, ...] = tuple(json.loads(sys.argv[2]))
    else:
        rec = CallRecord("f", "gpt-4o", "openai", 1200, 300, 0.0047, 800.0, time.time(), call_stack=["f"],
                         cached_input_tokens=1024, run_id="r", source_file="app.py", source_line=1)
    elsewhere = tuple(rec) if type(rec) is tuple else row_of(rec)
    elsewhere = ("app.elsewhere", *elsewhere[1:10], '["app.elsewhere"]', *elsewhere[11:])
    print(f"writer's GIL time taken from a busy thread: {writer_gil_us(rec):.2f} µs a row "
          f"(median of 7 rounds × {ROWS:,} rows; calls from one place)")
    if "--row" not in sys.argv:
        print(f"the same, calls from two places in turn: {writer_gil_us(rec, other=elsewhere):.2f} µs a row")


if __name__ == "__main__":
    main()
