"""Real-SDK overhead measured across processes: each process either uses tokenspy or does not.

bench_core.py compares two clients (one without tokenspy) inside each of a few processes. Here
each sample is a fresh process that either never activates tokenspy ("off") or records with
persistence ("on"), interleaved, and an A/A run (both halves "off") prints the noise floor of the
method on this machine.

    python benchmarks/bench_overhead_ab.py [--pairs 16] [--variant persist|memory]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Warm-up by time, past the writer's first flushes: its one-time set-up (open and migrate the DB,
# compile the INSERT statements: ~0.1 s of CPU) is a per-process cost, not a per-call one, and
# in a 2 s measurement it would weigh like +5 %.
WARMUP_S, SAMPLES, PER_SAMPLE = 3.0, 15, 200


def child(mode: str) -> None:
    sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
    from wire import Wire, openai_clients

    # keep=False: the mock server keeps no request, as an app does not; kept requests would add
    # ~9 objects a call to every full collection of both halves
    client = openai_clients(Wire(keep=False))[0]
    msg = [{"role": "user", "content": "hi"}]
    import tokenspy

    if mode == "persist":
        tokenspy.init(persist=True, persist_dir=tempfile.mkdtemp(prefix="tokenspy-ab-"))
    elif mode == "memory":
        from tokenspy import interceptor

        interceptor.activate()
    end = time.perf_counter() + WARMUP_S
    while time.perf_counter() < end:
        client.chat.completions.create(model="gpt-4o", messages=msg)
    samples = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        for _ in range(PER_SAMPLE):
            client.chat.completions.create(model="gpt-4o", messages=msg)
        samples.append((time.perf_counter() - start) / PER_SAMPLE * 1e6)
    print(statistics.median(samples))


def run(pairs: int, a: str, b: str) -> tuple[float, float, float]:
    """Medians of each side, and the median of the per-pair ratios b/a (each pair runs back to
    back, order alternating, so a slow spell of the machine hits both halves of a pair)."""
    got: dict[str, list[float]] = {a: [], b: []}
    for i in range(pairs):
        for mode in ((a, b) if i % 2 else (b, a)):
            out = subprocess.run([sys.executable, __file__, "--child", mode], capture_output=True, text=True,
                                 check=True, env={**os.environ, "PYTHONHASHSEED": "0"}).stdout
            got[mode].append(float(out))
    ratios = [y / x for x, y in zip(got[a], got[b], strict=True)]
    return statistics.median(got[a]), statistics.median(got[b]), statistics.median(ratios)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--variant", choices=("persist", "memory"), default="persist")
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    off, on, r = run(args.pairs, "off", args.variant)
    print(f"off {off:.1f} µs/call, {args.variant} {on:.1f} µs/call → overhead {100 * (r - 1):+.2f} % "
          f"(median of {args.pairs} per-pair ratios; medians differ by {on - off:+.1f} µs)")
    _, _, aa = run(args.pairs, "off", "off2")
    print(f"A/A noise floor (both off, same method): {100 * (aa - 1):+.2f} %")

if __name__ == "__main__":
    main()
