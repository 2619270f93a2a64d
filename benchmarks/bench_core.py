"""Recording-core benchmarks (issue 16). Prints figures; run: python benchmarks/bench_core.py

1. Added cost per intercepted call, the SDK's transport stubbed out: the request wrapper the
   patch installs around a stub that returns a ready ChatCompletion, vs the stub alone (in
   memory, then with persistence; the persisted figure includes writing the rows).
2. Overhead through the real ``openai.OpenAI`` + ``httpx2.MockTransport`` with persistence on,
   paired in one run: blocks of 50 calls alternate between a client whose requests go through
   the patch and one whose class keeps the SDK's own ``request``; each tokenspy block ends by
   writing its rows to SQLite (a commit per 50 rows where an app commits once a second, so the
   writer's share is overstated, never hidden). Median of the per-pair ratios, with an A/A floor.
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
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

import openai  # noqa: E402
from openai import _base_client, _response, _streaming  # noqa: E402
from openai._models import FinalRequestOptions  # noqa: E402
from openai.types.chat import ChatCompletion  # noqa: E402

import tokenspy  # noqa: E402
from tokenspy.interceptor._stainless import Kinds, _sync_process, _sync_request  # noqa: E402
from tokenspy.interceptor.openai import OpenAIAdapter  # noqa: E402
from tokenspy.record import CallRecord  # noqa: E402
from tokenspy.store import Store  # noqa: E402
from tokenspy.tracker import Tracker, get_global_tracker, set_global_tracker  # noqa: E402
from wire import Wire, fixture_json, openai_clients  # noqa: E402


def per_call_us(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def bench_stubbed(n: int = 100_000) -> None:
    completion = ChatCompletion.model_validate(fixture_json("openai_chat.json"))
    options = FinalRequestOptions.construct(method="post", url="/chat/completions",
                                            json_data={"model": "gpt-4o", "messages": []})

    def process_raw(self, **kwargs):  # the SDK's _process_response, for one HTTP response
        return completion

    process = _sync_process(process_raw)  # where tokenspy records the response

    def stub(self, cast_to, options, **kwargs):  # the SDK's request() with the patch inside it
        return process(self, cast_to=cast_to, options=options, response=None, stream=False, stream_cls=None)

    kinds = Kinds((_streaming.Stream, _streaming.AsyncStream), (_response.BaseAPIResponse,))
    wrapped = _sync_request(stub, OpenAIAdapter(), kinds)

    def bare():
        process_raw(None, cast_to=ChatCompletion, options=options, response=None, stream=False, stream_cls=None)

    def patched():
        wrapped(None, ChatCompletion, options)

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


def bench_real_sdk(pairs: int = 200, n: int = 50) -> None:
    original = _base_client.SyncAPIClient.__dict__["request"]
    msg = [{"role": "user", "content": "hi"}]
    with tempfile.TemporaryDirectory() as tmp:
        tokenspy.init(persist=True, persist_dir=tmp)  # activates the interceptor
        tracker = get_global_tracker()

        class WithoutTokenspy(openai.OpenAI):
            request = original

        on = openai_clients(Wire(keep=False))[0]
        off = WithoutTokenspy(api_key="k", base_url=str(on.base_url), http_client=on._client, max_retries=0)

        def sampler(client: openai.OpenAI, flush: bool):
            create = client.chat.completions.create

            def run() -> float:
                start = time.perf_counter()
                for _ in range(n):
                    create(model="gpt-4o", messages=msg)
                if flush:
                    tracker.flush()
                return time.perf_counter() - start

            return run

        run_on, run_off = sampler(on, True), sampler(off, False)
        for _ in range(10):
            run_on()
            run_off()
        before = tracker.total_calls()
        ratios, floor, off_us = [], [], []
        for i in range(pairs):
            if i % 2:
                a, b = run_off(), run_on()
            else:
                b, a = run_on(), run_off()
            ratios.append(b / a)
            off_us.append(a / n * 1e6)
        for _ in range(pairs // 2):
            a, b = run_off(), run_off()
            floor.append(b / a)
        recorded = tracker.total_calls() - before
        assert recorded == pairs * n, f"recorded {recorded} calls, not {pairs * n}"
        tokenspy.init(persist=False)
    r = statistics.median(ratios)
    off = statistics.median(off_us)
    print(f"real SDK + MockTransport, persistence on: overhead {100 * (r - 1):+.2f} % ≈ {(r - 1) * off:.1f} µs "
          f"of {off:.1f} µs/call (median of {pairs} paired samples × {n} calls, writes included; "
          f"A/A: {100 * (statistics.median(floor) - 1):+.2f} %)")


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
    bench_real_sdk()
    bench_throughput()
    bench_import()
