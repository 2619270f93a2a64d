"""Recording-core benchmarks (issue 16). Prints figures; run: python benchmarks/bench_core.py

1. Added cost per intercepted call, the SDK's transport stubbed out: the request wrapper the
   patch installs around a stub that returns a ready ChatCompletion, vs the stub alone (in
   memory, then with persistence; the persisted figure includes writing the rows).
2. Overhead through the real ``openai.OpenAI`` + ``httpx2.MockTransport`` with persistence on,
   paired in one run: blocks of 50 calls alternate between a client whose requests go through
   the patch and one whose class keeps the SDK's own ``request``. The rows are written inside the
   tokenspy blocks (a transaction every 1,000 calls), so the writer's work is counted, not left
   to run whenever its timer fires, in either kind of block. Twice: with the rows written by the
   store's writer thread, as in an app (woken at the start of a block, its batch waited for at
   the block's end: SQLite's own work, which runs without the GIL, overlaps the calls), and by
   the calling thread between two calls (nothing overlaps: an upper bound). The figure is the
   ratio of the total times; the median of the per-pair ratios and an A/A floor are printed
   beside it.
3. Sustained persistence throughput (records/s through Store.add + the writer).
4. ``python -c "import tokenspy"`` wall time vs ``python -c pass``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import openai  # noqa: E402
from openai import _base_client  # noqa: E402

import tokenspy  # noqa: E402
from stub import stub_calls  # noqa: E402
from tokenspy.record import CallRecord  # noqa: E402
from tokenspy.store import Store  # noqa: E402
from tokenspy.tracker import Tracker, get_global_tracker, set_global_tracker  # noqa: E402
from wire import Wire, openai_clients  # noqa: E402

SDK_REQUEST = _base_client.SyncAPIClient.__dict__["request"]  # before tokenspy patches it


def per_call_us(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def bench_stubbed(n: int = 100_000) -> None:
    bare, patched = stub_calls()

    with tempfile.TemporaryDirectory() as tmp:
        for label, tracker in (("in memory", Tracker()), ("persisted", Tracker(Path(tmp) / "u.db"))):
            set_global_tracker(tracker)
            patched()  # warm the price memo and open the DB
            tracker.flush()
            results = []
            for _ in range(5):
                tracker.reset()
                base = per_call_us(bare, n)
                start = time.perf_counter()
                for _ in range(n):
                    patched()
                tracker.flush()
                results.append((time.perf_counter() - start) / n * 1e6 - base)
            print(f"added cost per intercepted call ({label}, stub transport): {statistics.median(results):.2f} µs "
                  f"(median of 5 × {n:,})")
            tracker.close()


def bench_real_sdk(pairs: int = 200, n: int = 50, flush_every: int = 20, writer_thread: bool = False) -> None:
    """``writer_thread``: the rows are written by the store's writer thread, as in an app, woken
    at the start of every ``flush_every``-th tokenspy block and waited for at its end (so its
    work lands in tokenspy's blocks, alongside the calls, as it does in an app); otherwise by
    the calling thread, between two calls."""
    original = SDK_REQUEST
    msg = [{"role": "user", "content": "hi"}]
    with tempfile.TemporaryDirectory() as tmp:
        tokenspy.init(persist=True, persist_dir=tmp)  # activates the interceptor
        tracker = get_global_tracker()
        store = tracker._store
        store.interval = 3600  # the benchmark says when rows are written (see below)

        class WithoutTokenspy(openai.OpenAI):
            request = original

        on = openai_clients(Wire(keep=False))[0]
        off = WithoutTokenspy(api_key="k", base_url=str(on.base_url), http_client=on._client, max_retries=0)
        blocks = [0]

        def sampler(client: openai.OpenAI, writes: bool):
            create = client.chat.completions.create

            def run() -> float:
                start = time.perf_counter()
                if writes:
                    blocks[0] += 1
                write = writes and blocks[0] % flush_every == 0  # 1,000 rows a transaction
                if write and writer_thread:
                    store._wake.set()
                for _ in range(n):
                    create(model="gpt-4o", messages=msg)
                if write:
                    tracker.flush()  # with the writer thread: waits for its batch, writes the rest
                return time.perf_counter() - start

            return run

        run_on, run_off = sampler(on, True), sampler(off, False)
        for _ in range(10):
            run_on()
            run_off()
        tracker.flush()
        before = tracker.total_calls()
        ons, offs, aa = [], [], []
        for i in range(pairs):
            if i % 2:
                a, b = run_off(), run_on()
            else:
                b, a = run_on(), run_off()
            ons.append(b)
            offs.append(a)
        tracker.flush()
        for _ in range(pairs // 2):
            aa.append(run_off() / run_off())
        recorded = tracker.total_calls() - before
        assert recorded == pairs * n, f"recorded {recorded} calls, not {pairs * n}"
        tokenspy.init(persist=False)
    total = sum(ons) / sum(offs)
    median = statistics.median(b / a for a, b in zip(offs, ons, strict=True))
    off_us = sum(offs) / (pairs * n) * 1e6
    how = "by the writer thread" if writer_thread else "by the calling thread"
    print(f"real SDK + MockTransport, persistence on, rows written {how}: overhead {100 * (total - 1):+.2f} % ≈ "
          f"{(total - 1) * off_us:.1f} µs of {off_us:.1f} µs/call (all the time of {pairs} alternating pairs of "
          f"{n} calls, every row written in them; median of the pairs {100 * (median - 1):+.2f} %; "
          f"A/A: {100 * (statistics.median(aa) - 1):+.2f} %)")


def bench_throughput(n: int = 500_000) -> None:
    rec = CallRecord("f", "gpt-4o", "openai", 1200, 300, 0.0047, 800.0, time.time(), call_stack=["f"],
                     cached_input_tokens=1024, run_id="r", source_file="app.py", source_line=1)
    with tempfile.TemporaryDirectory() as tmp:
        s = Store(Path(tmp) / "u.db")
        s.add(rec)
        s.flush()  # open + schema outside the timing
        start = time.perf_counter()
        for _ in range(n):
            s.add(rec)
        s.flush()
        elapsed = time.perf_counter() - start
        s.close()
    print(f"persistence throughput: {n / elapsed:,.0f} records/s ({n:,} records in {elapsed:.2f} s)")


def bench_import(runs: int = 15) -> None:
    def wall(code: str) -> float:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000

    base = wall("pass")
    imp = wall("import tokenspy")
    print(f"python -c 'import tokenspy': {imp:.1f} ms wall ({imp - base:.1f} ms over bare python's {base:.1f} ms)")
    print(f"openai SDK version {openai.__version__}; tokenspy {tokenspy.__version__}; Python {sys.version.split()[0]}")


if __name__ == "__main__":
    bench_stubbed()
    bench_real_sdk(writer_thread=True)
    bench_real_sdk()
    bench_throughput()
    bench_import()
