"""Real-SDK overhead counted in CPU instructions (valgrind/callgrind): a figure without noise.

Wall-time ratios on a shared 2-vCPU machine move by about as much as the 1 % target (see
bench_overhead_ab.py's A/A floor). Instructions executed do not: this runs the same real OpenAI
SDK + httpx2.MockTransport workload under callgrind, in fresh processes, with tokenspy off, on in
memory, and on with persistence, and prints instructions per call and the ratio.

Per-call figures are differences between a run of (1 + B1) and one of (1 + B2) blocks of 1,024
calls, so start-up, imports and warm-up cancel out. Everything a recorded call causes is counted,
on whatever thread it runs: the interceptor, the record, the writer's INSERT and its roll-up
(done by the writer thread after each block, as it does every 8,192 rows in a long run). The
writer's 1 s timer is replaced by waking the writer thread after every block of 1,024 calls
(under valgrind, 1 s of wall time is only a few dozen calls; at full speed the SDK makes ~1,500
calls a second), so batches have the size they have in a real process.

Instructions are not time: the same recording path costs ~1 µs in a tight loop and several
times that inside an SDK call whose ~5M instructions have evicted it from the CPU caches (see
bench_overhead_ab.py for wall time).

    python benchmarks/bench_overhead_instructions.py [--blocks 1 4] [--modes off memory persist]

Takes ~5 min per mode on 2 CPUs (two valgrind runs at once). Prints all threads and the calling
thread alone (callgrind --separate-threads).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 1024


def child(mode: str, blocks: int) -> None:
    sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
    from wire import Wire, openai_clients

    client = openai_clients(Wire(keep=False))[0]
    msg = [{"role": "user", "content": "hi"}]
    import tokenspy
    from tokenspy import store

    store.Store.interval = 1e9  # batches of one block each, written when woken below (see the docstring)
    # The writer rolls up each block it writes, on its own thread, as it does every 8,192 rows in
    # a long run; otherwise Store.close would roll the whole run up on the calling thread at exit.
    store.ROLLUP_EVERY = BLOCK
    if mode == "persist":
        tokenspy.init(persist=True, persist_dir=tempfile.mkdtemp(prefix="tokenspy-ic-"))
    elif mode == "memory":
        from tokenspy import interceptor

        interceptor.activate()
    from tokenspy.tracker import get_global_tracker

    writer = get_global_tracker()._store
    for _ in range(1 + blocks):
        for _ in range(BLOCK):
            client.chat.completions.create(model="gpt-4o", messages=msg)
        if writer is not None:  # the writer thread writes the block, as its timer would
            writer._wake.set()
            while writer._queue:
                time.sleep(0.001)


def instructions(mode: str, blocks: int) -> tuple[int, int]:
    """(all threads, the calling thread) instructions of one child run."""
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}/cg",
             sys.executable, __file__, "--child", mode, str(blocks)],
            capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        per_thread = {}
        for f in Path(out).iterdir():  # cg-01 is the main thread, cg-02... the writer
            m = re.search(r"^(?:summary|totals):\s*(\d+)", f.read_text(errors="replace"), re.M)
            if m:
                per_thread[f.name] = int(m.group(1))
    if proc.returncode != 0 or not per_thread:
        raise SystemExit(f"valgrind run failed ({mode}, {blocks}):\n{proc.stderr[-2000:]}")
    main = min(per_thread)  # the lowest thread number
    return sum(per_thread.values()), per_thread[main]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", nargs=2, type=int, default=(1, 4))
    ap.add_argument("--modes", nargs="+", default=["off", "memory", "persist"])
    ap.add_argument("--child", nargs=2)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing measured")
        return 1
    b1, b2 = args.blocks
    calls = (b2 - b1) * BLOCK
    total: dict[str, float] = {}
    caller: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for mode in args.modes:
            lo, hi = pool.map(lambda b, m=mode: instructions(m, b), (b1, b2))
            total[mode] = (hi[0] - lo[0]) / calls
            caller[mode] = (hi[1] - lo[1]) / calls

    def line(label: str, fig: dict[str, float]) -> None:
        print(label)
        base = fig.get("off")
        for mode, v in fig.items():
            extra = ("" if base is None or mode == "off"
                     else f"   overhead {100 * (v / base - 1):+.2f} % ({v - base:+,.0f})")
            print(f"  {mode:8s} {v:12,.0f} instructions/call{extra}")

    line("all threads (everything a call costs the machine, the writer thread included):", total)
    line("calling thread only (what the caller waits for; the writer runs on another core):", caller)
    print(f"(real OpenAI SDK {__import__('openai').__version__} + MockTransport, chat.completions.create; "
          f"difference of {1 + b2} and {1 + b1} blocks of {BLOCK} calls; PYTHONHASHSEED=0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
