"""Live OTLP export overhead (issue 21). Prints figures; run: python benchmarks/bench_otlp.py

Paired in one process: blocks of 50 calls through the real ``openai.OpenAI`` client over
``httpx2.MockTransport`` (tokenspy recording in memory) alternate between export off and export
on, to a loopback OTLP/HTTP collector (tests/otlp_receiver.OtlpSink, which decodes every
request). The export-on blocks pay everything live export costs the process: the capture and
queue append on the caller's thread, and the GIL time of tokenspy's thread (spans, metric
points) and of the SDK's batch processor and HTTP export; on a real LLM call (hundreds of ms of
network) the background share runs while the caller waits. Median of the per-pair ratios, with
an A/A floor (off vs off). Then each part alone, in a tight loop.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

import tokenspy  # noqa: E402
from otlp_receiver import OtlpSink  # noqa: E402
from tokenspy import sinks  # noqa: E402
from tokenspy.export.otlp import Target  # noqa: E402
from tokenspy.export.sink import LiveExporter  # noqa: E402
from tokenspy.record import CallRecord  # noqa: E402
from tokenspy.tracker import Tracker, set_global_tracker  # noqa: E402
from wire import Wire, openai_clients  # noqa: E402

MSG = [{"role": "user", "content": "hi"}]
BLOCK = 25
PAIRS = 120


def block(client) -> float:
    t = time.perf_counter()
    for _ in range(BLOCK):
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    return (time.perf_counter() - t) / BLOCK


def paired(client, exporter: LiveExporter, on: bool) -> tuple[float, float, float, float]:
    """(median ratio B/A, median difference B-A per call, median A, median B): A export off, B
    on (or off too for the A/A floor)."""
    ratios, diffs, a_times, b_times = [], [], [], []
    for i in range(PAIRS):
        order = (False, True) if i % 2 == 0 else (True, False)  # alternate which goes first
        got = {}
        for b in order:
            if b and on:
                sinks.add(exporter)
            got[b] = block(client)
            sinks.remove(exporter)
            exporter.flush()  # each block's spans exported before the next block: nothing carries over
        ratios.append(got[True] / got[False])
        diffs.append(got[True] - got[False])
        a_times.append(got[False])
        b_times.append(got[True])
    return (statistics.median(ratios), statistics.median(diffs), statistics.median(a_times),
            statistics.median(b_times))


def main() -> None:
    set_global_tracker(Tracker())
    tokenspy.init()  # recording on, in memory
    sink = OtlpSink(keep=False)
    exporter = LiveExporter(Target(f"{sink.base}/v1/traces", f"{sink.base}/v1/metrics"))
    client, _ = openai_clients(Wire(keep=False))
    for _ in range(300):  # warm-up: SDK, patch, exporter thread, HTTP connection
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    sinks.add(exporter)
    block(client)
    sinks.remove(exporter)
    exporter.flush()

    aa, aa_diff, _, _ = paired(client, exporter, on=False)
    ratio, diff, a, b = paired(client, exporter, on=True)
    exporter.flush()
    print(f"through the OpenAI SDK + MockTransport, {PAIRS} pairs of {BLOCK} calls, paired in one run:")
    print(f"  export off {a * 1e6:8.1f} µs/call   export on {b * 1e6:8.1f} µs/call")
    print(f"  live export overhead, median of the per-pair ratios: {100 * (ratio - 1):+.2f} %"
          f" (A/A floor {100 * (aa - 1):+.2f} %)")
    print(f"  median of the per-pair differences: {diff * 1e6:+.1f} µs a call, {100 * diff / a:+.2f} %"
          f" (A/A floor {aa_diff * 1e6:+.1f} µs)")
    print(f"  spans received by the loopback collector: {sink.span_count} (calls exported {exporter.calls},"
          f" lost {exporter.lost()})")

    # the parts alone
    rec = CallRecord("app.summarize", "gpt-4o-2024-08-06", "openai", 1200, 300, 0.0047, 512.0, time.time(),
                     None, "a" * 40, ["app.summarize"], 1024, 0, 128, True, "tests/test_x.py::test_y",
                     "app.py", 12, "run-1")
    n = 20000
    alone = LiveExporter(exporter.target)
    alone._stopping = True  # no tokenspy thread: the caller's part alone, without its GIL share
    t = time.perf_counter()
    for i in range(n):  # what the recorder runs for a sink: its capture at begin, its send at finish
        alone.send(rec, alone.capture(), "gpt-4o")
        if i % 1000 == 999:
            alone._queue.clear()  # keep it below the queue's bound: appends, not drops
    caller = (time.perf_counter() - t) / n
    alone._queue.clear()
    alone.close(report=False)
    ctx = exporter.capture()
    spent, n = 0.0, 0
    for _ in range(20):  # chunks of 256, each exported (untimed) before the next
        t = time.perf_counter()
        for _ in range(256):
            exporter._emit(rec, ctx, "gpt-4o")
        spent += time.perf_counter() - t
        n += 256
        exporter.flush()
    emit = spent / n
    exporter.close(report=False)
    sink.close()
    print(f"  on the caller's thread (capture + queue append): {caller * 1e6:.2f} µs/call")
    print(f"  on tokenspy's thread (span + 2 histogram points + cost counter): {emit * 1e6:.1f} µs/call")


if __name__ == "__main__":
    main()
