"""Recording-core benchmarks (issue 2). Prints figures; run: python benchmarks/bench_core.py

1. Added cost per intercepted call, the SDK's transport stubbed out: our request wrapper around a
   stub that returns a ready ChatCompletion, vs the stub alone (in memory, then with persistence);
   the wrapper the patch installs (the plain-call path) and the general one.
2. Overhead through the real OpenAI SDK + httpx2.MockTransport with persistence on: short paired
   samples of 50 calls through a client without tokenspy and one through it, in 4 fresh
   processes; the median of the pooled per-pair ratios, with an A/A floor. The mock server
   keeps no requests, as an app keeps none. The writer thread's work lands in both kinds of
   sample alike, so the pairs cancel it: what the writer takes from a busy thread per row (a row
   of this run, bench_writer_gil.py in fresh processes) is added, as a share of a call.
3. Sustained persistence throughput (records/s through Store.add + the writer thread).
4. ``python -c "import tokenspy"`` wall time vs ``python -c pass``.
"""

from __future__ import annotations

import json
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
from tokenspy.interceptor._stainless import Kinds, _sync_request  # noqa: E402
from tokenspy.interceptor.openai import OpenAIAdapter  # noqa: E402
from tokenspy.interceptor.openai_plain import sync_request as plain_request  # noqa: E402
from tokenspy.record import CallRecord  # noqa: E402
from tokenspy.store import Store  # noqa: E402
from tokenspy.tracker import Tracker, get_global_tracker, set_global_tracker  # noqa: E402
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
    adapter = OpenAIAdapter()
    wrappers = {"plain": plain_request(stub, adapter, kinds), "general": _sync_request(stub, adapter, kinds)}

    def bare():
        stub(None, ChatCompletion, options)

    with tempfile.TemporaryDirectory() as tmp:
        for label, tracker in (("in memory", Tracker()), ("persisted", Tracker(Path(tmp) / "u.db"))):
            set_global_tracker(tracker)
            figures = {}
            for path, wrapped in wrappers.items():

                def patched(wrapped=wrapped):
                    wrapped(None, ChatCompletion, options)

                patched()  # warm the price memo
                results = []
                for _ in range(5):
                    tracker._records.clear()
                    base = per_call_us(bare, n)
                    with_ = per_call_us(patched, n)
                    results.append(with_ - base)
                figures[path] = statistics.median(results)
            tracker.flush()
            print(f"added cost per intercepted call ({label}, stub transport): {figures['plain']:.2f} µs; "
                  f"general path {figures['general']:.2f} µs (medians of 5 × {n:,})")
            tracker.close()


def real_sdk_ratios(pairs: int, n: int = 50) -> dict[str, list[float]]:
    """Per-pair ratios (on/off, and A/A: off/off) of one process.

    Two clients of the real SDK on one MockTransport, in one process with tokenspy active and
    persisting: "on" is an ``openai.OpenAI``, whose requests go through the patch; "off" is a
    subclass whose class keeps the SDK's own ``request``, i.e. the SDK without tokenspy. Nothing
    is patched or unpatched while measuring (re-patching makes the interpreter re-specialize
    the call sites, which costs either side). Short samples of ``n`` calls alternate in order;
    the background writer runs as it would in an app."""
    from openai import _base_client

    original = _base_client.SyncAPIClient.__dict__["request"]
    msg = [{"role": "user", "content": "hi"}]
    with tempfile.TemporaryDirectory() as tmp:
        tokenspy.init(persist=True, persist_dir=tmp)  # activates the interceptor

        class WithoutTokenspy(openai.OpenAI):
            request = original

        on = openai_clients(Wire(keep=False))[0]
        off = WithoutTokenspy(api_key="k", base_url=str(on.base_url), http_client=on._client, max_retries=0)

        def sampler(client: openai.OpenAI):
            create = client.chat.completions.create

            def run() -> float:
                start = time.perf_counter()
                for _ in range(n):
                    create(model="gpt-4o", messages=msg)
                return time.perf_counter() - start

            return run

        run_on, run_off = sampler(on), sampler(off)
        for _ in range(10):  # warm up both
            run_on()
            run_off()
        calls = get_global_tracker().total_calls()
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
        recorded = get_global_tracker().total_calls() - calls
        assert recorded == pairs * n, f"recorded {recorded} calls, not {pairs * n}"
        row = get_global_tracker()._records[-1]  # a row of this run, as the writer gets it
        tokenspy.init(persist=False)
    return {"ratios": ratios, "aa": floor, "off_us": off_us, "row": list(row)}


def bench_real_sdk(processes: int = 4, pairs: int = 200, n: int = 50) -> None:
    """The ratios of several fresh processes, pooled: where the allocator happens to put
    tokenspy's objects and the SDK's changes what each costs, and that layout is fixed for a
    process (measured: ±0.3 % between processes)."""
    pooled: dict[str, list[float]] = {"ratios": [], "aa": [], "off_us": []}
    per_process = []
    for _ in range(processes):
        out = subprocess.run([sys.executable, __file__, "--real-sdk-worker", str(pairs), str(n)],
                             check=True, capture_output=True, text=True).stdout
        got = json.loads(out.strip().splitlines()[-1])
        for k in pooled:
            pooled[k] += got[k]
        per_process.append(100 * (statistics.median(got["ratios"]) - 1))
    writer_us = []
    for _ in range(3):  # in fresh processes: see bench_writer_gil.py
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_writer_gil.py"), "--row",
                              json.dumps(got["row"])], check=True, capture_output=True, text=True).stdout
        writer_us.append(float(out.split(":")[1].split()[0]))
    r = statistics.median(pooled["ratios"])
    aa = statistics.median(pooled["aa"])
    off = statistics.median(pooled["off_us"])
    writer = statistics.median(writer_us)
    print(f"real SDK + MockTransport, persistence on: overhead {100 * (r - 1 + writer / off):+.2f} % "
          f"≈ {(r - 1) * off + writer:.1f} µs of {off:.1f} µs/call: {100 * (r - 1):+.2f} % in the calls "
          f"(median of {len(pooled['ratios'])} paired samples × {n} calls from {processes} processes; A/A: "
          f"{100 * (aa - 1):+.2f} %; per process: " + ", ".join(f"{x:+.2f} %" for x in per_process)
          + f") + {100 * writer / off:.2f} % the writer thread's GIL time ({writer:.2f} µs a row)")


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
    if sys.argv[1:2] == ["--real-sdk-worker"]:
        print(json.dumps(real_sdk_ratios(int(sys.argv[2]), int(sys.argv[3]))))
        sys.exit(0)
    bench_stubbed()
    bench_real_sdk()
    bench_throughput()
    bench_import()
