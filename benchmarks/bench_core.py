"""Recording-core benchmarks (issue 2). Prints figures; run: python benchmarks/bench_core.py

1. Added cost per intercepted call, the SDK's transport stubbed out: our request wrapper around a
   stub that returns a ready ChatCompletion, vs the stub alone (in memory, then with persistence).
2. Overhead through the real OpenAI SDK + httpx2.MockTransport with persistence on (301 short
   paired samples of 50 calls, interceptor off and on, median of the per-pair ratios, one run,
   with an A/A floor). The mock server keeps no requests, as an app keeps none.
3. Sustained persistence throughput (records/s through Store.add + the writer thread).
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
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

import openai  # noqa: E402
from openai._models import FinalRequestOptions  # noqa: E402
from openai.types.chat import ChatCompletion  # noqa: E402

import tokenspy  # noqa: E402
from tokenspy import interceptor  # noqa: E402
from tokenspy.interceptor._stainless import Kinds, _sync_request  # noqa: E402
from tokenspy.interceptor.openai import OpenAIAdapter  # noqa: E402
from tokenspy.record import CallRecord  # noqa: E402
from tokenspy.store import Store  # noqa: E402
from tokenspy.tracker import Tracker, set_global_tracker  # noqa: E402
from wire import Wire, fixture_json, openai_clients  # noqa: E402


def per_call_us(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def bench_stubbed(n: int = 200_000) -> None:
    completion = ChatCompletion.model_validate(fixture_json("openai_chat.json"))
    options = FinalRequestOptions.construct(method="post", url="/chat/completions",
                                            json_data={"model": "gpt-4o", "messages": []})

    def stub(self, cast_to, options, **kwargs):
        return completion

    from openai import _response, _streaming

    kinds = Kinds((_streaming.Stream, _streaming.AsyncStream), (_response.BaseAPIResponse,))
    wrapped = _sync_request(stub, OpenAIAdapter(), kinds)

    def bare():
        stub(None, ChatCompletion, options)

    def patched():
        wrapped(None, ChatCompletion, options)

    with tempfile.TemporaryDirectory() as tmp:
        for label, tracker in (("in memory", Tracker()), ("persisted", Tracker(Path(tmp) / "u.db"))):
            set_global_tracker(tracker)
            patched()  # warm the price memo
            results = []
            for _ in range(5):
                tracker._records.clear()
                base = per_call_us(bare, n)
                with_ = per_call_us(patched, n)
                results.append(with_ - base)
            tracker.flush()
            print(f"added cost per intercepted call ({label}, stub transport): "
                  f"{statistics.median(results):.2f} µs (median of 5 × {n:,})")
            tracker.close()


def bench_real_sdk(pairs: int = 301, n: int = 50) -> None:
    """Many short paired samples (off, on) back to back, order alternating; the median of the
    per-pair ratios resists the drift a busy machine adds to either side (short samples see the
    same machine state). The background writer runs as it would in an app.

    Both halves of a pair are preceded by the same two patch changes (off: activate then
    deactivate; on: the reverse), so that the interpreter's re-specialization after a class
    changes costs both alike. An A/A run (both halves off, same toggling) prints the floor."""
    client = openai_clients(Wire(keep=False))[0]
    msg = [{"role": "user", "content": "hi"}]
    create = client.chat.completions.create

    def run() -> float:
        start = time.perf_counter()
        for _ in range(n):
            create(model="gpt-4o", messages=msg)
        return time.perf_counter() - start

    def set_on() -> None:
        interceptor.deactivate()
        interceptor.activate()

    def set_off() -> None:
        interceptor.activate()
        interceptor.deactivate()

    def measure(a, b) -> tuple[float, float, float]:
        first, second, ratios = [], [], []
        for i in range(pairs):
            pair = [0.0, 0.0]
            for k in ((0, 1) if i % 2 else (1, 0)):
                (a, b)[k]()
                pair[k] = run()
            first.append(pair[0])
            second.append(pair[1])
            ratios.append(pair[1] / pair[0])
            # no reset() between pairs: it would flush on this thread, outside the timing
        return statistics.median(first), statistics.median(second), statistics.median(ratios)

    with tempfile.TemporaryDirectory() as tmp:
        tokenspy.init(persist=True, persist_dir=tmp)
        for _ in range(10):  # warm up both paths
            set_off()
            run()
            set_on()
            run()
        a, b, r = measure(set_off, set_on)
        _, _, aa = measure(set_off, set_off)
        interceptor.activate()
        tokenspy.init(persist=False)
    print(f"real SDK + MockTransport, persistence on: {a / n * 1e6:.1f} µs/call without, "
          f"{b / n * 1e6:.1f} µs/call with → overhead {100 * (r - 1):+.2f} % "
          f"≈ {(r - 1) * a / n * 1e6:.1f} µs/call (median of {pairs} paired samples × {n} calls; "
          f"A/A with the same toggling: {100 * (aa - 1):+.2f} %)")


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
    print(f"openai SDK version {openai.__version__}; tokenspy {tokenspy.__version__}")


if __name__ == "__main__":
    bench_stubbed()
    bench_real_sdk()
    bench_throughput()
    bench_import()
